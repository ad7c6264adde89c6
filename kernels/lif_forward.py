"""The forward time loop of the LIF layer (docs/design.md, "The model"), one fused step per timestep."""

import triton
import triton.language as tl

from .gather import gather_synapses, synapse_rows
from .neurons import load_neurons
from .states import gated, load_onset, load_states, load_table, step_states, store_states


@triton.jit(do_not_specialize=["t_start", "t_stop"])
def lif_forward_kernel(
    u_ptr,
    current_ptr,
    u_prev_ptr,
    hist_ptr,
    params_ptr,
    rows_ptr,
    index_ptr,
    shift_ptr,
    weight_ptr,
    n_neurons,
    n_batch,
    max_delay,
    t_start,
    t_stop,
    HAS_REC: tl.constexpr,
    RESIDENT: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_J: tl.constexpr,
    GENERIC: tl.constexpr = False,
    N_STATES: tl.constexpr = 1,
    ONSET: tl.constexpr = False,
):
    """Steps ``t = t_start … t_stop − 1`` for a block of neurons × a block of the batch:

        I[t] = I_in[t] + Σ_{rec synapses k → i} w_k · S[t − d_k]_{pre_k}
        U[t] = α·U[t−1]·(1 − z·S[t−1]) + I[t] − s·θ·S[t−1]
        S[t] = m·H(U[t] − θ)

    ``u`` (out) and ``current`` (``I_in``) ``[T, B, N]``; ``u_prev`` ``[B, N]`` = U[t_start − 1];
    ``hist`` ``[D + T, N, B]`` uint8 holds S[t] at row ``D + t`` (rows before ``D + t_start`` are
    given, the rest are written here); ``params`` ``[5, N]`` (:mod:`.neurons`); the recurrent
    synapses as rows over postsynaptic neurons with ``shift = −d`` (:mod:`.gather`).

    ``GENERIC``: the neurons of ``N_STATES = K`` state variables instead (:mod:`.states`),

        v[t] = A·m(v[t−1]) + e·I[t] + b + c·S[t−1] − r·(s·θ_eff[t−1]·S[t−1]),   S[t] = spiking·H(v₀[t] − θ_eff[t]),

    with ``u`` the states ``[T, K, B, N]``, ``u_prev`` ``[K, B, N]`` = v[t_start − 1] and
    ``params`` the whole table ``[P, N]``; ``current`` stays ``I_in`` ``[T, B, N]`` (no bias in it).

    U and S stay in registers from step to step.  With recurrent synapses, a step reads spikes
    that other neurons wrote one or more steps before, so either the program holds every neuron
    and gathers here (``HAS_REC``: the persistent loop, grid ``(1, ·)``, a barrier between
    steps; ``RESIDENT``: no row longer than ``BLOCK_J``, the synapses read into registers once,
    before the time loop) or the host runs one step per launch, after adding the recurrent
    input into ``I_in[t]`` (:func:`.gather.gather_chunks_kernel`).
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
        theta, subtract, zero, spiking, a, e, b, c, r, g = load_table(params_ptr, rows, mask_n, n_neurons, N_STATES)
    else:
        alpha, theta, subtract, zero, spiking = load_neurons(params_ptr, rows, mask_n, n_neurons)
    onset = tl.zeros([BLOCK_N, 1], dtype=theta.dtype)  # (a name the loop can see; unused without ONSET)
    if ONSET:
        onset = load_onset(params_ptr, rows, mask_n, n_neurons, GENERIC, N_STATES)
    if HAS_REC:
        start, length, max_length, syn_mask, syn_offset, syn_weight = synapse_rows(
            rows_ptr, rows, mask_n, index_ptr, shift_ptr, weight_ptr, step, n_batch, RESIDENT, BLOCK_J
        )
    if GENERIC:
        v = load_states(u_prev_ptr, batch_major, step, mask, theta.dtype, N_STATES)
    else:
        u = tl.load(u_prev_ptr + batch_major, mask=mask, other=0.0)
    s_row = tl.cast(max_delay + t_start - 1, tl.int64) * step
    s = tl.load(hist_ptr + s_row + batch_minor, mask=mask, other=0).to(theta.dtype)
    for t in range(t_start, t_stop):
        t_offset = tl.cast(t, tl.int64) * step
        current = tl.load(current_ptr + t_offset + batch_major, mask=mask, other=0.0)
        if HAS_REC:
            current = gather_synapses(
                current,
                start,
                length,
                max_length,
                syn_mask,
                syn_offset,
                syn_weight,
                index_ptr,
                shift_ptr,
                weight_ptr,
                hist_ptr,
                max_delay + t,
                step,
                n_batch,
                offs_b,
                mask_b,
                RESIDENT,
                BLOCK_J,
            )
        live_spiking = spiking  # the spiking flag of this step: 0 before the onset
        if ONSET:
            live = onset <= t
            live_spiking = tl.where(live, spiking, 0.0)
        if GENERIC:
            drive = b  # and the drive b
            if ONSET:
                drive = gated(b, live, N_STATES)
            v, s = step_states(v, s, current, theta, subtract, zero, live_spiking, a, e, drive, c, r, g, N_STATES)
            store_states(u_ptr + t_offset * N_STATES, batch_major, step, v, mask, N_STATES)
        else:
            u = alpha * u * (1.0 - zero * s) + current - subtract * theta * s
            s = tl.where(u > theta, live_spiking, 0.0)
            tl.store(u_ptr + t_offset + batch_major, u, mask=mask)
        hist_row = tl.cast(max_delay + t, tl.int64) * step
        tl.store(hist_ptr + hist_row + batch_minor, s.to(tl.uint8), mask=mask)
        if HAS_REC:
            tl.debug_barrier()
