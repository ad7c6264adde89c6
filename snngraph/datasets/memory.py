"""Store and recall: a working-memory task whose answer must be held across a silent delay.

A sample has three phases of ``cue``, ``delay`` and ``recall`` steps.  The input channels form
``n_classes + 1`` groups of ``group`` channels: during the cue, the group of the sample's class
fires at ``rate`` per step and channel; during the delay only background spikes at ``noise``;
during the recall the last group (the "go" signal) fires at ``rate``, the same for every class.
The label is the class of the cue.  A readout that is read at the end of the recall sees the cue
only through what the network kept over ``delay`` steps: with a delay much longer than the
membrane time constant, plain LIF neurons hold nothing, while adaptive neurons keep the cue in
their adaptation (a raised threshold or an adaptation current) for about ``1/(1 − alpha_adapt)``
steps (the store-recall task of Bellec et al. 2018, with a fixed recall time).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset


def store_recall(
    n_classes: int = 2,
    samples_per_class: int = 200,
    *,
    cue: int = 10,
    delay: int = 60,
    recall: int = 10,
    group: int = 8,
    rate: float = 0.5,
    noise: float = 0.01,
    seed: int = 0,
) -> TensorDataset:
    """``(x [n, T, C] float32 0/1, labels [n] int64)`` with ``T = cue + delay + recall`` and
    ``C = (n_classes + 1)·group`` channels, ``n = n_classes · samples_per_class`` samples in
    random order (module docstring).  The same ``seed`` gives the same data."""
    if n_classes < 2 or samples_per_class < 1:
        raise ValueError(f"need n_classes >= 2 and samples_per_class >= 1, got {n_classes} and {samples_per_class}")
    if min(cue, recall, group) < 1 or delay < 0:
        raise ValueError(f"need cue, recall, group >= 1 and delay >= 0, got {cue}, {recall}, {group}, {delay}")
    if not (0 <= noise <= 1 and 0 < rate <= 1):
        raise ValueError(f"rates are probabilities per step: need 0 < rate <= 1, 0 <= noise <= 1, got {rate}, {noise}")
    rng = np.random.default_rng(seed)
    n, steps, channels = n_classes * samples_per_class, cue + delay + recall, (n_classes + 1) * group
    labels = rng.permutation(np.repeat(np.arange(n_classes), samples_per_class))
    probability = np.full((n, steps, channels), noise)
    for k in range(n_classes):
        probability[labels == k, :cue, k * group : (k + 1) * group] = rate
    probability[:, cue + delay :, n_classes * group :] = rate
    x = (rng.random((n, steps, channels)) < probability).astype(np.float32)
    return TensorDataset(torch.from_numpy(x), torch.as_tensor(labels, dtype=torch.int64))
