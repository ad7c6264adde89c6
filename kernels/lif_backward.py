"""The reverse time loop of BPTT through the LIF layer (docs/design.md, "BPTT")."""

import triton
import triton.language as tl

from .gather import gather_synapses, synapse_rows
from .neurons import load_neurons
from .states import (
    add_states,
    adjoint_states,
    carry_back,
    dot,
    load_onset,
    load_states,
    load_table,
    store_states,
)
from .surrogates import surrogate_grad


@triton.jit(do_not_specialize=["t_first", "n_steps"])
def lif_backward_kernel(
    lam_u_ptr,
    lam_rec_ptr,
    acc_ptr,
    du0_ptr,
    u_ptr,
    grad_u_ptr,
    grad_s_ptr,
    u0_ptr,
    hist_ptr,
    params_ptr,
    slope_ptr,
    cols_ptr,
    index_ptr,
    shift_ptr,
    weight_ptr,
    n_neurons,
    n_batch,
    max_delay,
    pad,
    t_first,
    n_steps,
    SURROGATE: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    ADD_REC: tl.constexpr,
    HAS_REC: tl.constexpr,
    RESIDENT: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_J: tl.constexpr,
    GENERIC: tl.constexpr = False,
    N_STATES: tl.constexpr = 1,
    STEP_FACTORS: tl.constexpr = False,
    ONSET: tl.constexpr = False,
):
    """Steps ``t = t_first, t_first − 1, …`` (``n_steps`` of them) for a block of neurons × batch:

        λS[t] = ∂L/∂S[t] + Σ_{rec synapses k: i → j, d} w_k·λU[t + d]_j
                − (s·θ + z·α·U[t])·λU[t + 1]                 (without detach_reset)
        λU[t] = ∂L/∂U[t] + α·λU[t + 1]·(1 − z·S[t]) + m·σ'(U[t] − θ)·λS[t]
        ∂α   += Σ_b λU[t]·U[t − 1]·(1 − z·S[t − 1])
        ∂θ   += Σ_b −m·σ'(U[t] − θ)·λS[t] − s·λU[t]·S[t − 1]
        ∂u0   = α·(1 − z·S[−1])·λU[0]

    ``lam_u`` ``[pad + T + pad, N, B]`` holds λU[t] at row ``pad + t`` (the pads are zero, so
    λU[T] = 0 and reads past either end need no mask); ``lam_rec`` ``[B, N]`` the ``Wᵀ`` term of
    this step when ``ADD_REC`` (per-step loop) instead of the gather here (``HAS_REC``);
    ``acc`` ``[2, N, B]`` receives the ∂α and ∂θ sums (added to, before the sum over b); ``du0``
    ``[B, N]`` is written at ``t = 0``.
    ``u`` (any float dtype; spikes are ``u > θ`` in the compute dtype), ``grad_u``, ``grad_s``
    ``[T, B, N]``; ``u0`` ``[B, N]``; ``hist`` ``[D + T, N, B]`` uint8 spikes (S[t] at row
    ``D + t``); ``params`` ``[5, N]``; ``slope`` ``[1]`` the surrogate's k; the recurrent synapses
    as rows over presynaptic neurons with ``shift = +d``.  As in the forward kernel, the
    persistent loop holds every neuron in one program (``RESIDENT``: with the synapses in
    registers); otherwise one step per launch.

    ``GENERIC``: neurons of ``N_STATES = K`` state variables (:mod:`.states`), with λv[t] ``K``
    tiles in registers and λI[t] = e·λv[t] in place of λU in ``lam_u`` (what the synapses see):

        λS[t] = ∂L/∂S[t] + Σ_{rec synapses k: i → j, d} w_k·λI[t + d]_j + own[t]
        λq[t] = spiking·σ'(v₀[t] − θ − g·v[t])·λS[t]
        λv[t] = ∂L/∂v[t] + through[t] + λq[t]·(e₀ − g)
        through[t − 1] = D(S[t − 1])ᵀ Aᵀ λv[t] − s·S[t − 1]·g·(r·λv[t])
        own[t − 1]     = c·λv[t] − z·v₀[t − 1]·(A[:, 0]·λv[t]) − s·θ_eff[t − 1]·(r·λv[t])

    (``own`` without its reset terms when ``DETACH_RESET``; :func:`.states.carry_back`).  Then
    ``u`` and ``grad_u`` are ``[T, K, B, N]``, ``u0`` ``[K, B, N]``, ``params`` the table
    ``[P, N]``; ``du0`` ``[K + 1, B, N]`` carries ``(through, own)`` from launch to launch: zero
    before ``t = T − 1``, ∂L/∂v0 and the neuron's part of ∂L/∂s_hist[−1] after ``t = 0``.
    ``STEP_FACTORS``: ``acc`` ``[T, K + 1, B, N]`` receives λv[t] and λq[t], the factors of the
    table's gradient (summed over t and b by the host).
    """
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    mask_n = rows < n_neurons
    mask_b = offs_b < n_batch
    mask = mask_n[:, None] & mask_b[None, :]
    batch_major = offs_b[None, :] * n_neurons + rows[:, None]
    batch_minor = rows[:, None] * n_batch + offs_b[None, :]
    step = n_neurons * n_batch
    if GENERIC:
        theta, subtract, zero, spiking, a, e, _, c, r, g = load_table(params_ptr, rows, mask_n, n_neurons, N_STATES)
    else:
        alpha, theta, subtract, zero, spiking = load_neurons(params_ptr, rows, mask_n, n_neurons)
    dtype = theta.dtype
    slope = tl.load(slope_ptr)
    onset = tl.zeros([BLOCK_N, 1], dtype=theta.dtype)  # (a name the loop can see; unused without ONSET)
    if ONSET:
        onset = load_onset(params_ptr, rows, mask_n, n_neurons, GENERIC, N_STATES)
    if HAS_REC:
        start, length, max_length, syn_mask, syn_offset, syn_weight = synapse_rows(
            cols_ptr, rows, mask_n, index_ptr, shift_ptr, weight_ptr, step, n_batch, RESIDENT, BLOCK_J
        )
    u_offset = tl.cast(t_first, tl.int64) * step
    if GENERIC:
        v = load_states(u_ptr + u_offset * N_STATES, batch_major, step, mask, dtype, N_STATES)
        through = load_states(du0_ptr, batch_major, step, mask, dtype, N_STATES)
        own = tl.load(du0_ptr + N_STATES * step + batch_major, mask=mask, other=0.0)
    else:
        u = tl.load(u_ptr + u_offset + batch_major, mask=mask, other=0.0).to(dtype)
        lam_row = tl.cast(pad + t_first + 1, tl.int64) * step
        lam_next = tl.load(lam_u_ptr + lam_row + batch_minor, mask=mask, other=0.0)
        d_alpha = tl.zeros([BLOCK_N, BLOCK_B], dtype=dtype)
        d_theta = tl.zeros([BLOCK_N, BLOCK_B], dtype=dtype)
    for i in range(n_steps):
        t = t_first - i
        t_offset = tl.cast(t, tl.int64) * step
        lam_s = tl.load(grad_s_ptr + t_offset + batch_major, mask=mask, other=0.0)
        if ADD_REC:  # the Wᵀ term, summed into lam_rec by gather_chunks_kernel; cleared for the next step
            lam_s += tl.load(lam_rec_ptr + batch_major, mask=mask, other=0.0)
            tl.store(lam_rec_ptr + batch_major, tl.zeros_like(lam_s), mask=mask)
        if HAS_REC:
            lam_s = gather_synapses(
                lam_s,
                start,
                length,
                max_length,
                syn_mask,
                syn_offset,
                syn_weight,
                index_ptr,
                shift_ptr,
                weight_ptr,
                lam_u_ptr,
                pad + t,
                step,
                n_batch,
                offs_b,
                mask_b,
                RESIDENT,
                BLOCK_J,
            )
        live_spiking = spiking  # the spiking flag of this step: 0 (no surrogate) before the onset
        if ONSET:
            live_spiking = tl.where(onset <= t, spiking, 0.0)
        if GENERIC:
            grad_v = load_states(grad_u_ptr + t_offset * N_STATES, batch_major, step, mask, dtype, N_STATES)
            lam_s += own
            lam_v, lam_q = adjoint_states(grad_v, through, lam_s, v, theta, live_spiking, g, slope, SURROGATE, N_STATES)
            tl.store(lam_u_ptr + tl.cast(pad + t, tl.int64) * step + batch_minor, dot(e, lam_v, N_STATES), mask=mask)
            if STEP_FACTORS:
                factors = acc_ptr + t_offset * (N_STATES + 1) + batch_major
                store_states(factors, 0, step, lam_v, mask, N_STATES)
                tl.store(factors + N_STATES * step, lam_q, mask=mask)
            # the state before t: v[t − 1] (v0 at t = 0) and S[t − 1]
            first = mask & (tl.zeros([BLOCK_N, BLOCK_B], dtype=tl.int32) + t == 0)
            v_prev = add_states(
                load_states(u_ptr + (t_offset - step) * N_STATES, batch_major, step, mask & ~first, dtype, N_STATES),
                load_states(u0_ptr, batch_major, step, first, dtype, N_STATES),
                N_STATES,
            )
            s_row = tl.cast(max_delay + t - 1, tl.int64) * step
            s_prev = tl.load(hist_ptr + s_row + batch_minor, mask=mask, other=0).to(dtype)
            through, own = carry_back(lam_v, v_prev, s_prev, theta, subtract, zero, a, c, r, g, DETACH_RESET, N_STATES)
            v = v_prev
        else:
            if not DETACH_RESET:
                lam_s -= (subtract * theta + zero * alpha * u) * lam_next
            s = tl.where(u > theta, live_spiking, 0.0)
            surrogate = live_spiking * surrogate_grad(u - theta, slope, SURROGATE) * lam_s
            lam_u = tl.load(grad_u_ptr + t_offset + batch_major, mask=mask, other=0.0)
            lam_u += alpha * lam_next * (1.0 - zero * s) + surrogate
            tl.store(lam_u_ptr + tl.cast(pad + t, tl.int64) * step + batch_minor, lam_u, mask=mask)
            # the state before t: U[t − 1] (u0 at t = 0) and S[t − 1] (the history holds S[−D] … S[T − 1])
            first = mask & (tl.zeros([BLOCK_N, BLOCK_B], dtype=tl.int32) + t == 0)
            u_prev = tl.load(u_ptr + t_offset - step + batch_major, mask=mask & ~first, other=0.0)
            u_prev = u_prev.to(dtype) + tl.load(u0_ptr + batch_major, mask=first, other=0.0)
            s_row = tl.cast(max_delay + t - 1, tl.int64) * step
            s_prev = tl.load(hist_ptr + s_row + batch_minor, mask=mask, other=0).to(dtype)
            keep = 1.0 - zero * s_prev
            d_alpha += lam_u * u_prev * keep
            d_theta -= surrogate + subtract * lam_u * s_prev
            tl.store(du0_ptr + batch_major, alpha * keep * lam_u, mask=first)
            u = u_prev
            lam_next = lam_u
        if HAS_REC:
            tl.debug_barrier()
    if GENERIC:
        store_states(du0_ptr, batch_major, step, through, mask, N_STATES)
        tl.store(du0_ptr + N_STATES * step + batch_major, own, mask=mask)
    else:
        d_alpha += tl.load(acc_ptr + batch_minor, mask=mask, other=0.0)
        d_theta += tl.load(acc_ptr + step + batch_minor, mask=mask, other=0.0)
        tl.store(acc_ptr + batch_minor, d_alpha, mask=mask)
        tl.store(acc_ptr + step + batch_minor, d_theta, mask=mask)
