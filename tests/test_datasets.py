"""Datasets: shapes, determinism, label balance, and each generator against its formula."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from tiny_tasks import write_shd_file

from snngraph.datasets import SHD_CHANNELS, RandomManifold, bin_events, randman, shd, spike_intervals


def spike_steps(x: torch.Tensor) -> torch.Tensor:
    """[n, T, C] rasters with one spike per channel → the step of each spike [n, C]."""
    assert torch.equal(x.sum(dim=1), torch.ones(x.shape[0], x.shape[2]))
    return x.argmax(dim=1)


def test_random_manifold_is_the_formula() -> None:
    """f_c(z) = Π_d Σ_k a_cdk (k+1)^−α sin(2π(k b_cdk z_d + φ_cdk)), written out as loops."""
    alpha = 2.0
    f = RandomManifold.random(3, 2, np.random.default_rng(0), alpha=alpha, precision=1e-2)
    assert f.amplitude.shape == (3, 2, math.ceil(1e-2 ** (-1 / alpha)))
    assert np.all(f.amplitude[:, :, 0] == 0)
    z = np.random.default_rng(1).random((4, 2))
    expected = np.ones((4, 3))
    for n in range(4):
        for c in range(3):
            for d in range(2):
                expected[n, c] *= sum(
                    f.amplitude[c, d, k]
                    * (k + 1) ** -alpha
                    * math.sin(2 * math.pi * (k * f.frequency[c, d, k] * z[n, d] + f.phase[c, d, k]))
                    for k in range(f.amplitude.shape[2])
                )
    np.testing.assert_allclose(f(z), expected, rtol=1e-12, atol=1e-15)


def test_randman_shapes_balance_and_determinism() -> None:
    data = randman(n_classes=3, n_channels=7, steps=30, samples_per_class=20, dim=2, seed=4)
    x, labels = data.tensors
    assert x.shape == (60, 30, 7)
    assert x.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert torch.bincount(labels).tolist() == [20, 20, 20]
    assert not torch.equal(labels[:20], labels.sort().values[:20])  # shuffled
    again = randman(n_classes=3, n_channels=7, steps=30, samples_per_class=20, dim=2, seed=4)
    assert torch.equal(x, again.tensors[0])
    assert torch.equal(labels, again.tensors[1])
    other = randman(n_classes=3, n_channels=7, steps=30, samples_per_class=20, dim=2, seed=5)
    assert not torch.equal(x, other.tensors[0])


def test_randman_spike_times_span_the_window_per_class() -> None:
    """One spike per channel at ⌊T·f̂⌋, f̂ min-max normalised over a class's samples: per class
    and channel the earliest spike is at step 0 and the latest at T − 1."""
    x, labels = randman(n_classes=4, n_channels=5, steps=25, samples_per_class=30, seed=0).tensors
    steps = spike_steps(x)
    for k in range(4):
        assert steps[labels == k].min(dim=0).values.tolist() == [0] * 5
        assert steps[labels == k].max(dim=0).values.tolist() == [24] * 5


def test_spike_intervals_are_the_class_intervals() -> None:
    intervals = (2, 5, 11)
    x, labels = spike_intervals(intervals, n_pairs=3, steps=20, samples_per_class=40, seed=0).tensors
    assert x.shape == (120, 20, 6)
    assert torch.bincount(labels).tolist() == [40, 40, 40]
    steps = spike_steps(x)
    a, b = steps[:, 0::2], steps[:, 1::2]
    expected = torch.tensor(intervals)[labels][:, None].expand(-1, 3)
    assert torch.equal(b - a, expected)
    for k in range(3):  # onsets do not depend on the class: all lie in [0, T − max Δ)
        assert a[labels == k].min() >= 0
        assert a[labels == k].max() < 20 - 11
    assert torch.equal(x, spike_intervals(intervals, n_pairs=3, steps=20, samples_per_class=40, seed=0).tensors[0])


def test_spike_intervals_errors() -> None:
    with pytest.raises(ValueError, match="at least two distinct ints"):
        spike_intervals((3, 3))
    with pytest.raises(ValueError, match=r"intervals must lie in \[1, steps\) = \[1, 10\).*raise steps"):
        spike_intervals((3, 12), steps=10)


def test_bin_events_counts_spikes_per_bin() -> None:
    times = np.array([0.0, 0.09, 0.1, 0.1, 0.35, 0.399, 0.4, 0.7])
    units = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    x = bin_events(times, units, steps=4, duration=0.4, channels=3)  # bins of 0.1 s
    expected = torch.zeros(4, 3)
    for t, u in zip(times, units, strict=True):
        if t < 0.4:
            expected[int(t // 0.1 + 1e-9), u] += 1
    assert torch.equal(x, expected)
    assert x.sum() == 6  # 0.4 s and 0.7 s fall past the window


def test_shd_loads_and_bins_a_written_file(tmp_path: Path) -> None:
    times, units, labels = write_shd_file(tmp_path / "shd_test.h5", 5)
    data = shd(tmp_path / "shd_test.h5", steps=14, duration=1.4)
    assert len(data) == 5
    for i in range(5):
        x, label = data[i]
        assert x.shape == (14, SHD_CHANNELS)
        assert x.dtype == torch.float32
        assert label.item() == labels[i]
        assert label.dtype == torch.int64
        expected = torch.zeros(14, SHD_CHANNELS)
        for t, u in zip(times[i], units[i], strict=True):
            if t < 1.4:
                expected[int(np.floor(np.float64(t) / 0.1)), u] += 1
        assert torch.equal(x, expected)
    batch_x, batch_y = next(iter(torch.utils.data.DataLoader(data, batch_size=5)))
    assert batch_x.shape == (5, 14, SHD_CHANNELS)
    assert batch_y.tolist() == labels.tolist()


def test_shd_errors_say_where_to_get_the_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no SHD file at .*shd_train\.h5.*zenkelab\.org/datasets.*gunzip"):
        shd(tmp_path / "shd_train.h5")
    with h5py.File(tmp_path / "other.h5", "w") as file:
        file.create_dataset("labels", data=np.zeros(3))
    with pytest.raises(ValueError, match=r"not an SHD file: it lacks \['spikes/times', 'spikes/units'\]"):
        shd(tmp_path / "other.h5")
