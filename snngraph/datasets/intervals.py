"""Spike intervals: a task whose classes are the intervals between input spikes.

The input has ``2P`` channels in ``P`` pairs ``(a_p, b_p)`` = channels ``(2p, 2p + 1)``.  In a
sample of class k every pair spikes once on each channel: a_p at a random onset t0_p and b_p
at t0_p + Δ_k, with Δ_k = ``intervals[k]``.  Onsets are uniform in [0, T − max Δ) for every class
and pair, independently, so neither the spike counts nor the onsets say anything about the
class: only the interval does.

A leaky neuron forgets its input within a few membrane time constants, so without synaptic
delays an interval much longer than that has to be carried by recurrent activity.  With
per-synapse delays a neuron that hears a_p through delay d_a and b_p through d_b sees both
spikes at once when Δ = d_a − d_b: a coincidence detector tuned to one class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import TensorDataset

from snngraph.datasets.events import spike_raster


def spike_intervals(
    intervals: Sequence[int] = (3, 6, 9, 12, 15),
    n_pairs: int = 2,
    steps: int = 40,
    samples_per_class: int = 200,
    seed: int = 0,
) -> TensorDataset:
    """The interval task: ``(x [n, T, 2P] float32 0/1, labels [n] int64)``, ``n = K·samples_per_class``.

    Class k has interval Δ_k = ``intervals[k]`` (distinct, ≥ 1, < ``steps``) between the spikes
    of the two channels of each pair (module docstring).  Samples are in random order, classes
    balanced; the same ``seed`` gives the same data.
    """
    deltas = np.asarray(intervals, dtype=np.int64)
    if deltas.ndim != 1 or deltas.size < 2 or np.unique(deltas).size != deltas.size:
        raise ValueError(f"intervals must be at least two distinct ints, one per class, got {intervals!r}")
    if deltas.min() < 1 or deltas.max() >= steps:
        raise ValueError(f"intervals must lie in [1, steps) = [1, {steps}), got {intervals!r}; raise steps")
    if n_pairs < 1 or samples_per_class < 1:
        raise ValueError(f"need n_pairs >= 1 and samples_per_class >= 1, got {n_pairs} and {samples_per_class}")
    rng = np.random.default_rng(seed)
    n = deltas.size * samples_per_class
    labels = rng.permutation(np.repeat(np.arange(deltas.size), samples_per_class))
    onset = rng.integers(0, steps - deltas.max(), size=(n, n_pairs))
    # channel 2p spikes at the onset, channel 2p + 1 an interval later
    spike_steps = np.stack([onset, onset + deltas[labels, None]], axis=2).reshape(n, 2 * n_pairs)
    return TensorDataset(spike_raster(spike_steps, steps), torch.as_tensor(labels))
