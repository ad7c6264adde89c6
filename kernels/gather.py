"""Sparse gathers over rows of synapses (CSR or CSC), batch vectorised.

A *row view* of a set of synapses groups them by one end (``ptr[r] : ptr[r + 1]`` are row
``r``'s entries); each entry has the other end ``index_k``, a time ``shift_k`` and a weight
``w_k``.  The source is batch-minor, ``src[time, neuron, b]``, so one synapse reads ``B``
contiguous values.  The two views in use:

* over postsynaptic rows (CSR), ``shift = −d``: ``Σ_k w_k S[t − d_k]_{pre_k}`` (input current);
* over presynaptic rows (CSC), ``shift = +d``: ``Σ_k w_k λU[t + d_k]_{post_k}`` (the ``Wᵀ`` term).

Helpers (:func:`synapse_rows` before the loop, :func:`gather_synapses` at each step, built on
:func:`row_entries`, :func:`gather_entries`, :func:`gather_rows`) serve the time-loop kernels;
:func:`gather_kernel` gathers every step at once, :func:`gather_chunks_kernel` one step split
into equal chunks.
"""

import triton
import triton.language as tl


@triton.jit
def row_entries(
    start,
    length,
    j0,
    index_ptr,
    shift_ptr,
    weight_ptr,
    stride_src_t,
    stride_src_n,
    BLOCK_J: tl.constexpr,
    OFFSET: tl.constexpr,
):
    """Entries ``j0 … j0 + BLOCK_J − 1`` of each row: ``(mask, offset, weight)``, ``[BLOCK_R, BLOCK_J]``.

    ``offset = shift·stride_src_t + index·stride_src_n`` (integer type ``OFFSET``; int32 halves
    the registers of entries kept across steps) places the entry's source row relative to time
    0; ``start``, ``length`` ``[BLOCK_R]`` from :func:`row_extent`.
    """
    j = j0 + tl.arange(0, BLOCK_J)
    mask = j[None, :] < length[:, None]
    k = start[:, None] + j[None, :]
    index = tl.load(index_ptr + k, mask=mask, other=0)
    shift = tl.load(shift_ptr + k, mask=mask, other=0)
    weight = tl.load(weight_ptr + k, mask=mask, other=0.0)
    offset = tl.cast(shift, OFFSET) * stride_src_t + tl.cast(index, OFFSET) * stride_src_n
    return mask, offset, weight


@triton.jit
def gather_entries(acc, mask, offset, weight, src_ptr, src_t, stride_src_t, offs_b, mask_b):
    """``acc[r, b] + Σ_j weight[r, j] · src[src_t·stride_src_t + offset[r, j] + b]``.

    ``acc`` ``[BLOCK_R, BLOCK_B]`` (compute dtype); ``mask``, ``offset``, ``weight`` from
    :func:`row_entries`; ``offs_b``/``mask_b`` ``[BLOCK_B]`` the batch columns.
    """
    base = src_ptr + tl.cast(src_t, tl.int64) * stride_src_t
    value = tl.load(
        base + offset[:, :, None] + offs_b[None, None, :],
        mask=mask[:, :, None] & mask_b[None, None, :],
        other=0,
    )
    return acc + tl.sum(weight[:, :, None] * value.to(weight.dtype), axis=1)


@triton.jit
def gather_rows(
    acc,
    start,
    length,
    max_length,
    index_ptr,
    shift_ptr,
    weight_ptr,
    src_ptr,
    src_t,
    stride_src_t,
    stride_src_n,
    offs_b,
    mask_b,
    BLOCK_J: tl.constexpr,
):
    """``acc[r, b] + Σ_{k ∈ row r} w_k · src[src_t + shift_k, index_k, b]``, ``BLOCK_J`` entries at a time.

    ``max_length`` = max of ``length``; see :func:`row_entries` and :func:`gather_entries`.
    """
    for j0 in range(0, max_length, BLOCK_J):
        mask, offset, weight = row_entries(
            start, length, j0, index_ptr, shift_ptr, weight_ptr, stride_src_t, stride_src_n, BLOCK_J, tl.int64
        )
        acc = gather_entries(acc, mask, offset, weight, src_ptr, src_t, stride_src_t, offs_b, mask_b)
    return acc


@triton.jit
def row_extent(ptr_ptr, rows, mask):
    """``(start, length, max length)`` of ``rows`` in a row view (length 0 where masked)."""
    start = tl.load(ptr_ptr + rows, mask=mask, other=0)
    length = tl.load(ptr_ptr + rows + 1, mask=mask, other=0) - start
    return start, length, tl.max(length, axis=0)


@triton.jit
def synapse_rows(
    ptr_ptr,
    rows,
    mask,
    index_ptr,
    shift_ptr,
    weight_ptr,
    stride_src_t,
    stride_src_n,
    RESIDENT: tl.constexpr,
    BLOCK_J: tl.constexpr,
):
    """The synapse rows of ``rows`` for a time loop, read before it: ``(start, length, max length,
    mask, offset, weight)``.

    ``RESIDENT`` (every row fits in one ``BLOCK_J`` tile): the entries themselves
    (:func:`row_entries`, int32 offsets), read once and kept in registers across steps; otherwise
    only the extent, and :func:`gather_synapses` reads the entries at every step.
    """
    start, length, max_length = row_extent(ptr_ptr, rows, mask)
    if RESIDENT:
        entry_mask, offset, weight = row_entries(
            start, length, 0, index_ptr, shift_ptr, weight_ptr, stride_src_t, stride_src_n, BLOCK_J, tl.int32
        )
    else:
        entry_mask, offset, weight = 0, 0, 0  # unused: gather_rows reads the entries
    return start, length, max_length, entry_mask, offset, weight


