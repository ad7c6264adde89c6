"""CPU backend: the compiled layer in NumPy/SciPy, event-driven where the layer is quiet.

Notation of DESIGN §1–2 and :mod:`snngraph.backends.base`: ``T`` steps, ``B`` batch, ``N``
neurons, ``C`` input channels, ``D`` = ``layer.max_delay``, ``Din`` = ``layer.max_input_delay``;
``s``, ``z``, ``m`` the per-neuron flags ``reset_subtract``, ``reset_zero``, ``spiking``.

Forward.  The membranes are computed neuron-major, ``V`` ``[T, N, B]`` (returned as the
``[T, B, N]`` view ``U``), and ``V`` doubles as the buffer of future input currents:

1. before the time loop, ``V[t] ← (Σ_d X[t − d] W_in,dᵀ)ᵀ`` — per time chunk one product per
   input delay ``d`` (a BLAS product for a dense delay block, a SciPy product otherwise);
2. the spikes of the incoming history ``S[−D … −1]`` are added into the rows they reach;
3. per step: ``V[t] += α V[t−1] (1 − z S[t−1]) − s θ S[t−1]``, ``S[t] = m·H(V[t] − θ)``, and
   ``S[t]`` is sent along its outgoing synapses into ``V[t + d]``.  Only steps that spiked do
   any recurrent work, and a step with few spikes walks the outgoing synapses of its spike events
   (``np.add.at`` over ``events × fan-out``, :data:`EVENT_FRACTION`); a busier step multiplies
   ``S[t]`` by the sparse matrix of all synapses (cost ``nnz × B``), which is cheaper per synapse
   (a torch sparse CSR product, see :func:`_torch_product_matrix`), accumulated in place into
   the rows ``V[t + d]``.

Backward (DESIGN §2 with the flags), λU ``[T + D, N, B]`` (batch innermost, ``D`` zero rows at the
end), in chunks of steps backwards in time:

    λS[t] = ∂L/∂S[t] + Σ_{rec k: j→i, d} w_k λU[t+d]_i − (s θ + z α U[t]) λU[t+1]
    λU[t] = ∂L/∂U[t] + α (1 − z S[t]) λU[t+1] + m σ'(U[t] − θ) λS[t]

(the reset term of λS is dropped when ``detach_reset``).  Per step one sparse product (torch
sparse CSR) ``λS_rec[t] = M_b · vec(λU[t+1 … t+D])`` with ``M_b`` of shape ``(N, D·N)``,
``M_b[j, (d−1)·N + i] = w`` for the synapse ``j → i`` of delay ``d`` (the window of ``D`` future
rows is contiguous, so no copy), plus one BLAS product per dense delay block; everything that
does not depend on the recursion is vectorised over the chunk.  Afterwards

    ∂w_k (rec)  = Σ_{t,b} λU[t+d]_post S[t]_pre       gathered per spike event (t, b, pre),
                                                       or sampled products (:data:`SAMPLED_RATE`)
    ∂w_k (in)   = Σ_{t,b} λU[t]_post X[t−d]_pre        gathered per non-zero input
    ∂X[t]_c     = Σ_{in k from c} w_k λU[t+d]_post     one product per input delay
    ∂α = Σ_t λU[t] U[t−1] (1 − z S[t−1]),   ∂θ = −Σ_t m σ'(U[t] − θ) λS[t] − s Σ_t λU[t+1] S[t]
    ∂U[−1] = α (1 − z S[−1]) λU[0],          ∂S[−k] = λS[−k]

(dense delay blocks take their weight gradient from one BLAS product per time chunk).

Dense or sparse.  The synapses of one delay whose bounding box ``post × pre`` is at least
:data:`DENSE_DENSITY` full (and not tiny) form a dense block multiplied with BLAS through torch;
all other synapses share the sparse structures.  Both constants come from timing the products on
the development machine (2-core Xeon, torch 2.13 CPU, SciPy 1.17); see ``docs/cpu_backend.md``.

Memory.  Saved for backward (by :mod:`snngraph.autograd`): the inputs and ``U``.  Backward
workspace: λU ``(T + D)·N·B`` values, about 8 arrays of one time chunk (``T/CHUNKS`` steps, see
:data:`CHUNKS`), ``(2D − 1)·N·B`` for the gradient of the incoming spikes and the queue of spike
events (two int64 per event, at most ``(T + D)·N·B / CHUNKS`` events).
"""

from __future__ import annotations

import warnings
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from snngraph.backends.base import Layer, LayerInputs

EVENT_FRACTION = 0.015
"""A step with fewer than ``EVENT_FRACTION·N·B`` spikes walks its events; a busier one multiplies
(the fraction doubles for float64, whose products cost twice).

Measured (forward pass, both ways forced, float32): equal times at firing rates of 1–2% for
N = 1024 … 4096, B = 8 … 32, fan-out 40 and 100 — an (event, synapse) pair costs about 8 ns
through ``np.add.at``, a multiply-add of torch's sparse CSR × dense product about 0.12 ns
(``B`` of them per synapse)."""

DENSE_DENSITY = 0.1
"""A delay block whose bounding box is at least this full runs as a dense BLAS product.

Measured (the backward product ``Wᵀ λU[t+d]``, SciPy CSR against torch with a contiguous ``Wᵀ``,
N = 1024 … 2048, B = 8 … 32): equal times at 5% density, dense 1.6–2.4× faster at 10%.  Between
5 and 10% the sparse side keeps its event walk in the forward pass, hence 10%."""

MIN_DENSE_AREA = 4096
"""Smaller blocks stay in the shared sparse matrix: the per-call overhead of an extra product
(about 10 µs) outweighs its work."""

SAMPLED_RATE = 0.04
"""Above this ratio of (spike event, synapse) pairs to ``nnz·T·B`` (the firing rate weighted by
fan-out), the weight gradient of the sparse recurrent synapses comes from sampled products
instead of the per-event gather; the ratio doubles for float64, whose products cost twice.

Measured (both forced, N = 1024 … 4096, B = 16 and 32, fan-out 40, rates 2 … 10%): the gather
costs 7–13 ns per pair (NumPy take and add.at), a sampled product 0.31–0.38 ns per multiply-add
in float32 and 0.55–0.69 ns in float64, whatever the spikes; equal times at ratios of
0.03–0.05 (float32) and 0.04–0.09 (float64)."""

