"""Tiny tasks shared by the training tests: a small classifier, a small Randman, an SHD file."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import TensorDataset

import snngraph
from snngraph.datasets import randman
from snngraph.datasets.shd import SHD_CHANNELS

CHANNELS, HIDDEN, CLASSES = 8, 16, 2


def tiny_classifier(
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    batch_first: bool = False,
    adaptive: bool = False,
    learn: tuple[str, ...] = (),
) -> snngraph.SNN:
    """input → recurrent lif with delays → li readout, reference backend (``adaptive``: ALIF
    neurons with a synaptic current and a bias, three state variables)."""
    rng = np.random.default_rng(seed)
    g = snngraph.Graph()
    g.add_input("input", CHANNELS)
    if adaptive:
        g.add_alif("hidden", HIDDEN, alpha=0.9, alpha_syn=0.6, alpha_adapt=0.9, adapt=0.2, bias=0.05)
    else:
        g.add_lif("hidden", HIDDEN, alpha=0.9)
    g.add_li("readout", CLASSES, alpha=0.9)
    w_in = rng.normal(0.0, 3.0 / np.sqrt(CHANNELS), (HIDDEN, CHANNELS))
    g.connect("input", "hidden", weight=w_in, delay=snngraph.random_delays(w_in, 0, 3, seed=seed + 1))
    w_rec = snngraph.random_weight(HIDDEN, HIDDEN, density=0.3, seed=seed + 2)
    g.connect("hidden", "hidden", weight=w_rec, delay=snngraph.random_delays(w_rec, 1, 3, seed=seed + 3))
    g.connect("hidden", "readout", weight=rng.normal(0.0, 1.0 / np.sqrt(HIDDEN), (CLASSES, HIDDEN)), delay=0)
    surrogate = snngraph.surrogates.FastSigmoid(10.0)
    net = snngraph.compile(g)
    return snngraph.SNN(
        net, backend="reference", surrogate=surrogate, dtype=dtype, batch_first=batch_first, learn=learn
    )


def tiny_randman(samples_per_class: int = 32) -> TensorDataset:
    return randman(n_classes=CLASSES, n_channels=CHANNELS, steps=20, samples_per_class=samples_per_class, seed=0)


def write_shd_file(path: Path, n_samples: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """A small file in the SHD layout: spikes/times (s), spikes/units, labels (variable length)."""
    rng = np.random.default_rng(seed)
    times = [np.sort(rng.uniform(0.0, 1.5, rng.integers(1, 40))).astype(np.float32) for _ in range(n_samples)]
    units = [rng.integers(0, SHD_CHANNELS, t.size).astype(np.uint16) for t in times]
    labels = rng.integers(0, 20, n_samples).astype(np.uint8)
    with h5py.File(path, "w") as file:
        file.create_dataset("spikes/times", data=np.array(times, dtype=object), dtype=h5py.vlen_dtype(np.float32))
        file.create_dataset("spikes/units", data=np.array(units, dtype=object), dtype=h5py.vlen_dtype(np.uint16))
        file.create_dataset("labels", data=labels)
        file.create_dataset("extra/speaker", data=rng.integers(0, 12, n_samples))
    return times, units, labels
