"""Helpers of the CPU backend: time chunks, array layouts, per-neuron constants and index sets."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from snngraph.backends.cpu.options import CpuOptions
from snngraph.neurons import SPIKING, SUBTRACT, THETA, ZERO, block_rows, onset_row


def time_chunks(length: int, size: int) -> Iterator[tuple[int, int]]:
    """The spans ``[start, stop)`` of at most ``size`` items that cover ``0 … length``."""
    for start in range(0, length, size):
        yield start, min(length, start + size)


def chunk_size(length: int, values_per_item: int, options: CpuOptions) -> int:
    """Items (steps or rows) per chunk: at least ``length / chunks`` and ``workspace`` values."""
    return max(1, -(-length // options.chunks), options.workspace // max(1, values_per_item))


def column(vector: np.ndarray) -> np.ndarray:
    """A per-neuron vector ``[N]`` as ``[N, 1]``, for the ``[N, B]`` layout."""
    return vector[:, None]


def per_value(vector: np.ndarray | None, batch: int) -> np.ndarray | None:
    """A per-neuron vector ``[N]`` as a contiguous ``[N, B]``, for the per-step operations
    (measured 2× faster than broadcasting the ``[N, 1]`` column over a short ``B``)."""
    return None if vector is None else np.repeat(column(vector), batch, axis=1)


def delayed_rows(a: np.ndarray, d: int, steps: int) -> np.ndarray:
    """The rows ``X[t − d]``, ``t = 0 … T−1``, of ``a`` ``[Din + T, B, C]`` as ``[T·B, C]``."""
    first = a.shape[0] - steps - d
    return a[first : first + steps].reshape(steps * a.shape[1], a.shape[2])


def batch_rows(a: np.ndarray) -> np.ndarray:
    """Neuron-major steps ``[K, N, B]`` as contiguous batch-major rows ``[K·B, N]``."""
    return np.ascontiguousarray(a.transpose(0, 2, 1)).reshape(-1, a.shape[1])


def neuron_major(a: np.ndarray) -> np.ndarray:
    """``[…, B, N]`` → a contiguous ``[…, N, B]`` (a copy, or a view when the memory already is)."""
    return np.ascontiguousarray(a.swapaxes(-1, -2))


def batch_major(lam: np.ndarray, steps: int, options: CpuOptions) -> np.ndarray:
    """Rewrite rows ``0 … T−1`` of λU ``[T + D, N, B]`` in place as ``[T + D, B, N]``."""
    rows, n, batch = lam.shape
    flat = lam.reshape(-1)
    for lo, hi in time_chunks(steps, chunk_size(steps, n * batch, options)):
        flat[lo * n * batch : hi * n * batch] = lam[lo:hi].transpose(0, 2, 1).reshape(-1)
    return flat.reshape(rows, batch, n)


def nonzero_spans(a: np.ndarray) -> list[slice]:
    """The runs of neurons whose values in ``a`` ``[…, N]`` are not all zero, as slices: a loss
    that reads a few populations leaves the rest of ``∂L/∂U`` zero, and adding it step by step
    transposed was measured at 0.4 s of a 4 s training step of the N-MNIST CNN of
    ``benchmarks/bench_conv.py`` (two reductions, which write no temporary, find the runs)."""
    axes = tuple(range(a.ndim - 1))
    touched = (a.max(axis=axes) != 0) | (a.min(axis=axes) != 0)
    edges = np.flatnonzero(np.diff(np.concatenate([[False], touched, [False]]).astype(np.int8)))
    return [slice(int(start), int(stop)) for start, stop in zip(edges[::2], edges[1::2], strict=True)]


def live(onset: np.ndarray | None, t0: int, t1: int) -> np.ndarray | None:
    """``[t ≥ onset]`` ``[t1 − t0, N]`` bool for steps ``t0 … t1−1`` (``None`` for ``onset`` ``None``:
    every onset is 0)."""
    return None if onset is None else np.arange(t0, t1)[:, None] >= onset


_PLAIN = block_rows(1)
ALPHA, BIAS = _PLAIN["A"].start, _PLAIN["b"].start  # α = A₀₀ and b₀ of a plain table (K = 1)


class Neurons:
    """Per-neuron vectors of one call, from the table ``[P, N]`` of a plain layer (``K = 1``:
    α = A₀₀, θ, the bias b₀ and the flags; ``None`` for a reset that no neuron uses, or no bias)."""

    def __init__(self, table: np.ndarray, batch: int) -> None:
        alpha, theta, spiking = table[ALPHA], table[THETA], table[SPIKING] > 0
        self.bias = table[BIAS] if table[BIAS].any() else None
        onset = table[onset_row(1)]
        self.onset = onset if onset.any() else None

        zero, subtract = table[ZERO] > 0, table[SUBTRACT] > 0
        dtype = alpha.dtype
        self.alpha, self.theta = alpha, theta
        self.threshold = np.where(spiking, theta, np.inf).astype(dtype)  # θ, ∞ for readouts
        self.zero = zero.astype(dtype) if zero.any() else None  # z
        self.subtract = subtract.astype(dtype) if subtract.any() else None  # s
        self.subtract_theta = None if self.subtract is None else self.subtract * theta  # s θ
        self.zero_alpha = None if self.zero is None else self.zero * alpha  # z α
        self.resets_to_zero = column(zero) if zero.any() else None  # z > 0 as a bool [N, 1]
        self.every_spike_resets = bool(zero.any() and zero[spiking].all())  # z S = S: every spiking neuron has z
        # the same as contiguous [N, B] arrays, for the operations on [N, B] or [K, N, B] values
        self.alpha_nb, self.theta_nb = per_value(alpha, batch), per_value(theta, batch)
        self.threshold_nb = per_value(self.threshold, batch)
        self.silent = nonzero_spans(~spiking)  # the runs of neurons that never spike (readouts)
        self.zero_nb, self.subtract_theta_nb = per_value(self.zero, batch), per_value(self.subtract_theta, batch)

    def live(self, steps: int) -> np.ndarray | None:
        """``[t ≥ onset]`` ``[T, N]`` bool (``None`` when every onset is 0)."""
        return live(self.onset, 0, steps)

    def zeroed(self, spikes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``z S`` of bool ``spikes`` ``[…, N, B]`` (``resets_to_zero`` not ``None``): ``spikes``
        itself where every spiking neuron resets to zero, else ``spikes & z`` (into ``out``)."""
        return spikes if self.every_spike_resets else np.logical_and(spikes, self.resets_to_zero, out=out)

    def drive(self, steps: int) -> np.ndarray | None:
        """The bias of each step, ``b·[t ≥ onset]`` ``[T, N]`` (``None`` without a bias)."""
        if self.bias is None:
            return None
        live = self.live(steps)
        return np.broadcast_to(self.bias, (steps, self.bias.size)) if live is None else self.bias * live


def descending(counts: np.ndarray) -> np.ndarray:
    """The order that sorts the non-negative ints ``counts`` from largest to smallest (stable): a
    radix sort in 16 bits where they fit (measured 4× faster than ``np.argsort`` on 5 M events)."""
    small = counts.size and counts.max() < np.iinfo(np.int16).max
    return np.argsort(-counts.astype(np.int16) if small else -counts, kind="stable")


def distinct(delays: np.ndarray) -> np.ndarray:
    """The distinct values of the non-negative ints ``delays``, ascending (``np.unique`` by a count:
    linear in the synapses, where ``np.unique``'s hashing was measured at 70 ms per 100k)."""
    return np.flatnonzero(np.bincount(delays)) if delays.size else np.zeros(0, np.int64)