SPIKE_PRODUCT_FRACTION = 0.08
"""The weight gradient of a dense block, ``Σ_t λU[t+d] S[t]ᵀ`` per time chunk, multiplies the
chunk's spikes as a sparse matrix when fewer than this fraction of them are 1 (and the block has
at least :data:`SPIKE_PRODUCT_MIN_AREA` cells), else densely with BLAS.

Measured (one chunk of 7 steps, both ways, conversions included): the sparse product is 1.3–4×
faster below 5% spikes for blocks of 1024² and 2048² cells (B = 8 … 32), equal at about 10% for
512², and never faster for 256²."""

SPIKE_PRODUCT_MIN_AREA = 1 << 18

WORKSPACE = 1 << 16
"""Values per temporary array below which a time chunk is never cut (tiny layers: one chunk)."""

CHUNKS = 16
"""The backward pass runs in at most this many time chunks: the about 8 temporary arrays of a
chunk then take about half the memory of λU, whatever ``T``."""


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy()


def _index_array(values: np.ndarray, bound: int) -> np.ndarray:
    """``values`` as the index dtype SciPy prefers for arrays whose entries stay below ``bound``."""
    return values.astype(np.int32 if bound < np.iinfo(np.int32).max else np.int64)


_CSR_BETA_WARNING = r"Sparse CSR tensor support is in beta state"
"""The start of the ``UserWarning`` torch emits (once per process) on building a sparse CSR tensor."""


