"""Synapse plans: the index structures the CPU backend derives once per model (its
:class:`~snngraph.backends.base.Plan`), and the torch sparse CSR tensors built from them per call."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from snngraph.backends.base import LayerSpec, Plan, SynapseRange
from snngraph.backends.cpu.arrays import distinct
from snngraph.backends.cpu.convolution import ConvBlock, conv_blocks
from snngraph.backends.cpu.memory import ArrayCache
from snngraph.backends.cpu.options import CpuOptions


def as_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy()


def _index_array(values: np.ndarray, bound: int) -> np.ndarray:
    """``values`` as the index dtype SciPy prefers for arrays whose entries stay below ``bound``."""
    return values.astype(np.int32 if bound < np.iinfo(np.int32).max else np.int64)


_CSR_BETA_WARNING = r"Sparse CSR tensor support is in beta state"
"""The start of the ``UserWarning`` torch emits (once per process) on building a sparse CSR tensor."""


def torch_csr(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """A torch sparse CSR tensor, for the per-step products and the sampled products.

    The indices must be canonical (columns sorted and distinct within a row), the layout torch
    assumes; they are passed as int32 where they fit (the backward product was measured 2.2×
    faster than SciPy's with int32, 1.7× with int64).
    """
    index = np.int32 if max(shape[1], values.size) < np.iinfo(np.int32).max else np.int64
    with warnings.catch_warnings():
        # Torch's sparse CSR layout is marked beta and says so with a UserWarning on the first
        # tensor built; the operations used here are checked against the reference backend by
        # the tests, and under pytest's filterwarnings=error the warning would fail the first
        # call.  Only that warning is silenced.
        warnings.filterwarnings("ignore", message=_CSR_BETA_WARNING, category=UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(indptr.astype(index)),
            torch.from_numpy(indices.astype(index)),
            torch.from_numpy(values),
            size=shape,
            # canonical by construction; passing the flag also opts out of torch's warning
            # that the invariant checks are implicitly disabled
            check_invariants=False,
        )


def torch_product_matrix(matrix: sp.csr_array) -> torch.Tensor:
    """``matrix`` as a torch sparse CSR tensor, after summing duplicates (canonical form).

    Torch's CSR × dense product (MKL) was measured 1.3× (forward, ``(D·N, N)``) and 2.2×
    (backward, ``(N, D·N)``) faster than SciPy's on the sparse benchmark network, one thread.
    """
    matrix.sum_duplicates()
    return torch_csr(matrix.indptr, matrix.indices, matrix.data, matrix.shape)


@dataclass(frozen=True, eq=False)
class DenseBlock:
    """The synapses of one delay inside a dense bounding box ``post × pre``.

    ``cell`` follows the synapses' order, row-major in ``W[post, pre]`` for a dense edge, so that
    filling the block and reading its gradient run through memory in order.
    """

    delay: int
    post: slice
    pre: slice
    synapses: np.ndarray  # indices into the weight vector
    cell: np.ndarray  # flat index of each synapse in W: (post − post.start)·n_pre + pre − pre.start
    duplicates: bool  # whether two synapses share a cell (their weights add up)

    @property
    def shape(self) -> tuple[int, int]:
        return self.post.stop - self.post.start, self.pre.stop - self.pre.start

    def matrix(self, w: np.ndarray) -> torch.Tensor:
        """``W[post, pre]`` with this call's weights."""
        dense = np.zeros(self.shape, w.dtype)
        if self.duplicates:
            np.add.at(dense.reshape(-1), self.cell, np.take(w, self.synapses))
        else:
            dense.reshape(-1)[self.cell] = np.take(w, self.synapses)
        return torch.from_numpy(dense)

    def transposed(self, w: np.ndarray) -> torch.Tensor:
        """A contiguous ``Wᵀ[pre, post]``, for the backward per-step products ``Wᵀ λU``
        (measured 1.2–2× faster than through the transposed view of ``W``)."""
        return self.matrix(w).T.contiguous()


@dataclass(frozen=True, eq=False)
class SparseSynapses:
    """All synapses outside dense blocks, in CSR order by presynaptic index (then by postsynaptic).

    ``synapses`` ``[n]`` indexes the weight vector; ``indptr`` ``[n_pre + 1]`` delimits the
    outgoing synapses of each presynaptic index; ``post``, ``delay`` ``[n]`` (int64);
    ``delays`` the distinct delays, ascending.
    """

    synapses: np.ndarray
    indptr: np.ndarray
    post: np.ndarray
    delay: np.ndarray
    delays: np.ndarray

    @property
    def fanout(self) -> np.ndarray:
        return np.diff(self.indptr)

    def by_pre(self, w: np.ndarray, columns: np.ndarray, n_columns: int) -> sp.csr_array:
        """CSR matrix ``(n_pre, n_columns)`` with ``[pre_k, columns_k] = w_k``."""
        shape = (self.indptr.size - 1, n_columns)
        return sp.csr_array((w[self.synapses], columns, self.indptr), shape=shape)

    def pairs(self, pre: np.ndarray, base: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (event, outgoing synapse) pair of events with presynaptic index ``pre``: the
        synapse's position in this order and the flat index ``key[synapse] + base[event]``."""
        start = self.indptr[pre]
        count = self.indptr[pre + 1] - start
        end = np.cumsum(count)
        syn = np.arange(end[-1] if end.size else 0)
        syn += np.repeat(start + count - end, count)
        target = np.take(key, syn)
        target += np.repeat(base, count)
        return syn, target


@dataclass(frozen=True, eq=False)
class DelayPattern:
    """The sparse recurrent synapses of one delay as a CSR pattern ``(N_pre, N_post)``, for the
    sampled products of the weight gradient; ``positions`` are their places in
    :class:`SparseSynapses` order, in CSR order (by pre, then post)."""

    delay: int
    positions: np.ndarray
    indptr: np.ndarray
    post: np.ndarray

    @staticmethod
    def of(sparse: SparseSynapses) -> tuple[DelayPattern, ...]:
        n = sparse.indptr.size - 1
        pre = np.repeat(np.arange(n), sparse.fanout)
        patterns = []
        for d in sparse.delays.tolist():
            positions = np.flatnonzero(sparse.delay == d)  # by pre, then post, as the sparse synapses are
            indptr = np.zeros(n + 1, np.int64)
            np.cumsum(np.bincount(pre[positions], minlength=n), out=indptr[1:])
            patterns.append(DelayPattern(d, positions, indptr, sparse.post[positions]))
        return tuple(patterns)

    def matrix(self, dtype: np.dtype) -> torch.Tensor:
        """The pattern as a torch CSR tensor of zeros."""
        n = self.indptr.size - 1
        return torch_csr(self.indptr, self.post, np.zeros(self.positions.size, dtype), (n, n))


@dataclass(frozen=True, eq=False)
class SynapsePlan:
    """One synapse population (input or recurrent) split into convolution blocks, dense blocks
    and the rest."""

    shape: tuple[int, int]  # (n_post, n_pre)
    dense: tuple[DenseBlock, ...]
    sparse: SparseSynapses
    sparse_by_delay: tuple[tuple[int, np.ndarray, np.ndarray, np.ndarray], ...]
    """Per distinct sparse delay: ``(delay, synapses, pre, indptr)``, CSR by post (inputs only)."""
    learned: SparseSynapses
    """The sparse synapses whose weight gradient is read (``sparse`` less the fixed ones,
    ``LayerSpec.fixed``; ``sparse`` itself when none is fixed)."""
    conv: tuple[ConvBlock, ...] = ()


def plan_synapses(
    post: np.ndarray,
    pre: np.ndarray,
    delay: np.ndarray,
    shape: tuple[int, int],
    dense_density: float,
    min_dense_area: int,
    by_delay: bool,
    conv: tuple[tuple[ConvBlock, ...], np.ndarray],
    fixed: np.ndarray,
    edge: np.ndarray,
) -> SynapsePlan:
    """Split synapses ``pre → post`` of a ``(n_post, n_pre)`` population into dense blocks
    (bounding box at least ``dense_density`` full and ``min_dense_area`` large) and the sparse
    rest: first the synapses of each edge and delay (``edge``: an int label per synapse), then
    those left of each delay; ``by_delay`` adds the sparse rest's CSR-by-post matrices per delay.
    ``conv`` holds convolution blocks and the synapses they take, which the other parts leave
    out; ``fixed`` (bool per synapse) marks those whose gradient is not read."""
    n_post, n_pre = shape
    free = np.ones(delay.size, bool)
    free[conv[1]] = False
    dense = dense_density, min_dense_area
    blocks, rest = [], [np.flatnonzero(free)]
    for keys in ((edge, delay), (delay,)):
        left = np.concatenate(rest) if rest else np.zeros(0, np.int64)
        found, rest = _dense_blocks(_runs(left, keys), post, pre, delay, *dense)
        blocks += found
    chosen = np.sort(np.concatenate(rest)) if rest else np.zeros(0, np.int64)
    chosen = chosen[np.lexsort((post[chosen], pre[chosen]))]  # by pre, then post: every delay's share too
    sparse = _by_pre(chosen, post, pre, delay, n_pre)
    delays = sparse.delays
    learned = sparse
    if fixed[chosen].any():
        learned = _by_pre(chosen[~fixed[chosen]], post, pre, delay, n_pre)
    per_delay = []
    for d in delays if by_delay else []:
        group = chosen[delay[chosen] == d]
        group = group[np.argsort(post[group], kind="stable")]
        group_indptr = np.zeros(n_post + 1, np.int64)
        np.cumsum(np.bincount(post[group], minlength=n_post), out=group_indptr[1:])
        per_delay.append((int(d), group, _index_array(pre[group], n_pre), group_indptr))
    return SynapsePlan(shape, tuple(blocks), sparse, tuple(per_delay), learned, conv[0])


def _runs(order: np.ndarray, keys: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    """The synapses ``order`` in runs of equal ``keys`` (each a value per synapse), sorted by them."""
    order = order[np.lexsort(tuple(key[order] for key in reversed(keys)))]
    change = np.zeros(max(0, order.size - 1), bool)
    for key in keys:
        change |= np.diff(key[order]) != 0
    return np.split(order, np.flatnonzero(change) + 1) if order.size else []


def _dense_blocks(
    groups: list[np.ndarray], post: np.ndarray, pre: np.ndarray, delay: np.ndarray, density: float, min_area: int
) -> tuple[list[DenseBlock], list[np.ndarray]]:
    """The groups of one delay each whose bounding box is at least ``density`` full and
    ``min_area`` large, as dense blocks, and the other groups."""
    blocks, rest = [], []
    for group in groups:
        p, q = post[group], pre[group]
        rows, cols = slice(int(p.min()), int(p.max()) + 1), slice(int(q.min()), int(q.max()) + 1)
        area = (rows.stop - rows.start) * (cols.stop - cols.start)
        if area >= min_area and group.size >= density * area:
            cell = (p - rows.start) * (cols.stop - cols.start) + q - cols.start
            duplicates = bool(np.bincount(cell, minlength=area).max(initial=0) > 1)  # O(area), no sort or hash
            blocks.append(DenseBlock(int(delay[group[0]]), rows, cols, group, cell, duplicates))
        else:
            rest.append(group)
    return blocks, rest


def _by_pre(chosen: np.ndarray, post: np.ndarray, pre: np.ndarray, delay: np.ndarray, n_pre: int) -> SparseSynapses:
    """The synapses ``chosen`` (sorted by pre, then post) as :class:`SparseSynapses`."""
    indptr = np.zeros(n_pre + 1, np.int64)
    np.cumsum(np.bincount(pre[chosen], minlength=n_pre), out=indptr[1:])
    return SparseSynapses(chosen, indptr, post[chosen], delay[chosen], distinct(delay[chosen]))


@dataclass(frozen=True, eq=False)
class LayerPlan:
    """What the backend derives from a layer's indices once: both synapse plans and flags, and
    the memory of the whole-sequence arrays (:class:`~snngraph.backends.cpu.memory.ArrayCache`,
    passed on from plan to plan)."""

    inputs: SynapsePlan
    recurrent: SynapsePlan
    forward_columns: np.ndarray  # slot·N + post of the sparse recurrent synapses
    backward_columns: np.ndarray  # (delay − 1)·N + post
    patterns: tuple[DelayPattern, ...]  # the sparse recurrent synapses per delay
    memory: ArrayCache


INDEX_NAMES = ("post", "pre", "delay")


def _same_indices(layer: LayerSpec, other: LayerSpec, prefix: str, names: tuple[str, ...]) -> bool:
    return all(getattr(layer, f"{prefix}_{name}") is getattr(other, f"{prefix}_{name}") for name in names)


def _with_moved_delays(plan: SynapsePlan, delay: np.ndarray) -> SynapsePlan:
    """``plan`` (all synapses sparse, none by delay) with the synapses' new delays ``delay``: the
    order by pre, then post does not depend on them, so only the delays are read again."""

    def moved(sparse: SparseSynapses) -> SparseSynapses:
        delays = delay[sparse.synapses]
        return dataclasses.replace(sparse, delay=delays, delays=distinct(delays))

    sparse = moved(plan.sparse)
    learned = sparse if plan.learned is plan.sparse else moved(plan.learned)
    return dataclasses.replace(plan, sparse=sparse, learned=learned)


def layer_plan(layer: LayerSpec, options: CpuOptions, previous: Plan | None = None) -> LayerPlan:
    """The :class:`LayerPlan` of ``layer`` with the dense-block thresholds of ``options``; the
    synapse plan of a population whose index tensors are those of ``previous`` (a plan of these
    options) is taken from it (a model whose recurrent delays moved keeps its input plan), and
    one whose delays alone moved keeps its order when it was all sparse (no dense blocks, which
    the new delays do not look for again, and no convolutions)."""
    n, c = layer.n_neurons, layer.n_inputs
    thresholds = (options.dense_density, options.min_dense_area)
    plans = {}
    for prefix, target, field, shape in (("in", "input", "inputs", (n, c)), ("rec", "recurrent", "recurrent", (n, n))):
        before = None if previous is None else getattr(previous.structures, field)
        if before is not None and _same_indices(layer, previous.layer, prefix, INDEX_NAMES):
            plans[field] = before
            continue
        only_sparse = before is not None and not (before.dense or before.conv or before.sparse_by_delay)
        if only_sparse and _same_indices(layer, previous.layer, prefix, ("post", "pre")):
            plans[field] = _with_moved_delays(before, as_numpy(getattr(layer, f"{prefix}_delay")))
            continue
        n_synapses = getattr(layer, f"{prefix}_post").numel()
        plans[field] = plan_synapses(
            *(as_numpy(getattr(layer, f"{prefix}_{name}")) for name in INDEX_NAMES), shape, *thresholds,
            by_delay=prefix == "in", conv=conv_blocks(layer, target, options.conv_min_synapses),
            fixed=_labels(layer.fixed, target, n_synapses) > 0, edge=_labels(layer.edges, target, n_synapses),
        )  # fmt: skip
    inputs, recurrent = plans["inputs"], plans["recurrent"]
    rec = recurrent.sparse
    slot = np.searchsorted(rec.delays, rec.delay)  # index of each synapse's delay in rec.delays
    return LayerPlan(
        inputs=inputs,
        recurrent=recurrent,
        forward_columns=_index_array(slot * n + rec.post, max(1, rec.delays.size) * n),
        backward_columns=_index_array((rec.delay - 1) * n + rec.post, layer.max_delay * n),
        patterns=DelayPattern.of(recurrent.learned),
        memory=ArrayCache() if previous is None else previous.structures.memory,
    )


def _labels(ranges: tuple[SynapseRange, ...], target: str, size: int) -> np.ndarray:
    """For each of the ``size`` synapses of ``target``: ``i`` when it is in the ``i``-th of
    ``ranges`` of that target (from 1), 0 when it is in none."""
    labels = np.zeros(size, np.int64)
    for i, r in enumerate((r for r in ranges if r.target == target), 1):
        labels[r.start : r.stop] = i
    return labels


def sparse_input_matrices(plan: SynapsePlan, w: np.ndarray) -> list[tuple[int, sp.csr_array]]:
    """``(d, W_d)`` with ``W_d`` ``(N, C)`` in CSR for each sparse input delay ``d``."""
    return [
        (d, sp.csr_array((w[synapses], pre, indptr), shape=plan.shape))
        for d, synapses, pre, indptr in plan.sparse_by_delay
    ]
