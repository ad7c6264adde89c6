"""GPU backend: the compiled layer as Triton kernels (``snngraph.kernels``), launched from here.

Forward (DESIGN §1, §4):

1. the input current of every step at once, ``I_in[t] = Σ_d W_in[d] X[t − d]``: a dense matrix
   product (cuBLAS) for each input delay whose synapses fill at least ``dense_input`` of the
   ``N × C`` matrix, a gather kernel over the rest;
2. the time loop (:mod:`snngraph.kernels.lif_forward`): per step, gather the recurrent input
   from the spike history (CSR over postsynaptic neurons, grouped by delay), add ``I_in``,
   update U with the reset, threshold, write U and the spikes (uint8).

Backward (DESIGN §2): the reverse time loop (:mod:`snngraph.kernels.lif_backward`) writes λU
and the ∂α, ∂θ, ∂u0 terms, reading ``Wᵀ λU`` through the CSC view over presynaptic neurons;
then, with λU known at every step, one gather over the history steps gives ∂s_hist, the input
delays give ∂x and ∂w_in (matrix products or gather kernels), and
:mod:`snngraph.kernels.synapse_grad` accumulates ∂w on the stored synapses only, where the
presynaptic neuron spiked.

The time loop runs either *persistent* — one launch that loops over time inside the kernel,
every program owning all neurons of one batch row and gathering the recurrent term itself
(safe without a grid barrier: only the program's own threads exchange spikes) — or *per step*:
for each step, :func:`~snngraph.kernels.gather.gather_chunks_kernel` sums the recurrent term in
equal chunks of synapses (atomic adds, so long rows such as a readout's do not hold a step
back), then the step kernel updates every neuron; on CUDA these launches are recorded once as
a CUDA graph and replayed.  ``time_loop="auto"`` picks persistent when there are no recurrent
synapses (neurons are then independent and any grid works) or at most
:data:`PERSISTENT_MAX_NEURONS` neurons.  The per-step sums come in the order the atomic adds
land, so float results may differ in the last bits from run to run.

Index structures (the row views and dense-input buckets) are built once per model, device and
dtype and kept in ``layer.cache``; each call only gathers the current weight values.  Triton
is imported only when a kernel runs, so that ``import snngraph`` works without it.

Internal tensors are batch-minor (``[time, N, B]``), so that a synapse gathers ``B`` contiguous
values: the spike history ``hist`` ``[D + T, N, B]`` (uint8, S[t] at row ``D + t``) and the
adjoint ``λU`` ``[P + T + P, N, B]`` with zero pads of ``P = max(D, Din)`` rows on both ends.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from snngraph.backends.base import Layer, LayerInputs

TIME_LOOPS = ("auto", "persistent", "per_step")
PERSISTENT_MAX_NEURONS = 1024
"""Largest layer (with recurrent synapses) that ``time_loop="auto"`` runs in one program per batch row."""
DENSE_INPUT_FRACTION = 0.05
"""Default ``dense_input``: an input delay with at least this fraction of ``N × C`` synapses is a matrix product."""
GRAPH_MAX_STEP_ELEMENTS = 1 << 20
"""CUDA graphs replace per-step launches when ``B·N`` is at most this (above, a step outlasts its launch)."""
CHUNK = 128
"""Synapses per program in the weight-gradient kernel and the per-step gather."""
TIME_BLOCK = 64
"""Steps per program in the weight-gradient kernel (the blocks add atomically)."""
TILE = 2048
"""Elements of a gather tile ``[rows, synapses, batch]`` (larger ones spill registers)."""
RESIDENT_TILE_BYTES = 16384
"""Largest ``[N, longest row]`` tile of weights that the persistent loop keeps in registers."""
ELEMENTS_PER_THREAD = 8
"""Tile elements per thread: the warps of a launch (4 to 16); more spill registers."""


@dataclass(frozen=True)
class RowView:
    """Synapses grouped by one end: row ``r`` owns entries ``ptr[r] : ptr[r + 1]``.

    Rows are sorted by (row, delay, other end).  Per entry: ``order`` the synapse's position in
    the weight vector, ``index`` the other end, ``shift`` the time offset of what it reads
    (``−d`` over postsynaptic rows: S[t − d]; ``+d`` over presynaptic rows: λU[t + d]).
    ``max_length``/``mean_length``: of the rows; ``max_delay``: the largest ``|shift|``.
    ``chunk_row``/``chunk_start`` cut every row
    into chunks of ≤ :data:`CHUNK` entries.
    """

    order: torch.Tensor
    ptr: torch.Tensor
    index: torch.Tensor
    shift: torch.Tensor
    max_length: int
    mean_length: float
    max_delay: int
    chunk_row: torch.Tensor
    chunk_start: torch.Tensor

    @property
    def n_rows(self) -> int:
        return self.ptr.numel() - 1

    @classmethod
    def build(
        cls,
        rows: torch.Tensor,
        other: torch.Tensor,
        delay: torch.Tensor,
        ids: torch.Tensor,
        n_rows: int,
        sign: int,
    ) -> RowView:
        """The view of synapses ``ids`` (``rows``, ``other`` ends, ``delay``) with ``shift = sign·d``."""
        perm = torch.argsort(other, stable=True)
        perm = perm[torch.argsort(delay[perm], stable=True)]
        perm = perm[torch.argsort(rows[perm], stable=True)]
        counts = torch.bincount(rows, minlength=n_rows)
        ptr = torch.zeros(n_rows + 1, dtype=torch.int64, device=rows.device)
        ptr[1:] = torch.cumsum(counts, 0)
        chunks = (counts + CHUNK - 1) // CHUNK
        chunk_row = torch.repeat_interleave(torch.arange(n_rows, device=rows.device), chunks)
        first_chunk = torch.cumsum(chunks, 0) - chunks
        within = torch.arange(chunk_row.numel(), device=rows.device) - first_chunk[chunk_row]
        return cls(
            order=ids[perm],
            ptr=ptr.to(torch.int32),
            index=other[perm].to(torch.int32),
            shift=(sign * delay[perm]).to(torch.int32),
            max_length=int(counts.max()) if n_rows else 0,
            mean_length=rows.numel() / max(n_rows, 1),
            max_delay=int(delay.max()) if delay.numel() else 0,
            chunk_row=chunk_row.to(torch.int32),
            chunk_start=(ptr[chunk_row] + within * CHUNK).to(torch.int32),
        )


@dataclass(frozen=True)
class DenseBucket:
    """The input synapses of one delay, run as a dense ``[N, C]`` matrix.

    ``ids``: the synapses; ``flat``: their entries ``post·C + pre`` in the matrix; ``unique``: no
    two of them share an entry (then the matrix is a plain scatter, else a sum).
    """

    delay: int
    ids: torch.Tensor
    flat: torch.Tensor
    unique: bool

    def matrix(self, w_in: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """W_in[d] ``[N, C]`` with the current weights."""
        weight = w_in.new_zeros(shape[0] * shape[1])
        if self.unique:
            weight[self.flat] = w_in[self.ids]
        else:
            weight.index_add_(0, self.flat, w_in[self.ids])
        return weight.view(shape)


@dataclass(frozen=True)
class Plan:
    """What the kernels need besides the weights, built once per model, device and dtype.

    ``n_neurons``: N; ``rec_rows``/``rec_cols``: the recurrent synapses over postsynaptic
    (forward) and presynaptic (backward) neurons; ``dense``: the input delays run as matrix
    products; ``in_rows``/``in_cols``: the other input synapses over postsynaptic neurons and
    over input channels.
    """

    n_neurons: int
    rec_rows: RowView | None
    rec_cols: RowView | None
    dense: tuple[DenseBucket, ...]
    in_rows: RowView | None
    in_cols: RowView | None

    @classmethod
    def build(cls, layer: Layer, dense_input: float) -> Plan:
        n, c = layer.n_neurons, layer.n_inputs
        rec_ids = torch.arange(layer.rec_post.numel(), device=layer.rec_post.device)
        rec = (layer.rec_post, layer.rec_pre, layer.rec_delay)
        delays, counts = torch.unique(layer.in_delay, return_counts=True)
        dense_delays = [
            int(d) for d, k in zip(delays.tolist(), counts.tolist(), strict=True) if k >= dense_input * n * c
        ]
        dense = []
        for d in dense_delays:
            ids = torch.nonzero(layer.in_delay == d).flatten()
            flat = layer.in_post[ids] * c + layer.in_pre[ids]
            dense.append(DenseBucket(d, ids, flat, torch.unique(flat).numel() == flat.numel()))
        is_dense = torch.isin(layer.in_delay, torch.tensor(dense_delays, dtype=torch.int64, device=delays.device))
        sparse = torch.nonzero(~is_dense).flatten()
        sparse_in = (layer.in_post[sparse], layer.in_pre[sparse], layer.in_delay[sparse])
        has_rec, has_sparse_in = rec_ids.numel() > 0, sparse.numel() > 0
        return cls(
            n_neurons=n,
            rec_rows=RowView.build(rec[0], rec[1], rec[2], rec_ids, n, -1) if has_rec else None,
            rec_cols=RowView.build(rec[1], rec[0], rec[2], rec_ids, n, +1) if has_rec else None,
            dense=tuple(dense),
            in_rows=RowView.build(*sparse_in, sparse, n, -1) if has_sparse_in else None,
            in_cols=(RowView.build(sparse_in[1], sparse_in[0], sparse_in[2], sparse, c, +1) if has_sparse_in else None),
        )


def _pow2(n: int, cap: int) -> int:
    """The power of two ≥ ``n`` (at least 1), at most ``cap``."""
    return min(1 << max(n - 1, 0).bit_length(), cap)


@dataclass(frozen=True)
class Geometry:
    """Block sizes, grid and warps of one launch over ``rows × batch`` with a synapse gather.

    The gather tile ``[block_rows, block_j, block_b]`` has about :data:`TILE` elements, and the
    warps give each thread about :data:`ELEMENTS_PER_THREAD` of them (more spill registers).
    ``resident``: every row fits in one tile, read once before the time loop.
    """

    block_rows: int
    block_b: int
    block_j: int
    grid_rows: int
    grid_b: int
    num_warps: int
    resident: bool = False

    @classmethod
    def _make(
        cls,
        n_rows: int,
        batch: int,
        block_rows: int,
        block_b: int,
        block_j: int,
        num_warps: int | None = None,
        resident: bool = False,
    ) -> Geometry:
        if num_warps is None:
            threads = block_rows * block_b * block_j // ELEMENTS_PER_THREAD
            num_warps = min(max(_pow2(threads // 32, 16), 4), 16)
        grid_rows, grid_b = -(-n_rows // block_rows), -(-batch // block_b)
        return cls(block_rows, block_b, block_j, grid_rows, grid_b, num_warps, resident)

    @classmethod
    def holding(cls, view: RowView, batch: int, itemsize: int) -> Geometry:
        """One program (8 warps) per batch row holding all rows: the persistent loop with recurrence.

        Resident synapses keep int32 offsets ``shift·N·B + index·B``: only while they fit.
        """
        n_rows, max_length = view.n_rows, view.max_length
        block_rows, block_j = _pow2(n_rows, 1 << 30), _pow2(max_length, 1 << 30)
        fits_int32 = (view.max_delay + 1) * n_rows * batch < 1 << 31
        if block_rows * block_j * itemsize <= RESIDENT_TILE_BYTES and fits_int32:
            return cls._make(n_rows, batch, block_rows, 1, block_j, num_warps=8, resident=True)
        block_j = _pow2(max_length, max(TILE // block_rows, 1))
        return cls._make(n_rows, batch, block_rows, 1, block_j, num_warps=8)

    @classmethod
    def blocked(cls, n_rows: int, batch: int, mean_length: float = 1.0, tile: int = TILE) -> Geometry:
        """Blocks of rows × batch sized so that an average row is read in about one pass."""
        block_b = _pow2(batch, 32)
        block_j = _pow2(math.ceil(mean_length), max(tile // block_b, 1))
        block_rows = _pow2(max(tile // (block_j * block_b), 1), _pow2(n_rows, 64))
        return cls._make(n_rows, batch, block_rows, block_b, block_j)

    @classmethod
    def chunked(cls, view: RowView, batch: int) -> Geometry:
        """One program per chunk of :data:`CHUNK` synapses (:func:`gather_chunks_kernel`)."""
        block_b = _pow2(batch, 32)
        block_j = _pow2(min(view.max_length, CHUNK), max(TILE // block_b, 1))
        return cls._make(view.chunk_row.numel(), batch, 1, block_b, block_j)

    def meta(self, rows_name: str | None = "BLOCK_N") -> dict[str, int]:
        """Launch keywords: the block sizes (rows under ``rows_name``, none for ``None``) and warps."""
        rows = {} if rows_name is None else {rows_name: self.block_rows}
        return {**rows, "BLOCK_B": self.block_b, "BLOCK_J": self.block_j, "num_warps": self.num_warps}


@dataclass(frozen=True)
class TimeLoop:
    """How one direction's time loop runs.

    ``step``: the time-loop kernel's geometry; ``spans``: (first step, number of steps) of each
    launch; ``fused``: the kernel gathers the recurrent term itself (persistent, with recurrent
    synapses); ``chunks``: else, the per-step chunked gather's geometry (``None`` without
    recurrent synapses); ``graphed``: the launches replay as a CUDA graph.
    """

    step: Geometry
    spans: list[tuple[int, int]]
    fused: bool
    chunks: Geometry | None
    graphed: bool


class LaunchBuffers:
    """The tensors that a loop of launches reads and writes.

    Eager: tensors made for this call, and the given inputs themselves.  Graphed (CUDA, per-step
    loop): static tensors kept in ``layer.cache`` while the key (shapes, options) stays the same,
    inputs copied in, and the launches recorded once as a CUDA graph, then replayed.
    """

    def __init__(self, key: tuple, graphed: bool) -> None:
        self.key, self.graphed = key, graphed
        self.tensors: dict[str, torch.Tensor] = {}
        self.graph: torch.cuda.CUDAGraph | None = None

    @classmethod
    def get(cls, layer: Layer, direction: str, key: tuple, graphed: bool) -> LaunchBuffers:
        if not graphed:
            return cls(key, graphed)
        cached = layer.cache.get(("triton graph", direction))
        if cached is None or cached.key != key:
            cached = layer.cache[("triton graph", direction)] = cls(key, graphed)
        return cached

    def tensor(self, name: str, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """A work tensor: made now (eager) or once per key (graphed)."""
        if not self.graphed or name not in self.tensors:
            self.tensors[name] = make()
        return self.tensors[name]

    def bind(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """``value`` as the launches read it: itself (eager) or copied into a static tensor."""
        if not self.graphed:
            return value.contiguous()
        return self.tensor(name, lambda: torch.empty_like(value, memory_format=torch.contiguous_format)).copy_(value)

    def run(self, launch: Callable[[], None]) -> None:
        if self.graph is not None:
            self.graph.replay()
            return
        launch()  # eager (the graphed case's first call also compiles the kernels here)
        if self.graphed:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                launch()


def _pad(layer: Layer) -> int:
    """Zero rows on each end of the λU buffer: every read λU[t ± d] stays inside it."""
    return max(layer.max_delay, layer.max_input_delay)


def _batch_minor(x: torch.Tensor) -> torch.Tensor:
    """``[time, B, n]`` → contiguous ``[time, n, B]``."""
    return x.transpose(1, 2).contiguous()


class TritonBackend:
    """The layer on Triton kernels (see the module docstring).

    ``time_loop``: ``"auto"``, ``"persistent"`` or ``"per_step"`` (see above).
    ``dense_input``: input delays with at least this fraction of ``N × C`` synapses are dense
    matrix products, the others gather kernels (``0`` all dense, ``math.inf`` all gathered).
    ``cuda_graphs``: replay per-step launches as CUDA graphs (CUDA only).
    """

    name = "triton"
    traced = False

    def __init__(
        self, *, time_loop: str = "auto", dense_input: float = DENSE_INPUT_FRACTION, cuda_graphs: bool = True
    ) -> None:
        if time_loop not in TIME_LOOPS:
            raise ValueError(f"unknown time_loop {time_loop!r}; choose one of {TIME_LOOPS}")
        if not dense_input >= 0:
            raise ValueError(f"dense_input must be a fraction >= 0 (math.inf: never dense), got {dense_input!r}")
        self.time_loop, self.dense_input, self.cuda_graphs = time_loop, dense_input, cuda_graphs

    def unavailable_reason(self, device: torch.device) -> str | None:
        if importlib.util.find_spec("triton") is None:
            return "Triton is not installed: pip install triton"
        if device.type == "cuda":
            return None
        if device.type == "cpu":
            if os.environ.get("TRITON_INTERPRET") == "1":
                return None
            return "Triton runs on CUDA tensors (on CPU tensors only under its interpreter: TRITON_INTERPRET=1)"
        return f"Triton runs on CUDA tensors, not on {device.type}"

    def time_loop_of(self, layer: Layer) -> str:
        """``"persistent"`` or ``"per_step"``: how the time loop of ``layer`` runs."""
        return "persistent" if self._persistent(self._plan(layer)) else "per_step"

    # -- shared pieces -------------------------------------------------------------------------

    def _plan(self, layer: Layer) -> Plan:
        key = ("triton plan", self.dense_input)
        if key not in layer.cache:
            layer.cache[key] = Plan.build(layer, self.dense_input)
        return layer.cache[key]

    def _persistent(self, plan: Plan) -> bool:
        if self.time_loop != "auto":
            return self.time_loop == "persistent"
        return plan.rec_rows is None or plan.n_neurons <= PERSISTENT_MAX_NEURONS

    def _time_loop(self, plan: Plan, rec: RowView | None, steps: int, batch: int, x: torch.Tensor) -> TimeLoop:
        """The loop over ``steps`` for recurrent synapses ``rec`` (rows of this direction)."""
        n = plan.n_neurons
        if not self._persistent(plan):
            graphed = x.is_cuda and self.cuda_graphs and n * batch <= GRAPH_MAX_STEP_ELEMENTS
            chunks = None if rec is None else Geometry.chunked(rec, batch)
            spans = [(t, 1) for t in range(steps)]
            return TimeLoop(Geometry.blocked(n, batch, tile=512), spans, False, chunks, graphed)
        if rec is None:  # independent neurons: any blocks, the whole time loop in each
            return TimeLoop(Geometry.blocked(n, batch, tile=512), [(0, steps)], False, None, False)
        geometry = Geometry.holding(rec, batch, x.element_size())
        return TimeLoop(geometry, [(0, steps)], True, None, False)

    @staticmethod
    def _neuron_params(layer: Layer, alpha: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """``[5, N]``: α, θ, s, z, m (see :mod:`snngraph.kernels.neurons`)."""
        flags = (layer.reset_subtract, layer.reset_zero, layer.spiking)
        return torch.stack([alpha, theta, *(f.to(alpha.dtype) for f in flags)])

    @staticmethod
    def _gather(
        out: torch.Tensor,
        view: RowView,
        weights: torch.Tensor,
        src: torch.Tensor,
        src_base: int,
        accumulate: bool,
    ) -> None:
        """``out[τ, b, r] (+)= Σ_{k ∈ row r} w_k · src[src_base + τ + shift_k, index_k, b]`` for every τ."""
        from snngraph.kernels.gather import gather_kernel

        n_times, batch, n_rows = out.shape
        if n_times == 0:
            return
        geometry = Geometry.blocked(n_rows, batch, view.mean_length)
        gather_kernel[(n_times, geometry.grid_rows, geometry.grid_b)](
            out,
            view.ptr,
            view.index,
            view.shift,
            weights,
            src,
            src_base,
            n_rows,
            src.shape[1],
            batch,
            ACCUMULATE=accumulate,
            **geometry.meta("BLOCK_R"),
        )

    @staticmethod
    def _gather_step(
        out: torch.Tensor, view: RowView, weights: torch.Tensor, src: torch.Tensor, src_t: int, geometry: Geometry
    ) -> None:
        """``out[b, r] += Σ_{k ∈ row r} w_k · src[src_t + shift_k, index_k, b]`` (one step, ``out`` ``[B, rows]``)."""
        from snngraph.kernels.gather import gather_chunks_kernel

        gather_chunks_kernel[(geometry.grid_rows, geometry.grid_b)](
            out,
            view.chunk_row,
            view.chunk_start,
            view.ptr,
            view.index,
            view.shift,
            weights,
            src,
            src_t,
            view.n_rows,
            src.shape[1],
            out.shape[0],
            CHUNK=CHUNK,
            **geometry.meta(None),
        )

    @staticmethod
    def _synapse_grad(
        view: RowView | None, pre: torch.Tensor, lam_u: torch.Tensor, lam_base: int, weights: torch.Tensor
    ) -> torch.Tensor:
        """``∂w`` like ``weights``: ``Σ_τ Σ_b pre[τ, pre_k, b] · λU[lam_base + τ + d_k, post_k, b]`` on ``view``."""
        from snngraph.kernels.synapse_grad import synapse_grad_kernel

        grad = torch.zeros_like(weights)
        if view is None or view.chunk_row.numel() == 0:
            return grad
        n_times, n_pre, batch = pre.shape
        synapse_grad_kernel[(view.chunk_row.numel(), -(-n_times // TIME_BLOCK))](
            grad,
            view.chunk_row,
            view.chunk_start,
            view.ptr,
            view.index,
            view.shift,
            view.order,
            pre,
            lam_u,
            lam_base,
            n_times,
            TIME_BLOCK,
            n_pre,
            lam_u.shape[1],
            batch,
            BLOCK_K=CHUNK,
            BLOCK_B=_pow2(batch, 8),
        )
        return grad

    # -- forward -------------------------------------------------------------------------------

    def _input_current(self, plan: Plan, layer: Layer, x: torch.Tensor, w_in: torch.Tensor, out: torch.Tensor) -> None:
        """``out`` ``[T, B, N]`` ← ``I_in[t] = Σ_{input synapses} w_k X[t − d_k]_{pre_k}``."""
        steps, batch, n = out.shape
        d_in, flat = layer.max_input_delay, out.view(steps * batch, n)
        for i, bucket in enumerate(plan.dense):
            x_d = x[d_in - bucket.delay : d_in - bucket.delay + steps].reshape(steps * batch, -1)
            weight_t = bucket.matrix(w_in, (n, layer.n_inputs)).t()
            if i == 0:
                torch.mm(x_d, weight_t, out=flat)
            else:
                flat.addmm_(x_d, weight_t)
        if plan.in_rows is not None:
            self._gather(out, plan.in_rows, w_in[plan.in_rows.order], _batch_minor(x), d_in, bool(plan.dense))
        elif not plan.dense:
            out.zero_()

    def forward(self, layer: Layer, inputs: LayerInputs) -> torch.Tensor:
        """U ``[T, B, N]`` of DESIGN §1."""
        from snngraph.kernels.lif_forward import lif_forward_kernel

        x, w_in, w_rec, alpha, theta, u0, s_hist = inputs
        plan, rows = self._plan(layer), self._plan(layer).rec_rows
        n, d = layer.n_neurons, layer.max_delay
        steps, batch = x.shape[0] - layer.max_input_delay, x.shape[1]
        loop = self._time_loop(plan, rows, steps, batch, x)
        buffers = LaunchBuffers.get(layer, "forward", (steps, batch), loop.graphed)
        current = buffers.tensor("current", lambda: x.new_empty(steps, batch, n))
        u = buffers.tensor("u", lambda: x.new_empty(steps, batch, n))
        hist = buffers.tensor("hist", lambda: x.new_empty(d + steps, n, batch, dtype=torch.uint8))
        self._input_current(plan, layer, x, w_in, current)
        hist[:d].copy_(s_hist.transpose(1, 2))
        u0 = buffers.bind("u0", u0)
        params = buffers.bind("params", self._neuron_params(layer, alpha, theta))
        w_rows = None if rows is None else buffers.bind("w_rows", w_rec[rows.order])
        fused = (rows.ptr, rows.index, rows.shift, w_rows) if loop.fused else (params,) * 4
        step = loop.step

        def launch() -> None:
            for t_start, count in loop.spans:
                if loop.chunks is not None:
                    self._gather_step(current[t_start], rows, w_rows, hist, d + t_start, loop.chunks)
                lif_forward_kernel[(step.grid_rows, step.grid_b)](
                    u,
                    current,
                    u0 if t_start == 0 else u[t_start - 1],
                    hist,
                    params,
                    *fused,
                    n,
                    batch,
                    d,
                    t_start,
                    t_start + count,
                    HAS_REC=loop.fused,
                    RESIDENT=step.resident,
                    num_stages=1,  # no software pipelining across the steps' barriers
                    **step.meta(),
                )

        buffers.run(launch)
        return u.clone() if loop.graphed else u

    # -- backward ------------------------------------------------------------------------------

    def backward(
        self,
        layer: Layer,
        inputs: LayerInputs,
        u: torch.Tensor,
        grad_u: torch.Tensor | None,
        grad_s: torch.Tensor | None,
        needs: LayerInputs,
    ) -> LayerInputs:
        """Gradients of every input (``None`` where ``needs`` says no), DESIGN §2.

        ``u`` may be saved in a lower precision (:func:`round_membranes`); the arithmetic runs in
        the dtype of the weights.
        """
        from snngraph.kernels.lif_backward import lif_backward_kernel

        if not any(needs):
            return LayerInputs(*(None,) * len(needs))
        x, w_in, w_rec, alpha, theta, u0, s_hist = inputs
        plan, cols = self._plan(layer), self._plan(layer).rec_cols
        steps, batch, n = u.shape
        grad_u, grad_s = (x.new_zeros(steps, batch, n) if g is None else g for g in (grad_u, grad_s))
        d, pad = layer.max_delay, _pad(layer)
        loop = self._time_loop(plan, cols, steps, batch, x)
        key = (steps, batch, u.dtype, layer.surrogate, layer.detach_reset)
        buffers = LaunchBuffers.get(layer, "backward", key, loop.graphed)
        lam_u = buffers.tensor("lam_u", lambda: x.new_empty(pad + steps + pad, n, batch))
        lam_u[:pad].zero_()
        lam_u[pad + steps :].zero_()
        lam_rec = buffers.tensor("lam_rec", lambda: x.new_zeros(batch, n))  # the kernel leaves it zero
        acc = buffers.tensor("acc", lambda: x.new_empty(2, n, batch)).zero_()
        du0 = buffers.tensor("du0", lambda: x.new_empty(batch, n))
        hist = buffers.tensor("hist", lambda: x.new_empty(d + steps, n, batch, dtype=torch.uint8))
        hist[:d].copy_(s_hist.transpose(1, 2))
        hist[d:].copy_(layer.spikes(u.to(theta.dtype), theta).transpose(1, 2))
        saved_u, grad_u, grad_s = buffers.bind("u", u), buffers.bind("grad_u", grad_u), buffers.bind("grad_s", grad_s)
        u0 = buffers.bind("u0", u0)
        params = buffers.bind("params", self._neuron_params(layer, alpha, theta))
        slope = buffers.bind("slope", theta.new_tensor([layer.surrogate.slope]))
        w_cols = None if cols is None else buffers.bind("w_cols", w_rec[cols.order])
        fused = (cols.ptr, cols.index, cols.shift, w_cols) if loop.fused else (params,) * 4
        step = loop.step

        def launch() -> None:
            for t_start, count in reversed(loop.spans):
                t_last = t_start + count - 1
                if loop.chunks is not None:
                    self._gather_step(lam_rec, cols, w_cols, lam_u, pad + t_last, loop.chunks)
                lif_backward_kernel[(step.grid_rows, step.grid_b)](
                    lam_u,
                    lam_rec,
                    acc,
                    du0,
                    saved_u,
                    grad_u,
                    grad_s,
                    u0,
                    hist,
                    params,
                    slope,
                    *fused,
                    n,
                    batch,
                    d,
                    pad,
                    t_last,
                    count,
                    SURROGATE=layer.surrogate.code,
                    DETACH_RESET=layer.detach_reset,
                    ADD_REC=loop.chunks is not None,
                    HAS_REC=loop.fused,
                    RESIDENT=step.resident,
                    num_stages=1,
                    **step.meta(),
                )

        buffers.run(launch)
        grad_x, grad_w_in = self._input_grads(plan, layer, x, w_in, lam_u, needs)
        return LayerInputs(
            x=grad_x,
            w_in=grad_w_in,
            w_rec=self._synapse_grad(cols, hist, lam_u, pad - d, w_rec) if needs.w_rec else None,
            alpha=acc[0].sum(1) if needs.alpha else None,
            theta=acc[1].sum(1) if needs.theta else None,
            u0=du0.clone() if needs.u0 else None,
            s_hist=self._history_grad(layer, cols, w_cols, lam_u, u0, alpha, theta) if needs.s_hist else None,
        )

    def _history_grad(
        self,
        layer: Layer,
        cols: RowView | None,
        w_cols: torch.Tensor | None,
        lam_u: torch.Tensor,
        u0: torch.Tensor,
        alpha: torch.Tensor,
        theta: torch.Tensor,
    ) -> torch.Tensor:
        """∂s_hist ``[D, B, N]``: λS[t] for t = −D … −1 (Wᵀ term; the reset terms at t = −1)."""
        d, pad = layer.max_delay, _pad(layer)
        grad = lam_u.new_zeros(d, lam_u.shape[2], lam_u.shape[1])
        if cols is not None and w_cols is not None:
            self._gather(grad, cols, w_cols, lam_u, pad - d, accumulate=False)
        if not layer.detach_reset:
            reset = layer.reset_subtract * theta + layer.reset_zero * alpha * u0
            grad[d - 1] -= reset * lam_u[pad].t()
        return grad

    def _input_grads(
        self,
        plan: Plan,
        layer: Layer,
        x: torch.Tensor,
        w_in: torch.Tensor,
        lam_u: torch.Tensor,
        needs: LayerInputs,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(∂x, ∂w_in)``: ∂x[Din + t − d]_c += w λU[t]_i and ∂w = Σ λU[t]_i X[t − d]_c per synapse."""
        d_in, pad = layer.max_input_delay, _pad(layer)
        steps, batch = x.shape[0] - d_in, x.shape[1]
        grad_x = torch.zeros_like(x) if needs.x else None
        grad_w = torch.zeros_like(w_in) if needs.w_in else None
        if plan.dense and (needs.x or needs.w_in):
            lam_flat = lam_u[pad : pad + steps].transpose(1, 2).reshape(steps * batch, -1)
            for bucket in plan.dense:
                rows = slice(d_in - bucket.delay, d_in - bucket.delay + steps)
                if grad_x is not None:
                    weight = bucket.matrix(w_in, (layer.n_neurons, layer.n_inputs))
                    grad_x[rows].view(steps * batch, -1).addmm_(lam_flat, weight)
                if grad_w is not None:
                    grad_dense = lam_flat.t() @ x[rows].reshape(steps * batch, -1)
                    grad_w[bucket.ids] = grad_dense.view(-1)[bucket.flat]
        if plan.in_cols is not None:
            if grad_x is not None:
                self._gather(grad_x, plan.in_cols, w_in[plan.in_cols.order], lam_u, pad - d_in, accumulate=True)
            if grad_w is not None:
                grad_w += self._synapse_grad(plan.in_cols, _batch_minor(x), lam_u, pad - d_in, w_in)
        return grad_x, grad_w