@triton.jit
def gather_synapses(
    acc,
    start,
    length,
    max_length,
    entry_mask,
    offset,
    weight,
    index_ptr,
    shift_ptr,
    weight_ptr,
    src_ptr,
    src_t,
    stride_src_t,
    stride_src_n,
    offs_b,
    mask_b,
    RESIDENT: tl.constexpr,
    BLOCK_J: tl.constexpr,
):
    """One step of a time loop: ``acc[r, b] + Σ_{k ∈ row r} w_k · src[src_t + shift_k, index_k, b]``
    over the rows that :func:`synapse_rows` read (from registers when ``RESIDENT``)."""
    if RESIDENT:
        acc = gather_entries(acc, entry_mask, offset, weight, src_ptr, src_t, stride_src_t, offs_b, mask_b)
    else:
        acc = gather_rows(
            acc,
            start,
            length,
            max_length,
            index_ptr,
            shift_ptr,
            weight_ptr,
            src_ptr,
            src_t,
            stride_src_t,
            stride_src_n,
            offs_b,
            mask_b,
            BLOCK_J,
        )
    return acc


@triton.jit
def gather_kernel(
    out_ptr,
    ptr_ptr,
    index_ptr,
    shift_ptr,
    weight_ptr,
    src_ptr,
    src_base,
    n_rows,
    n_src,
    n_batch,
    ACCUMULATE: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_J: tl.constexpr,
):
    """``out[τ, b, r] (+)= Σ_{k ∈ row r} w_k · src[src_base + τ + shift_k, index_k, b]``.

    One program per (time ``τ`` = program 0, block of rows, block of batch).
    ``out`` ``[n_times, B, n_rows]``, ``src`` ``[time, n_src, B]``, both contiguous.  Used for the
    sparse input current ``I_in[t] = Σ w X[t − d]``, the input gradient
    ``∂x[τ] = Σ w λU[τ − Din + d]`` and the history gradient ``∂S[τ − D] = Σ w λU[τ − D + d]``.
    """
    tau = tl.program_id(0)
    rows = tl.program_id(1) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_b = tl.program_id(2) * BLOCK_B + tl.arange(0, BLOCK_B)
    mask_r = rows < n_rows
    mask_b = offs_b < n_batch
    start, length, max_length = row_extent(ptr_ptr, rows, mask_r)
    acc = tl.zeros([BLOCK_R, BLOCK_B], dtype=out_ptr.dtype.element_ty)
    acc = gather_rows(
        acc,
        start,
        length,
        max_length,
        index_ptr,
        shift_ptr,
        weight_ptr,
        src_ptr,
        src_base + tau,
        n_src * n_batch,
        n_batch,
        offs_b,
        mask_b,
        BLOCK_J,
    )
    offs = tl.cast(tau, tl.int64) * n_batch * n_rows + offs_b[None, :] * n_rows + rows[:, None]
    mask = mask_r[:, None] & mask_b[None, :]
    if ACCUMULATE:
        acc += tl.load(out_ptr + offs, mask=mask, other=0.0)
    tl.store(out_ptr + offs, acc, mask=mask)


@triton.jit
def gather_chunks_kernel(
    out_ptr,
    chunk_row_ptr,
    chunk_start_ptr,
    ptr_ptr,
    index_ptr,
    shift_ptr,
    weight_ptr,
    src_ptr,
    src_t,
    n_rows,
    n_src,
    n_batch,
    CHUNK: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_J: tl.constexpr,
):
    """``out[b, r] += Σ_{k ∈ chunk} w_k · src[src_t + shift_k, index_k, b]``, one chunk per program.

    A chunk is ≤ ``CHUNK`` consecutive entries of one row ``r`` (``chunk_row``, ``chunk_start``), so
    every program does about the same work however long the rows; chunks of one row add into
    ``out`` ``[B, n_rows]`` atomically.  ``src`` ``[time, n_src, B]``.  The per-step recurrent
    input ``Σ w S[t − d]`` (into I[t]) and the per-step ``Σ w λU[t + d]`` (into λS[t]).
    """
    chunk = tl.program_id(0)
    offs_b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    mask_b = offs_b < n_batch
    first = chunk + tl.arange(0, 1)
    row = tl.load(chunk_row_ptr + first)
    start = tl.load(chunk_start_ptr + first)
    length = tl.minimum(start + CHUNK, tl.load(ptr_ptr + row + 1)) - start
    acc = tl.zeros([1, BLOCK_B], dtype=out_ptr.dtype.element_ty)
    acc = gather_rows(
        acc,
        start,
        length,
        tl.max(length, axis=0),
        index_ptr,
        shift_ptr,
        weight_ptr,
        src_ptr,
        src_t,
        n_src * n_batch,
        n_batch,
        offs_b,
        mask_b,
        BLOCK_J,
    )
    tl.atomic_add(out_ptr + offs_b[None, :] * n_rows + row[:, None], acc, mask=mask_b[None, :])
