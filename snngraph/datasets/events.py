"""Spike events → dense rasters ``[T, C]`` for the model's input ``X[t]``."""

from __future__ import annotations

import numpy as np
import torch


def spike_raster(spike_steps: np.ndarray, steps: int) -> torch.Tensor:
    """One spike per channel: integer steps ``[n, C]`` → 0/1 rasters ``[n, T, C]`` (float32)."""
    n, channels = spike_steps.shape
    raster = torch.zeros(n, steps, channels)
    sample, channel = np.indices((n, channels))
    raster[sample.ravel(), spike_steps.ravel(), channel.ravel()] = 1.0
    return raster


def bin_events(times: np.ndarray, units: np.ndarray, steps: int, duration: float, channels: int) -> torch.Tensor:
    """Spike counts per time bin: X[t, c] = #{spikes of unit c with t·Δ ≤ time < (t + 1)·Δ}.

    ``times`` (seconds) and ``units`` are ``[n_spikes]``; Δ = ``duration / steps``; spikes at or
    after ``duration`` are dropped.  Returns ``[T, C]`` float32.
    """
    step = np.floor(np.asarray(times, dtype=np.float64) * (steps / duration)).astype(np.int64)
    keep = (step >= 0) & (step < steps)
    counts = np.zeros((steps, channels), dtype=np.float32)
    np.add.at(counts, (step[keep], np.asarray(units, dtype=np.int64)[keep]), 1.0)
    return torch.from_numpy(counts)
