"""Launch geometry of the Triton kernels: block sizes, grids, warps, and how the time loop runs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from snngraph.backends.triton.options import TritonOptions
from snngraph.backends.triton.plan import CHUNK, IndexViews, RowView

TIME_BLOCK = 64
"""Steps per program in the weight-gradient kernel (the blocks add atomically unless deterministic)."""
TILE = 2048
"""Elements of a gather tile ``[rows, synapses, batch]`` (larger ones spill registers)."""
RESIDENT_TILE_BYTES = 16384
"""Largest ``[N, longest row]`` tile of weights that the persistent loop keeps in registers."""
ELEMENTS_PER_THREAD = 8
"""Tile elements per thread: the warps of a launch (4 to 16); more spill registers."""
STEP_TILE = 512
"""Elements of the step kernel's tile of neurons × batch (no gather in it) for neurons of one state
variable; neurons of ``K`` get ``STEP_TILE / K`` (``K`` rounded up to a power of two), so that their
states and table rows stay in registers (sm_90: no spills up to K = 4 in float64)."""


def pow2(n: int, cap: int) -> int:
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
            num_warps = min(max(pow2(threads // 32, 16), 4), 16)
        grid_rows, grid_b = -(-n_rows // block_rows), -(-batch // block_b)
        return cls(block_rows, block_b, block_j, grid_rows, grid_b, num_warps, resident)

    @classmethod
    def holding(cls, view: RowView, batch: int, itemsize: int) -> Geometry:
        """One program (8 warps) per batch row holding all rows: the persistent loop with recurrence.

        Resident synapses keep int32 offsets ``shift·N·B + index·B``: only while they fit.
        """
        n_rows, max_length = view.n_rows, view.max_length
        block_rows, block_j = pow2(n_rows, 1 << 30), pow2(max_length, 1 << 30)
        fits_int32 = (view.max_delay + 1) * n_rows * batch < 1 << 31
        if block_rows * block_j * itemsize <= RESIDENT_TILE_BYTES and fits_int32:
            return cls._make(n_rows, batch, block_rows, 1, block_j, num_warps=8, resident=True)
        block_j = pow2(max_length, max(TILE // block_rows, 1))
        return cls._make(n_rows, batch, block_rows, 1, block_j, num_warps=8)

    @classmethod
    def blocked(cls, n_rows: int, batch: int, mean_length: float = 1.0, tile: int = TILE) -> Geometry:
        """Blocks of rows × batch sized so that an average row is read in about one pass."""
        block_b = pow2(batch, 32)
        block_j = pow2(math.ceil(mean_length), max(tile // block_b, 1))
        block_rows = pow2(max(tile // (block_j * block_b), 1), pow2(n_rows, 64))
        return cls._make(n_rows, batch, block_rows, block_b, block_j)

    @classmethod
    def chunked(cls, view: RowView, batch: int) -> Geometry:
        """One program per chunk of :data:`CHUNK` synapses (:func:`gather_chunks_kernel`)."""
        block_b = pow2(batch, 32)
        block_j = pow2(min(view.max_length, CHUNK), max(TILE // block_b, 1))
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
    synapses); ``gather``: else, the geometry of the per-step gather of the recurrent term
    (``None`` without recurrent synapses), over chunks of :data:`CHUNK` synapses that add
    atomically when ``chunked``, else over blocks of whole rows (a fixed order);
    ``graphed``: the launches replay as a CUDA graph.
    """

    step: Geometry
    spans: list[tuple[int, int]]
    fused: bool
    gather: Geometry | None
    graphed: bool
    chunked: bool = False


def is_persistent(views: IndexViews, options: TritonOptions) -> bool:
    """Whether the time loop runs persistent (``options.time_loop``, or chosen by size)."""
    if options.time_loop != "auto":
        return options.time_loop == "persistent"
    return views.rec_rows is None or views.n_neurons <= options.persistent_max_neurons


def time_loop(
    views: IndexViews,
    options: TritonOptions,
    rec: RowView | None,
    steps: int,
    batch: int,
    x: torch.Tensor,
    n_states: int = 1,
) -> TimeLoop:
    """The loop over ``steps`` for recurrent synapses ``rec`` (rows of this direction), neurons of
    ``n_states`` state variables."""
    n = views.n_neurons
    tile = STEP_TILE // pow2(n_states, STEP_TILE)
    if not is_persistent(views, options):
        graphed = x.is_cuda and options.cuda_graphs and n * batch <= options.graph_max_step_elements
        chunked = rec is not None and not options.deterministic
        if rec is None:
            gather = None
        elif chunked:
            gather = Geometry.chunked(rec, batch)
        else:  # one program sums each row: no atomic adds
            gather = Geometry.blocked(rec.n_rows, batch, rec.mean_length)
        spans = [(t, 1) for t in range(steps)]
        return TimeLoop(Geometry.blocked(n, batch, tile=tile), spans, False, gather, graphed, chunked)
    if rec is None:  # independent neurons: any blocks, the whole time loop in each
        return TimeLoop(Geometry.blocked(n, batch, tile=tile), [(0, steps)], False, None, False)
    geometry = Geometry.holding(rec, batch, x.element_size())
    return TimeLoop(geometry, [(0, steps)], True, None, False)