def _torch_csr(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
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


def _torch_product_matrix(matrix: sp.csr_array) -> torch.Tensor:
    """``matrix`` as a torch sparse CSR tensor, after summing duplicates (canonical form).

    Torch's CSR × dense product (MKL) was measured 1.3× (forward, ``(D·N, N)``) and 2.2×
    (backward, ``(N, D·N)``) faster than SciPy's on the sparse benchmark network, one thread.
    """
    matrix.sum_duplicates()
    return _torch_csr(matrix.indptr, matrix.indices, matrix.data, matrix.shape)


# --------------------------------------------------------------------------------------------
# Synapse plans: index structures derived once per model (cached in ``layer.cache``).


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
    """All synapses outside dense blocks, in CSR order by presynaptic index.

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
            positions = np.flatnonzero(sparse.delay == d)
            positions = positions[np.lexsort((sparse.post[positions], pre[positions]))]
            indptr = np.zeros(n + 1, np.int64)
            np.cumsum(np.bincount(pre[positions], minlength=n), out=indptr[1:])
            patterns.append(DelayPattern(d, positions, indptr, sparse.post[positions]))
        return tuple(patterns)

    def matrix(self, dtype: np.dtype) -> torch.Tensor:
        """The pattern as a torch CSR tensor of zeros."""
        n = self.indptr.size - 1
        return _torch_csr(self.indptr, self.post, np.zeros(self.positions.size, dtype), (n, n))


@dataclass(frozen=True, eq=False)
class SynapsePlan:
    """One synapse population (input or recurrent) split into dense blocks and the rest."""

    shape: tuple[int, int]  # (n_post, n_pre)
    dense: tuple[DenseBlock, ...]
    sparse: SparseSynapses
    sparse_by_delay: tuple[tuple[int, np.ndarray, np.ndarray, np.ndarray], ...]
    """Per distinct sparse delay: ``(delay, synapses, pre, indptr)``, CSR by post (inputs only)."""


def plan_synapses(
    post: np.ndarray,
    pre: np.ndarray,
    delay: np.ndarray,
    shape: tuple[int, int],
    dense_density: float,
    min_dense_area: int,
    by_delay: bool,
) -> SynapsePlan:
    """Split synapses ``pre → post`` of a ``(n_post, n_pre)`` population by delay into dense
    blocks (bounding box at least ``dense_density`` full and ``min_dense_area`` large) and the
    sparse rest; ``by_delay`` adds the sparse rest's CSR-by-post matrices per delay."""
    n_post, n_pre = shape
    blocks, rest = [], []
    order = np.argsort(delay, kind="stable")
    bounds = np.flatnonzero(np.diff(delay[order])) + 1
    for group in np.split(order, bounds) if order.size else []:
        p, q = post[group], pre[group]
        rows, cols = slice(int(p.min()), int(p.max()) + 1), slice(int(q.min()), int(q.max()) + 1)
        area = (rows.stop - rows.start) * (cols.stop - cols.start)
        if area >= min_dense_area and group.size >= dense_density * area:
            cell = (p - rows.start) * (cols.stop - cols.start) + q - cols.start
            duplicates = np.unique(cell).size < cell.size
            blocks.append(DenseBlock(int(delay[group[0]]), rows, cols, group, cell, duplicates))
        else:
            rest.append(group)
    chosen = np.concatenate(rest) if rest else np.zeros(0, np.int64)
    chosen = chosen[np.argsort(pre[chosen], kind="stable")]
    indptr = np.zeros(n_pre + 1, np.int64)
    np.cumsum(np.bincount(pre[chosen], minlength=n_pre), out=indptr[1:])
    delays = np.unique(delay[chosen])
    sparse = SparseSynapses(chosen, indptr, post[chosen], delay[chosen], delays)
    per_delay = []
    for d in delays if by_delay else []:
        group = chosen[delay[chosen] == d]
        group = group[np.argsort(post[group], kind="stable")]
        group_indptr = np.zeros(n_post + 1, np.int64)
        np.cumsum(np.bincount(post[group], minlength=n_post), out=group_indptr[1:])
        per_delay.append((int(d), group, _index_array(pre[group], n_pre), group_indptr))
    return SynapsePlan(shape, tuple(blocks), sparse, tuple(per_delay))


@dataclass(frozen=True, eq=False)
class LayerPlan:
    """What the backend derives from a layer's indices once: both synapse plans and flags."""

    inputs: SynapsePlan
    recurrent: SynapsePlan
    forward_columns: np.ndarray  # slot·N + post of the sparse recurrent synapses
    backward_columns: np.ndarray  # (delay − 1)·N + post
    patterns: tuple[DelayPattern, ...]  # the sparse recurrent synapses per delay
    subtract: np.ndarray  # s, bool [N]
    zero: np.ndarray  # z, bool [N]
    spiking: np.ndarray  # m, bool [N]


def layer_plan(layer: Layer, dense_density: float, min_dense_area: int) -> LayerPlan:
    """The cached :class:`LayerPlan` of ``layer`` for these thresholds."""
    key = ("scipy-plan", dense_density, min_dense_area)
    if key not in layer.cache:
        n, c = layer.n_neurons, layer.n_inputs
        inputs = plan_synapses(
            *(_numpy(t) for t in (layer.in_post, layer.in_pre, layer.in_delay)),
            (n, c),
            dense_density,
            min_dense_area,
            by_delay=True,
        )
        recurrent = plan_synapses(
            *(_numpy(t) for t in (layer.rec_post, layer.rec_pre, layer.rec_delay)),
            (n, n),
            dense_density,
            min_dense_area,
            by_delay=False,
        )
        rec = recurrent.sparse
        slot = np.searchsorted(rec.delays, rec.delay)  # index of each synapse's delay in rec.delays
        layer.cache[key] = LayerPlan(
            inputs=inputs,
            recurrent=recurrent,
            forward_columns=_index_array(slot * n + rec.post, max(1, rec.delays.size) * n),
            backward_columns=_index_array((rec.delay - 1) * n + rec.post, layer.max_delay * n),
            patterns=DelayPattern.of(rec),
            subtract=_numpy(layer.reset_subtract) > 0,
            zero=_numpy(layer.reset_zero) > 0,
            spiking=_numpy(layer.spiking) > 0,
        )
    return layer.cache[key]


# --------------------------------------------------------------------------------------------
# Per-call helpers.


def _chunks(length: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, length, size):
        yield start, min(length, start + size)


def _chunk_size(length: int, values_per_item: int) -> int:
    """Items (steps or rows) per chunk: at least ``length / CHUNKS`` and :data:`WORKSPACE` values."""
    return max(1, -(-length // CHUNKS), WORKSPACE // max(1, values_per_item))


def _column(vector: np.ndarray) -> np.ndarray:
    """A per-neuron vector ``[N]`` as ``[N, 1]``, for the ``[N, B]`` layout."""
    return vector[:, None]


def _per_value(vector: np.ndarray | None, batch: int) -> np.ndarray | None:
    """A per-neuron vector ``[N]`` as a contiguous ``[N, B]``, for the per-step operations
    (measured 2× faster than broadcasting the ``[N, 1]`` column over a short ``B``)."""
    return None if vector is None else np.repeat(_column(vector), batch, axis=1)


def _delayed_rows(a: np.ndarray, d: int, steps: int) -> np.ndarray:
    """The rows ``X[t − d]``, ``t = 0 … T−1``, of ``a`` ``[Din + T, B, C]`` as ``[T·B, C]``."""
    first = a.shape[0] - steps - d
    return a[first : first + steps].reshape(steps * a.shape[1], a.shape[2])


def _sparse_input_matrices(plan: SynapsePlan, w: np.ndarray) -> list[tuple[int, sp.csr_array]]:
    """``(d, W_d)`` with ``W_d`` ``(N, C)`` in CSR for each sparse input delay ``d``."""
    return [
        (d, sp.csr_array((w[synapses], pre, indptr), shape=plan.shape))
        for d, synapses, pre, indptr in plan.sparse_by_delay
    ]


def input_current(x: np.ndarray, w: np.ndarray, plan: SynapsePlan, steps: int, n: int) -> np.ndarray:
    """``V[t] = (Σ_d X[t − d] W_dᵀ)ᵀ`` ``[T, N, B]``, ``x`` ``[Din + T, B, C]`` with
    ``X[t − d] = x[Din + t − d]``: per time chunk one product per input delay (BLAS for a dense
    block, SciPy otherwise) into ``[K·B, N]`` rows, then transposed into place."""
    d_in, batch = x.shape[0] - steps, x.shape[1]
    dense = [(block, block.matrix(w).T) for block in plan.dense]
    sparse = _sparse_input_matrices(plan, w)
    v = np.empty((steps, n, batch), x.dtype)
    for lo, hi in _chunks(steps, _chunk_size(steps, n * batch)):
        rows = np.zeros(((hi - lo) * batch, n), x.dtype)
        rows_t, x_chunk = torch.from_numpy(rows), x[lo : d_in + hi]
        for block, weight_t in dense:
            source = torch.from_numpy(_delayed_rows(x_chunk, block.delay, hi - lo))[:, block.pre]
            rows_t[:, block.post].addmm_(source, weight_t)
        for d, matrix in sparse:
            rows += (matrix @ _delayed_rows(x_chunk, d, hi - lo).T).T
        v[lo:hi] = rows.reshape(hi - lo, batch, n).transpose(0, 2, 1)
    return v


def _gather_gradient(
    grad: np.ndarray,
    sparse: SparseSynapses,
    key: np.ndarray,
    lam: np.ndarray,
    pre: np.ndarray,
    base: np.ndarray,
    value: np.ndarray | None,
    bounds: tuple[int, int] | None,
) -> None:
    """``grad_k += Σ_{events e with pre_e = pre_k} value_e · lam[key_k + base_e]``.

    ``grad`` (float64) is in ``sparse`` order.  With the events sorted by fan-out, those whose
    presynaptic index has more than ``p`` synapses form a prefix; position ``p`` of their
    fan-out is read for all of them at once.  Work ``O(events × fan-out)``, memory ``O(events)``.
    Pairs whose index falls outside ``bounds`` read zero (steps before 0 or after the end).
    """
    fanout = sparse.fanout[pre]
    order = np.argsort(-fanout)
    fanout = fanout[order]
    syn, base = sparse.indptr[pre][order], base[order]
    value = None if value is None else value[order]
    active = np.searchsorted(-fanout, -np.arange(fanout[0] if fanout.size else 0), side="left")
    for count in active.tolist():  # events with fan-out > p, for p = 0, 1, …
        positions = syn[:count]
        target = np.take(key, positions)
        target += base[:count]
        values = np.take(lam, target, mode="clip").astype(np.float64)
        if value is not None:
            values *= value[:count]
        if bounds is not None:
            values[(target < bounds[0]) | (target >= bounds[1])] = 0
        np.add.at(grad, positions, values)
        positions += 1  # position p + 1 of each fan-out


class _Neurons:
    """Per-neuron vectors of one call (``None`` for a reset that no neuron uses)."""

    def __init__(self, plan: LayerPlan, alpha: np.ndarray, theta: np.ndarray, batch: int) -> None:
        dtype = alpha.dtype
        self.alpha, self.theta = alpha, theta
        self.threshold = np.where(plan.spiking, theta, np.inf).astype(dtype)  # θ, ∞ for readouts
        self.spiking = plan.spiking.astype(dtype)
        self.zero = plan.zero.astype(dtype) if plan.zero.any() else None  # z
        self.subtract = plan.subtract.astype(dtype) if plan.subtract.any() else None  # s
        self.subtract_theta = None if self.subtract is None else self.subtract * theta  # s θ
        self.zero_alpha = None if self.zero is None else self.zero * alpha  # z α
        # the same as contiguous [N, B] arrays, for the operations on [N, B] or [K, N, B] values
        self.alpha_nb, self.theta_nb = _per_value(alpha, batch), _per_value(theta, batch)
        self.threshold_nb = _per_value(self.threshold, batch)
        self.spiking_nb = None if plan.spiking.all() else _per_value(self.spiking, batch)  # None: all spike
        self.zero_nb, self.subtract_theta_nb = _per_value(self.zero, batch), _per_value(self.subtract_theta, batch)


# --------------------------------------------------------------------------------------------
# Forward.


class _Propagator:
    """Sends the spikes of a step into the future rows of ``V``, U neuron-major ``[T, N, B]``."""

    def __init__(self, plan: LayerPlan, w: np.ndarray, v: np.ndarray, event_fraction: float) -> None:
        steps, n, batch = v.shape
        sparse = plan.recurrent.sparse
        self.v, self.v_t = v, torch.from_numpy(v)
        self.steps, self.n, self.batch = steps, n, batch
        self.blocks = [(block, block.matrix(w)) for block in plan.recurrent.dense]
        self.sparse = sparse
        self.delays = sparse.delays
        self.delay_list = sparse.delays.tolist()
        self.n_slots = max(1, sparse.delays.size)
        self.contiguous = bool(sparse.delays.size) and (sparse.delays[-1] - sparse.delays[0] + 1 == sparse.delays.size)
        # CSR (n_slots·N, N): row slot·N + post, column pre — sends S[t] into all delays at once;
        # with contiguous delays its rows are the rows t + d of V, in order.
        if sparse.synapses.size:
            self.matrix = _torch_product_matrix(sparse.by_pre(w, plan.forward_columns, self.n_slots * n).T.tocsr())
        self.weight = w[sparse.synapses]
        self.key = sparse.delay * (n * batch) + sparse.post * batch  # flat offset into V of a pair
        self.max_events = event_fraction * (v.itemsize / 4) * batch * n

    def __call__(self, spikes: np.ndarray, t: int) -> None:
        """Add ``Σ_{rec k: j→i, d} w_k S[t]_j`` to ``V[t + d]_i`` for all ``0 ≤ t + d < T``.

        ``spikes`` ``[N, B]`` is S[t]: bool in the time loop, or the float values of the incoming
        history (``t < 0``), which multiply the weights and always take the sparse product.
        """
        binary = spikes.dtype == bool
        values_t = None
        for block, weight in self.blocks:
            row = t + block.delay
            if 0 <= row < self.steps and spikes[block.pre].any():
                if values_t is None:
                    values_t = torch.from_numpy(np.ascontiguousarray(spikes, self.v.dtype))
                self.v_t[row, block.post].addmm_(weight, values_t[block.pre])
        if not self.sparse.synapses.size:
            return
        count = np.count_nonzero(spikes)
        if not count:
            return
        if binary and count < self.max_events:
            self._events(spikes, t)
        else:
            self._product(spikes if values_t is None else values_t, t)

    def _events(self, spikes: np.ndarray, t: int) -> None:
        """Walk the outgoing synapses of each spike event (cost ``events × fan-out``)."""
        events = np.flatnonzero(spikes)  # pre·B + b
        pre = events // self.batch
        # V flat index of (t + d, post, b) = key + t·N·B + b, and events − pre·B = b
        base = events - pre * self.batch + t * self.v[0].size
        syn, target = self.sparse.pairs(pre, base, self.key)
        weight = np.take(self.weight, syn)
        if t + self.delay_list[-1] >= self.steps:
            keep = target < self.v.size
            target, weight = target[keep], weight[keep]
        np.add.at(self.v.reshape(-1), target, weight)

    def _product(self, spikes: np.ndarray | torch.Tensor, t: int) -> None:
        """One sparse product over all synapses (cost ``nnz × B``), for busy steps: accumulated
        in place into ``V[t + d_min … t + d_max]`` when these rows exist and the delays are
        contiguous, else through a temporary."""
        lo = bisect_right(self.delay_list, -t - 1)  # first delay with t + d ≥ 0
        hi = bisect_right(self.delay_list, self.steps - 1 - t)  # past the last with t + d < T
        if lo >= hi:
            return
        if isinstance(spikes, np.ndarray):
            spikes = torch.from_numpy(np.ascontiguousarray(spikes, self.v.dtype))
        first = t + self.delay_list[lo]
        if self.contiguous and hi - lo == self.n_slots:
            rows = self.v_t[first : first + self.n_slots].view(-1, self.batch)
            torch.addmm(rows, self.matrix, spikes, out=rows)
            return
        current = (self.matrix @ spikes).numpy().reshape(self.n_slots, self.n, self.batch)[lo:hi]
        self.v[t + self.delays[lo:hi]] += current


def forward(layer: Layer, inputs: LayerInputs, plan: LayerPlan, event_fraction: float) -> torch.Tensor:
    """U ``[T, B, N]`` by the recursion of DESIGN §1 (see the module docstring), computed
    neuron-major and returned as a ``[T, B, N]`` view of the ``[T, N, B]`` array."""
    x, w_in, w_rec, alpha, theta, u0, s_hist = (_numpy(t) for t in inputs)
    steps = x.shape[0] - layer.max_input_delay
    batch, n = u0.shape
    v = input_current(x, w_in, plan.inputs, steps, n)
    neurons = _Neurons(plan, alpha, theta, batch)
    alpha_nb, threshold_nb = neurons.alpha_nb, neurons.threshold_nb
    zero_nb, subtract_theta_nb = neurons.zero_nb, neurons.subtract_theta_nb
    propagate = _Propagator(plan, w_rec, v, event_fraction)
    for k in range(layer.max_delay, 0, -1):  # S[−k] reaches U[−k + d] for d ≥ k
        propagate(s_hist[layer.max_delay - k].T, -k)
    buffers = [np.empty((n, batch), bool) for _ in range(2)]
    leak, scratch = np.empty((n, batch), x.dtype), np.empty((n, batch), x.dtype)
    v_prev, s_prev = u0.T, s_hist[-1].T
    for t in range(steps):
        v_t = v[t]
        np.multiply(v_prev, alpha_nb, out=leak)  # α U[t−1]
        if zero_nb is not None:  # · (1 − z S[t−1])
            np.multiply(s_prev, zero_nb, out=scratch)
            np.subtract(1, scratch, out=scratch)
            leak *= scratch
        v_t += leak
        if subtract_theta_nb is not None:  # − s θ S[t−1]
            np.multiply(s_prev, subtract_theta_nb, out=scratch)
            v_t -= scratch
        s_t = np.greater(v_t, threshold_nb, out=buffers[t % 2])
        if t + 1 < steps:
            propagate(s_t, t)
        v_prev, s_prev = v_t, s_t
    return torch.from_numpy(v).transpose(1, 2)


# --------------------------------------------------------------------------------------------
# Backward.


def _neuron_major(a: np.ndarray) -> np.ndarray:
    """``[K, B, N]`` → a contiguous ``[K, N, B]`` copy."""
    return np.ascontiguousarray(a.transpose(0, 2, 1))


def _scatter_gradient(
    size: int, plan: SynapsePlan, sparse: np.ndarray, blocks: list[np.ndarray], dtype: np.dtype
) -> np.ndarray:
    """The gradient of the weight vector from the sparse part and the dense blocks."""
    grad = np.zeros(size, dtype)
    grad[plan.sparse.synapses] = sparse
    for block, block_grad in zip(plan.dense, blocks, strict=True):
        grad[block.synapses] = np.take(block_grad, block.cell)  # block gradients are ∂W[post, pre]
    return grad


def _add_spike_product(grad_t: torch.Tensor, spikes: np.ndarray, lam: np.ndarray) -> None:
    """``∂Wᵀ[q, p] += Σ_{k,b} S[k, q, b] λU[k, p, b]`` with the binary ``spikes`` ``[K, Q, B]`` as
    a sparse CSR matrix ``[Q, K·B]`` and ``lam`` ``[K, P, B]`` copied as ``[K·B, P]``: work
    ``spikes × P`` instead of ``Q × K·B × P``."""
    k, q, batch = spikes.shape
    pre, step, b = np.nonzero(spikes.transpose(1, 0, 2))  # sorted by pre, then step and b
    indptr = np.zeros(q + 1, np.int64)
    np.cumsum(np.bincount(pre, minlength=q), out=indptr[1:])
    matrix = _torch_csr(indptr, step * batch + b, np.ones(pre.size, lam.dtype), (q, k * batch))
    rows = torch.from_numpy(np.ascontiguousarray(lam.transpose(0, 2, 1)).reshape(k * batch, -1))
    torch.addmm(grad_t, matrix, rows, out=grad_t)


class _Adjoint:
    """The recurrent synapses in the backward pass; λU is ``lam`` ``[T + D, N, B]``."""

    def __init__(
        self, plan: LayerPlan, w: np.ndarray, lam: np.ndarray, steps: int, needs_grad: bool, sampled_rate: float
    ) -> None:
        rows, n, batch = lam.shape
        self.plan, self.sparse = plan.recurrent, plan.recurrent.sparse
        self.patterns = plan.patterns
        # time chunks whose sparse weight gradient comes from sampled products (:meth:`sample`)
        self.sampled: list[tuple[int, int]] = []
        self.sampled_rate = sampled_rate * lam.itemsize / 4  # float64 products cost twice
        self.fanout = np.repeat(self.sparse.fanout.astype(np.float32), batch)  # [N·B], the layout of S[t]
        self.lam, self.steps, self.n, self.batch = lam, steps, n, batch
        self.blocks = [(block, block.transposed(w)) for block in self.plan.dense]
        self.has_synapses = bool(self.blocks) or bool(self.sparse.synapses.size)
        # CSR (N, D·N): row pre, column (d − 1)·N + post — reads the window λU[t+1 … t+D].
        if self.sparse.synapses.size:
            self.matrix = _torch_product_matrix(self.sparse.by_pre(w, plan.backward_columns, (rows - steps) * n))
        self.key = self.sparse.delay * (n * batch) + self.sparse.post * batch  # λU offset
        self.grad_sparse = np.zeros(self.sparse.synapses.size) if needs_grad else None
        blocks = self.plan.dense if needs_grad else ()
        self.grad_blocks = [torch.from_numpy(np.zeros(block.shape, w.dtype)) for block in blocks]
        # ∂Wᵀ[pre, post] of the chunks multiplied as sparse spikes (allocated on first use)
        self.grad_blocks_t: list[torch.Tensor | None] = [None for _ in blocks]
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []  # spike events (pre, λU offset)
        self.pending_size = 0

    def backprop(self, window: np.ndarray, t: int) -> np.ndarray:
        """``Σ_{rec k: j→i, d} w_k λU[t+d]_i`` as ``[N, B]`` from ``window`` = λU[t+1 … t+D]."""
        if self.sparse.synapses.size:
            result = (self.matrix @ torch.from_numpy(window.reshape(-1, self.batch))).numpy()
        else:
            result = np.zeros((self.n, self.batch), window.dtype)
        result_t = torch.from_numpy(result)
        for block, weight_t in self.blocks:
            if 0 <= t + block.delay < self.steps:
                source = torch.from_numpy(window[block.delay - 1])[block.post]
                result_t[block.pre].addmm_(weight_t, source)
        return result

    def accumulate(self, spikes: np.ndarray, t0: int) -> None:
        """Add ``Σ λU[t+d]_post S[t]_pre`` of ``spikes`` = S[t0 …] ``[K, N, B]`` to the gradient.

        Values other than 0/1 (the incoming history, ``t0 < 0``) multiply.  The spike events
        of the time loop (``t0 ≥ 0``, bool) wait in :attr:`pending`, to be gathered in few
        calls by :meth:`gather`, once λU is known for every step they read — or, for a busy
        chunk (:data:`SAMPLED_RATE`), the chunk waits in :attr:`sampled` for :meth:`sample`.
        """
        n, batch = self.n, self.batch
        binary = spikes.dtype == bool
        if binary and self.sparse.synapses.size and self._busy(spikes):
            self.sampled.append((t0, t0 + spikes.shape[0]))
        elif self.sparse.synapses.size:
            events = np.flatnonzero(spikes)
            pre = (events // batch) % n
            base = t0 * n * batch + events - pre * batch  # λU offset of (t, b) = t·N·B + b
            if binary:
                self.pending.append((pre, base))
                self.pending_size += events.size
                if self.pending_size > max(WORKSPACE, self.lam.size // CHUNKS):  # a bounded queue
                    self.gather()
            else:
                value, bounds = spikes.reshape(-1)[events], (0, self.lam.size)
                _gather_gradient(
                    self.grad_sparse, self.sparse, self.key, self.lam.reshape(-1), pre, base, value, bounds
                )
        for i, ((block, _), grad) in enumerate(zip(self.blocks, self.grad_blocks, strict=True)):
            skip = max(0, -(t0 + block.delay))  # steps whose t + d < 0
            if skip < spikes.shape[0]:
                first = t0 + block.delay + skip
                lam_rows = self.lam[first : first + spikes.shape[0] - skip, block.post]  # [K, P, B]
                source = spikes[skip:, block.pre]  # [K, Q, B]
                if binary and self._sparse_spikes(source, block):
                    if self.grad_blocks_t[i] is None:
                        self.grad_blocks_t[i] = grad.new_zeros(grad.shape[::-1])
                    _add_spike_product(self.grad_blocks_t[i], source, lam_rows)
                else:
                    source_t = torch.from_numpy(source.astype(self.lam.dtype))
                    grad += torch.tensordot(torch.from_numpy(lam_rows), source_t, dims=([0, 2], [0, 2]))

    @staticmethod
    def _sparse_spikes(spikes: np.ndarray, block: DenseBlock) -> bool:
        """Whether a dense block's weight gradient multiplies ``spikes`` as a sparse matrix."""
        area = block.shape[0] * block.shape[1]
        return area >= SPIKE_PRODUCT_MIN_AREA and np.count_nonzero(spikes) < SPIKE_PRODUCT_FRACTION * spikes.size

    def _busy(self, spikes: np.ndarray) -> bool:
        """Whether the (event, synapse) pairs of ``spikes`` ``[K, N, B]`` reach
        ``sampled_rate × nnz × K·B``, the work of the sampled products."""
        pairs = float((spikes.reshape(spikes.shape[0], -1).view(np.uint8) @ self.fanout).sum())
        return pairs >= self.sampled_rate * self.sparse.synapses.size * spikes.shape[0] * self.batch

    def gather(self) -> None:
        """Gather the gradient of the pending spike events of the time loop."""
        pending, self.pending, self.pending_size = self.pending, [], 0
        if pending:
            pre, base = (np.concatenate(parts) for parts in zip(*pending, strict=True))
            del pending  # the queue's arrays, now copied
            _gather_gradient(self.grad_sparse, self.sparse, self.key, self.lam.reshape(-1), pre, base, None, None)

    def sample(self, lam: np.ndarray, u: np.ndarray, threshold: np.ndarray) -> None:
        """Add ``Σ_{t,b} S[t]_{b,pre} λU[t+d]_{b,post}`` for every sparse synapse, ``t`` in the
        chunks of :attr:`sampled`.

        ``lam`` is λU relaid out as ``[T + D, B, N]``.  Per delay ``d`` and time chunk one
        sampled product ``(Sᵀ Λ_d)[pre, post]`` on the synapses' pattern only, accumulated in the
        pattern's values, with ``Sᵀ`` ``[N, K·B]`` recomputed from ``u`` and ``Λ_d`` = the rows
        ``t + d`` as ``[K·B, N]``, in place.  Cost ``nnz × T·B`` multiply-adds, whatever the spikes.
        """
        n = u.shape[2]
        sums = [(pattern, pattern.matrix(lam.dtype)) for pattern in self.patterns]  # values: running sums
        for t0, t1 in self.sampled:
            spikes = np.greater(u[t0:t1], threshold).transpose(2, 0, 1).astype(lam.dtype, order="C")
            spikes_t = torch.from_numpy(spikes.reshape(n, -1))
            for pattern, total in sums:
                rows = torch.from_numpy(lam[t0 + pattern.delay : t1 + pattern.delay].reshape(-1, n))
                torch.sparse.sampled_addmm(total, spikes_t, rows, out=total)
        for pattern, total in sums:
            self.grad_sparse[pattern.positions] += total.values().numpy()

    def gradient(self, size: int, dtype: np.dtype) -> np.ndarray:
        self.gather()
        blocks = [
            (grad if grad_t is None else grad + grad_t.T).numpy()
            for grad, grad_t in zip(self.grad_blocks, self.grad_blocks_t, strict=True)
        ]
        return _scatter_gradient(size, self.plan, self.grad_sparse, blocks, dtype)


def _batch_major(lam: np.ndarray, steps: int) -> np.ndarray:
    """Rewrite rows ``0 … T−1`` of λU ``[T + D, N, B]`` in place as ``[T + D, B, N]``."""
    rows, n, batch = lam.shape
    flat = lam.reshape(-1)
    for lo, hi in _chunks(steps, _chunk_size(steps, n * batch)):
        flat[lo * n * batch : hi * n * batch] = lam[lo:hi].transpose(0, 2, 1).reshape(-1)
    return flat.reshape(rows, batch, n)


def _input_gradients(
    lam: np.ndarray, x: np.ndarray, w: np.ndarray, plan: SynapsePlan, steps: int, needs: LayerInputs
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """∂x ``[Din + T, B, C]`` and ∂w_in from λU ``[T + D, B, N]``, one product per input delay.

    ∂X[t − d] += λU[t] W_d for all ``t``; ∂w_k = Σ_{t,b} λU[t]_post X[t − d]_pre, gathered per
    non-zero input (sparse delays) or from one product λU[·]ᵀ X[· − d] (dense blocks).
    """
    d_in, batch, c = x.shape[0] - steps, x.shape[1], x.shape[2]
    n = lam.shape[2]
    rows = lam[:steps].reshape(steps * batch, n)
    rows_t = torch.from_numpy(rows)
    grad_x = np.zeros_like(x) if needs.x else None
    block_grads = []
    for block in plan.dense:
        if grad_x is not None:
            target = torch.from_numpy(_delayed_rows(grad_x, block.delay, steps))[:, block.pre]
            target.addmm_(rows_t[:, block.post], block.matrix(w))
        if needs.w_in:
            source = torch.from_numpy(_delayed_rows(x, block.delay, steps))[:, block.pre]
            block_grads.append((rows_t[:, block.post].T @ source).numpy())
    if grad_x is not None:
        chunk = _chunk_size(steps * batch, n + c)
        for d, matrix in _sparse_input_matrices(plan, w):
            target = _delayed_rows(grad_x, d, steps)
            for lo, hi in _chunks(steps * batch, chunk):
                target[lo:hi] += (matrix.T @ rows[lo:hi].T).T
    if not needs.w_in:
        return grad_x, None
    sparse = plan.sparse
    grad_sparse = np.zeros(sparse.synapses.size)
    if sparse.synapses.size:
        key = sparse.delay * (batch * n) + sparse.post  # λU offset of (t + d, post)
        lam_flat = lam.reshape(-1)
        for lo, hi in _chunks(x.shape[0], _chunk_size(x.shape[0], batch * c)):
            values = x[lo:hi].reshape(-1)
            events = np.flatnonzero(values)
            pre = events % c
            base = (events // c + (lo - d_in) * batch) * n  # λU offset of (τ − Din, b)
            bounds = (0, steps * batch * n)
            _gather_gradient(grad_sparse, sparse, key, lam_flat, pre, base, values[events], bounds)
    return grad_x, _scatter_gradient(w.size, plan, grad_sparse, block_grads, w.dtype)


@dataclass
class _Chunk:
    """What the backward recursion needs of steps ``t0 … t1−1``, ``[K, N, B]`` each.

    ``gain`` = m σ'(U − θ); ``drive`` = ∂L/∂U + gain ∂L/∂S; ``carry`` = α (1 − z S) (``None``
    for ``α``); ``reset`` = gain (s θ + z α U) (``None`` when detached or no neuron resets).
    """

    u: np.ndarray
    spikes: np.ndarray  # bool
    keep: np.ndarray | None  # 1 − z S
    gain: np.ndarray
    drive: np.ndarray
    carry: np.ndarray | None
    reset: np.ndarray | None
    gain_grad_s: np.ndarray | None  # Σ_{t,b} gain ∂L/∂S, [N] (for ∂θ only)


def _chunk(
    layer: Layer,
    neurons: _Neurons,
    u: np.ndarray,
    grad_u: np.ndarray | None,
    grad_s: np.ndarray | None,
    needs_theta: bool,
) -> _Chunk:
    """The per-step coefficients of a chunk (``u``, ``grad_u``, ``grad_s`` ``[K, B, N]``, the
    gradients ``None`` when zero)."""
    col = _column
    u_nb = _neuron_major(u)
    spikes = np.greater(u_nb, neurons.threshold_nb)
    with np.errstate(over="ignore", under="ignore"):
        gain = layer.surrogate.grad(np.subtract(u_nb, neurons.theta_nb))
    if neurons.spiking_nb is not None:
        gain *= neurons.spiking_nb
    if grad_s is None:
        gain_grad_s = np.zeros(gain.shape[1]) if needs_theta else None
        drive = np.zeros_like(gain) if grad_u is None else _neuron_major(grad_u)
    else:
        drive = np.multiply(gain, grad_s.transpose(0, 2, 1), out=np.empty_like(gain))
        gain_grad_s = drive.sum(axis=(0, 2), dtype=np.float64) if needs_theta else None
        if grad_u is not None:
            drive += grad_u.transpose(0, 2, 1)
    keep = None if neurons.zero is None else 1 - col(neurons.zero) * spikes
    carry = None if keep is None else col(neurons.alpha) * keep
    reset = None
    if not layer.detach_reset and (neurons.zero is not None or neurons.subtract is not None):
        reset = np.zeros_like(u_nb)
        if neurons.zero_alpha is not None:
            reset += col(neurons.zero_alpha) * u_nb
        if neurons.subtract_theta is not None:
            reset += col(neurons.subtract_theta)
        reset *= gain
    return _Chunk(u_nb, spikes, keep, gain, drive, carry, reset, gain_grad_s)


def backward(
    layer: Layer,
    inputs: LayerInputs,
    u: torch.Tensor,
    grad_u: torch.Tensor | None,
    grad_s: torch.Tensor | None,
    needs: LayerInputs,
    plan: LayerPlan,
    sampled_rate: float,
) -> LayerInputs:
    """Gradients of every input by the reverse-time recursion of DESIGN §2 (module docstring)."""
    x, w_in, w_rec, alpha, theta, u0, s_hist = (_numpy(t) for t in inputs)
    u, grad_u, grad_s = (None if t is None else _numpy(t) for t in (u, grad_u, grad_s))
    steps, batch, n = u.shape
    depth, dtype = layer.max_delay, u.dtype
    neurons, col = _Neurons(plan, alpha, theta, batch), _column
    alpha_col, alpha_nb = col(alpha), neurons.alpha_nb
    lam = np.empty((steps + depth, n, batch), dtype)
    lam[steps:] = 0
    adjoint = _Adjoint(plan, w_rec, lam, steps, needs.w_rec, sampled_rate)
    grad_alpha = np.zeros(n)
    theta_surrogate = np.zeros(n)  # Σ_{t,b} m σ'(U[t] − θ) λS[t]
    theta_reset = np.zeros(n)  # Σ_{t,b} λU[t+1] S[t], t = −1 … T−2
    gain_lam_s = np.zeros((n, batch), dtype) if needs.theta else None

    for t0, t1 in reversed(list(_chunks(steps, _chunk_size(steps, n * batch)))):
        chunk = _chunk(
            layer, neurons, u[t0:t1], *(None if g is None else g[t0:t1] for g in (grad_u, grad_s)), needs.theta
        )
        for i in range(t1 - t0 - 1, -1, -1):
            t = t0 + i
            following, current = lam[t + 1], lam[t]
            np.multiply(alpha_nb if chunk.carry is None else chunk.carry[i], following, out=current)
            current += chunk.drive[i]
            part = None  # m σ' (λS − ∂L/∂S): the recurrent and reset terms of λS, times σ'
            if adjoint.has_synapses:
                part = adjoint.backprop(lam[t + 1 : t + 1 + depth], t)
                part *= chunk.gain[i]
            if chunk.reset is not None:
                reset = np.multiply(chunk.reset[i], following)
                part = np.negative(reset, out=reset) if part is None else np.subtract(part, reset, out=part)
            if part is not None:
                current += part
                if gain_lam_s is not None:
                    gain_lam_s += part
        following = lam[t0 + 1 : t1 + 1]  # λU[t + 1] for the chunk's t
        if needs.alpha:
            leak = chunk.u if chunk.keep is None else chunk.u * chunk.keep
            grad_alpha += (following * leak).sum(axis=(0, 2), dtype=np.float64)
        if needs.theta:
            theta_surrogate += chunk.gain_grad_s
            if neurons.subtract is not None:
                theta_reset += (following * chunk.spikes).sum(axis=(0, 2), dtype=np.float64)
        if needs.w_rec:
            adjoint.accumulate(chunk.spikes, t0)

    # The step before the chunk: U[−1] = u0 and S[−1] = s_hist[D − 1] meet λU[0].
    lam0, u_last, s_last = lam[0], u0.T, s_hist[-1].T
    keep0 = 1 if neurons.zero is None else 1 - col(neurons.zero) * s_last
    grad_alpha += (lam0 * u_last * keep0).sum(axis=1, dtype=np.float64)
    theta_reset += (lam0 * s_last).sum(axis=1, dtype=np.float64)
    grad_u0 = np.ascontiguousarray((alpha_col * keep0 * lam0).T) if needs.u0 else None
    grad_s_hist = None
    if needs.s_hist:
        grad_s_hist = np.empty_like(s_hist)
        window = np.zeros((2 * depth - 1, n, batch), dtype)  # λU[−D+1 … D−1]
        window[depth - 1 :] = lam[:depth]
        for k in range(1, depth + 1):
            lam_s = adjoint.backprop(window[depth - k : 2 * depth - k], -k)
            if k == 1 and not layer.detach_reset:
                if neurons.subtract_theta is not None:
                    lam_s -= col(neurons.subtract_theta) * lam0
                if neurons.zero_alpha is not None:
                    lam_s -= col(neurons.zero_alpha) * u_last * lam0
            grad_s_hist[depth - k] = lam_s.T
    if needs.w_rec:
        adjoint.accumulate(_neuron_major(s_hist), -depth)

    grad_theta = None
    if needs.theta:
        theta_surrogate += gain_lam_s.sum(axis=1, dtype=np.float64)
        subtract = 0 if neurons.subtract is None else neurons.subtract
        grad_theta = (-theta_surrogate - subtract * theta_reset).astype(dtype)
    grad_w_rec = None
    if needs.w_rec:
        adjoint.gather()  # the queued spike events read λU: before the relayout
    lam_batch_major = _batch_major(lam, steps) if adjoint.sampled or needs.x or needs.w_in else None
    if needs.w_rec:
        if adjoint.sampled:
            adjoint.sample(lam_batch_major, u, neurons.threshold)
        grad_w_rec = adjoint.gradient(w_rec.size, dtype)
    grad_x = grad_w_in = None
    if needs.x or needs.w_in:
        grad_x, grad_w_in = _input_gradients(lam_batch_major, x, w_in, plan.inputs, steps, needs)
    return LayerInputs(
        x=grad_x,
        w_in=grad_w_in,
        w_rec=grad_w_rec,
        alpha=grad_alpha.astype(dtype) if needs.alpha else None,
        theta=grad_theta,
        u0=grad_u0,
        s_hist=grad_s_hist,
    )


class ScipyBackend:
    """The CPU backend (see the module docstring); thresholds are instance attributes."""

    name = "scipy"
    traced = False

    def __init__(
        self,
        event_fraction: float = EVENT_FRACTION,
        dense_density: float = DENSE_DENSITY,
        min_dense_area: int = MIN_DENSE_AREA,
        sampled_rate: float = SAMPLED_RATE,
    ) -> None:
        self.event_fraction = event_fraction
        self.sampled_rate = sampled_rate
        self.dense_density = dense_density
        self.min_dense_area = min_dense_area

    def unavailable_reason(self, device: torch.device) -> str | None:
        if device.type == "cpu":
            return None
        return "it runs on CPU tensors only; use backend='triton' or 'reference' for CUDA tensors"

    def _plan(self, layer: Layer, dtype: torch.dtype) -> LayerPlan:
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"the scipy backend runs float32 and float64, got {dtype}; use model.float()")
        return layer_plan(layer, self.dense_density, self.min_dense_area)

    def forward(self, layer: Layer, inputs: LayerInputs) -> torch.Tensor:
        """U ``[T, B, N]``."""
        return forward(layer, inputs, self._plan(layer, inputs.x.dtype), self.event_fraction)

    def backward(
        self,
        layer: Layer,
        inputs: LayerInputs,
        u: torch.Tensor,
        grad_u: torch.Tensor | None,
        grad_s: torch.Tensor | None,
        needs: LayerInputs,
    ) -> LayerInputs:
        """Gradients of ``inputs`` (``None`` where ``needs`` is False)."""
        u = u.to(inputs.w_rec.dtype)  # membranes may have been saved in bfloat16/float16
        grads = backward(layer, inputs, u, grad_u, grad_s, needs, self._plan(layer, u.dtype), self.sampled_rate)
        return LayerInputs(*(None if g is None else torch.from_numpy(g) for g in grads))
