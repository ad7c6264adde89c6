"""scikit-learn's 8×8 handwritten digits as spike latencies: a small image task for spiking CNNs.

``sklearn.datasets.load_digits`` holds 1797 grey images of 8×8 pixels with intensities
x ∈ {0, …, 16}, ten classes of about 180 images each; it ships with scikit-learn (nothing to
download).  Each pixel becomes at most one spike (latency, or time-to-first-spike, coding) over
a window of ``W`` steps:

    t(x) = round((1 − x/16)·(W − 1))   for x > 0;   no spike for x = 0,

so the brightest pixels (x = 16) fire at step 0, the faintest (x = 1) near step W − 1, and a
brighter pixel never fires later than a darker one.  The code is deterministic: there is no
randomness in it.  A run may last ``T ≥ W`` steps; the steps after the window are silent, time
for the network to answer.  The held-out split is stratified (every class in the same
proportion on both sides) and fixed by its seed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from snngraph._optional import require

DIGITS_SHAPE = (1, 8, 8)
"""The shape of one image as a population: one channel of 8×8 pixels."""
DIGITS_MAX = 16.0
"""The largest pixel intensity of ``load_digits``."""


def latency_code(
    intensity: np.ndarray, steps: int, *, window: int | None = None, max_value: float = DIGITS_MAX
) -> torch.Tensor:
    """Spike rasters ``[n, steps, *pixels]`` (float32 0/1) of images ``[n, *pixels]``.

    Pixel x > 0 spikes once, at step ``round((1 − x/max_value)·(window − 1))`` (``window``
    defaults to ``steps``); x = 0 never spikes (module docstring).  Intensities must lie in
    ``[0, max_value]``.
    """
    window = steps if window is None else window
    if not 1 <= window <= steps:
        raise ValueError(f"need 1 <= window <= steps, got window={window}, steps={steps}")
    intensity = np.asarray(intensity, dtype=float)
    if intensity.ndim < 1 or np.any(intensity < 0) or np.any(intensity > max_value):
        raise ValueError(f"intensity must be an array [n, …] of values in [0, {max_value}]")
    when = np.rint((1.0 - intensity / max_value) * (window - 1)).astype(np.int64)
    sample, *pixel = np.nonzero(intensity > 0)
    x = np.zeros((intensity.shape[0], steps, *intensity.shape[1:]), dtype=np.float32)
    x[(sample, when[(sample, *pixel)], *pixel)] = 1.0
    return torch.from_numpy(x)


def held_out_split(labels: np.ndarray, test_size: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` of a stratified split of ``labels``: ``test_size`` of each class
    held out (``sklearn.model_selection.train_test_split`` with ``stratify``), fixed by ``seed``."""
    selection = require("sklearn.model_selection", "held_out_split (scikit-learn)", "examples")
    labels = np.asarray(labels)
    train, test = selection.train_test_split(
        np.arange(labels.size), test_size=test_size, stratify=labels, random_state=seed
    )
    return np.sort(train), np.sort(test)


def digits(
    steps: int = 10, *, window: int | None = None, test_size: float = 0.25, seed: int = 0
) -> tuple[TensorDataset, TensorDataset]:
    """The latency-coded digits, split into ``(train, test)`` datasets of ``(x [n, steps, 1, 8, 8]
    float32 0/1, labels [n] int64)``; :func:`held_out_split` with ``test_size`` and ``seed`` picks
    the test images (450 of 1797 by default).  ``window`` as in :func:`latency_code`."""
    sklearn_datasets = require("sklearn.datasets", "the digits dataset (scikit-learn)", "examples")
    data = sklearn_datasets.load_digits()
    images = data.images.reshape(-1, *DIGITS_SHAPE)
    x, labels = latency_code(images, steps, window=window), torch.as_tensor(data.target, dtype=torch.int64)
    train, test = held_out_split(data.target, test_size, seed)
    return TensorDataset(x[train], labels[train]), TensorDataset(x[test], labels[test])


__all__ = ["DIGITS_MAX", "DIGITS_SHAPE", "digits", "held_out_split", "latency_code"]
