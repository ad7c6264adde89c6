"""Host launchers of the kernels that the forward and backward passes share: the gathers over a
row view and the weight gradient on the stored synapses.  Triton is imported only when a kernel
runs, so that ``import snngraph`` works without it."""

from __future__ import annotations

import torch

from snngraph.backends.base import LayerSpec
from snngraph.backends.triton.geometry import TIME_BLOCK, Geometry, pow2
from snngraph.backends.triton.plan import CHUNK, RowView


def pad(layer: LayerSpec) -> int:
    """Zero rows on each end of the λU buffer: every read λU[t ± d] stays inside it."""
    return max(layer.max_delay, layer.max_input_delay)


def batch_minor(x: torch.Tensor) -> torch.Tensor:
    """``[time, B, n]`` → contiguous ``[time, n, B]``."""
    return x.transpose(1, 2).contiguous()


def gather(
    out: torch.Tensor,
    view: RowView,
    weights: torch.Tensor,
    src: torch.Tensor,
    src_base: int,
    accumulate: bool,
    geometry: Geometry | None = None,
) -> None:
    """``out[τ, b, r] (+)= Σ_{k ∈ row r} w_k · src[src_base + τ + shift_k, index_k, b]`` for every τ
    (one program per block of whole rows: a fixed order of the sums)."""
    from snngraph.kernels.gather import gather_kernel

    n_times, batch, n_rows = out.shape
    if n_times == 0:
        return
    geometry = Geometry.blocked(n_rows, batch, view.mean_length) if geometry is None else geometry
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


def gather_step(
    out: torch.Tensor,
    view: RowView,
    weights: torch.Tensor,
    src: torch.Tensor,
    src_t: int,
    geometry: Geometry,
    chunked: bool,
) -> None:
    """``out[b, r] += Σ_{k ∈ row r} w_k · src[src_t + shift_k, index_k, b]`` (one step, ``out``
    ``[B, rows]``): over chunks of :data:`CHUNK` synapses that add atomically (``chunked``: long
    rows do not hold a step back), or over whole rows (:func:`gather`, a fixed order)."""
    if not chunked:
        gather(out[None], view, weights, src, src_t, accumulate=True, geometry=geometry)
        return
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


def synapse_grad(
    view: RowView | None,
    pre: torch.Tensor,
    lam_u: torch.Tensor,
    lam_base: int,
    weights: torch.Tensor,
    deterministic: bool,
) -> torch.Tensor:
    """``∂w`` like ``weights``: ``Σ_τ Σ_b pre[τ, pre_k, b] · λU[lam_base + τ + d_k, post_k, b]`` on ``view``.

    Programs cover chunks of synapses × blocks of :data:`TIME_BLOCK` steps whose sums add
    atomically; ``deterministic``: one block of all steps, so each synapse has one program.
    """
    from snngraph.kernels.synapse_grad import synapse_grad_kernel

    grad = torch.zeros_like(weights)
    if view is None or view.chunk_row.numel() == 0:
        return grad
    n_times, n_pre, batch = pre.shape
    time_block = max(n_times, 1) if deterministic else TIME_BLOCK
    synapse_grad_kernel[(view.chunk_row.numel(), -(-n_times // time_block))](
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
        time_block,
        n_pre,
        lam_u.shape[1],
        batch,
        BLOCK_K=CHUNK,
        BLOCK_B=pow2(batch, 8),
    )
    return grad
