"""Weight gradients on the stored synapses only, gated by presynaptic activity (docs/design.md, "BPTT")."""

import triton
import triton.language as tl


@triton.jit
def synapse_grad_kernel(
    grad_ptr,
    chunk_row_ptr,
    chunk_start_ptr,
    cols_ptr,
    index_ptr,
    shift_ptr,
    order_ptr,
    pre_ptr,
    lam_u_ptr,
    lam_base,
    n_times,
    time_block,
    n_pre,
    n_neurons,
    n_batch,
    BLOCK_K: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    """``∂w_k = Σ_τ Σ_b P[τ, pre_k, b] · λU[lam_base + τ + d_k, post_k, b]``.

    ``P`` ``[n_times, n_pre, B]`` is the presynaptic signal (the spike history, uint8, or the
    input), ``lam_u`` the zero-padded λU buffer ``[time, N, B]``; the synapses as rows over
    presynaptic neurons (``index`` = post, ``shift = +d``, ``order`` = synapse id, where the
    gradient is added).  One program per chunk of ≤ ``BLOCK_K`` synapses of one presynaptic
    neuron (``chunk_row``, ``chunk_start``) and block of ``time_block`` steps τ (program 1); the
    blocks' sums add atomically.  For each τ and batch block the chunk reads λU only where the
    presynaptic value is nonzero and skips the block when it is zero throughout: the cost
    follows the presynaptic spikes, not ``T·B`` per synapse.
    """
    chunk = tl.program_id(0)
    first = tl.program_id(1) * time_block
    row = tl.load(chunk_row_ptr + chunk)
    start = tl.load(chunk_start_ptr + chunk)
    stop = tl.minimum(start + BLOCK_K, tl.load(cols_ptr + row + 1))
    k = start + tl.arange(0, BLOCK_K)
    mask_k = k < stop
    post = tl.load(index_ptr + k, mask=mask_k, other=0)
    shift = tl.load(shift_ptr + k, mask=mask_k, other=0)
    acc = tl.zeros([BLOCK_K], dtype=grad_ptr.dtype.element_ty)
    step = n_neurons * n_batch
    for tau in range(first, tl.minimum(first + time_block, n_times)):
        pre_row = (tl.cast(tau, tl.int64) * n_pre + row) * n_batch
        lam_row = tl.cast(lam_base + tau + shift, tl.int64) * step + tl.cast(post, tl.int64) * n_batch
        for b0 in range(0, n_batch, BLOCK_B):
            offs_b = b0 + tl.arange(0, BLOCK_B)
            mask_b = offs_b < n_batch
            p = tl.load(pre_ptr + pre_row + offs_b, mask=mask_b, other=0).to(acc.dtype)
            if tl.max(tl.abs(p), axis=0) > 0:
                lam = tl.load(
                    lam_u_ptr + lam_row[:, None] + offs_b[None, :],
                    mask=mask_k[:, None] & (mask_b & (p != 0))[None, :],
                    other=0.0,
                )
                acc += tl.sum(lam * p[None, :], axis=1)
    order = tl.load(order_ptr + k, mask=mask_k, other=0)
    tl.atomic_add(grad_ptr + order, acc, mask=mask_k)
