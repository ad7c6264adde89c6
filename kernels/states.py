"""The generic neuron of ``K`` state variables (:mod:`snngraph.neurons`) in Triton: its table
rows, one step forward and what one step hands back to the step before it in BPTT.

The table ``[P, N]`` has the rows θ, s, z, spiking, then the blocks ``A`` (``K²`` rows,
``A[j, k]`` at ``j·K + k``), ``e``, ``b``, ``c``, ``r``, ``g`` (``K`` rows each), then the onsets.
Before its onset a neuron is inert: the kernels built with ``ONSET`` zero its drive ``b`` and its
spiking flag (and with it the surrogate) at the steps ``t < onset``.  The states of
a tile of neurons × batch are a tuple of ``K`` tiles ``[BLOCK_N, BLOCK_B]`` (``v[0]`` = U), the
blocks tuples of ``[BLOCK_N, 1]`` columns; every loop over the states is a ``tl.static_range``
over the constexpr ``K`` (≤ 4), unrolled, so the states stay in registers.  Forward
(docs/design.md, "Neurons"; ``S_p`` = S[t − 1], ``m`` = v[t − 1] with ``m₀ = v₀[t − 1]·(1 − z·S_p)``):

    v[t]     = A·m + e·I[t] + b + c·S_p − r·(s·θ_eff[t − 1]·S_p)
    θ_eff[t] = θ + g·v[t]
    S[t]     = spiking·H(v₀[t] − θ_eff[t])
"""

import triton
import triton.language as tl

from .surrogates import surrogate_grad


@triton.jit
def load_rows(table_ptr, first, rows, mask, n_neurons, COUNT: tl.constexpr):
    """Rows ``first … first + COUNT − 1`` of the table at ``rows``: a tuple of ``[BLOCK_N, 1]``."""
    out = ()
    for i in tl.static_range(COUNT):
        out = out + (tl.load(table_ptr + (first + i) * n_neurons + rows, mask=mask, other=0.0)[:, None],)
    return out


@triton.jit
def load_table(table_ptr, rows, mask, n_neurons, K: tl.constexpr):
    """``(θ, s, z, spiking, A, e, b, c, r, g)`` of ``rows``: four columns, then the blocks as tuples
    (``A`` row-major, ``K²`` columns)."""
    theta, subtract, zero, spiking = load_rows(table_ptr, 0, rows, mask, n_neurons, 4)
    a = load_rows(table_ptr, 4, rows, mask, n_neurons, K * K)
    e = load_rows(table_ptr, 4 + K * K, rows, mask, n_neurons, K)
    b = load_rows(table_ptr, 4 + K * K + K, rows, mask, n_neurons, K)
    c = load_rows(table_ptr, 4 + K * K + 2 * K, rows, mask, n_neurons, K)
    r = load_rows(table_ptr, 4 + K * K + 3 * K, rows, mask, n_neurons, K)
    g = load_rows(table_ptr, 4 + K * K + 4 * K, rows, mask, n_neurons, K)
    return theta, subtract, zero, spiking, a, e, b, c, r, g


@triton.jit
def load_onset(table_ptr, rows, mask, n_neurons, GENERIC: tl.constexpr, K: tl.constexpr):
    """The onsets of ``rows`` ``[BLOCK_N, 1]``: the last row of a generic table (``4 + K² + 5K``),
    row 5 of the plain kernels' parameters."""
    row = 4 + K * K + 5 * K if GENERIC else 5
    return tl.load(table_ptr + row * n_neurons + rows, mask=mask, other=0.0)[:, None]


@triton.jit
def gated(x, live, K: tl.constexpr):
    """``x·[live]`` for each of the ``K`` columns of ``x`` (a neuron's drive before its onset)."""
    out = ()
    for k in tl.static_range(K):
        out = out + (tl.where(live, x[k], 0.0),)
    return out


@triton.jit
def load_states(ptr, offsets, stride, mask, dtype, K: tl.constexpr):
    """``(x[0], …, x[K − 1])`` with ``x[k] = ptr[k·stride + offsets]`` (0 where masked), as ``dtype``."""
    out = ()
    for k in tl.static_range(K):
        out = out + (tl.load(ptr + k * stride + offsets, mask=mask, other=0.0).to(dtype),)
    return out


@triton.jit
def store_states(ptr, offsets, stride, values, mask, K: tl.constexpr):
    """``ptr[k·stride + offsets] = values[k]`` for ``k < K``."""
    for k in tl.static_range(K):
        tl.store(ptr + k * stride + offsets, values[k], mask=mask)


@triton.jit
def add_states(x, y, K: tl.constexpr):
    """``x + y`` elementwise over two tuples of ``K`` tiles."""
    out = ()
    for k in tl.static_range(K):
        out = out + (x[k] + y[k],)
    return out


@triton.jit
def dot(x, y, K: tl.constexpr):
    """``Σ_k x[k]·y[k]``, summed in the order of ``k``."""
    acc = x[0] * y[0]
    for k in tl.static_range(1, K):
        acc += x[k] * y[k]
    return acc


@triton.jit
def transposed(a, lam, k: tl.constexpr, K: tl.constexpr):
    """``(Aᵀ λ)_k = Σ_j A[j, k]·λ_j``."""
    acc = a[k] * lam[0]
    for j in tl.static_range(1, K):
        acc += a[j * K + k] * lam[j]
    return acc


@triton.jit
def step_states(v, s_prev, current, theta, subtract, zero, spiking, a, e, b, c, r, g, K: tl.constexpr):
    """``(v[t], S[t])`` from ``v`` = v[t − 1], ``s_prev`` = S[t − 1] and ``current`` = I[t]
    (the module docstring's update)."""
    reset = subtract * (theta + dot(g, v, K)) * s_prev
    kept = v[0] * (1.0 - zero * s_prev)
    new = ()
    for j in tl.static_range(K):
        acc = a[j * K] * kept
        for k in tl.static_range(1, K):
            acc += a[j * K + k] * v[k]
        new = new + (acc + e[j] * current + b[j] + c[j] * s_prev - r[j] * reset,)
    s = tl.where(new[0] > theta + dot(g, new, K), spiking, 0.0)
    return new, s


@triton.jit
def adjoint_states(grad_v, carried, lam_s, v, theta, spiking, g, slope, SURROGATE: tl.constexpr, K: tl.constexpr):
    """``(λv[t], λq[t])`` from ``grad_v`` = ∂L/∂v[t], ``carried`` = what step t + 1 handed back
    (:func:`carry_back`), λS[t] and ``v`` = v[t]:

        λq[t] = spiking·σ'(q[t])·λS[t],     q[t] = v₀[t] − θ − g·v[t]
        λv[t] = ∂L/∂v[t] + carried + λq[t]·(e₀ − g)
    """
    lam_q = spiking * surrogate_grad(v[0] - theta - dot(g, v, K), slope, SURROGATE) * lam_s
    lam_v = (grad_v[0] + carried[0] + lam_q - lam_q * g[0],)
    for k in tl.static_range(1, K):
        lam_v = lam_v + (grad_v[k] + carried[k] - lam_q * g[k],)
    return lam_v, lam_q


@triton.jit
def carry_back(lam_v, v_prev, s_prev, theta, subtract, zero, a, c, r, g, DETACH_RESET: tl.constexpr, K: tl.constexpr):
    """What step t hands back to step t − 1, given λv[t], ``v_prev`` = v[t − 1] and
    ``s_prev`` = S[t − 1]: the part of λv[t − 1] that flows through v[t],

        D(S[t − 1])ᵀ Aᵀ λv[t] − s·S[t − 1]·g·(r·λv[t]),     D(S) = diag(1 − z·S, 1, …, 1),

    and the neuron's own part of λS[t − 1] (the reset terms unless ``DETACH_RESET``),

        c·λv[t] − z·v₀[t − 1]·(A[:, 0]·λv[t]) − s·θ_eff[t − 1]·(r·λv[t]).

    At t = 0 these are ∂L/∂v0 and the neuron's part of ∂L/∂s_hist[−1].
    """
    rho = dot(r, lam_v, K)
    lowered = subtract * s_prev * rho
    column = transposed(a, lam_v, 0, K)
    through = (column * (1.0 - zero * s_prev) - g[0] * lowered,)
    for k in tl.static_range(1, K):
        through = through + (transposed(a, lam_v, k, K) - g[k] * lowered,)
    own = dot(c, lam_v, K)
    if not DETACH_RESET:
        own -= zero * v_prev[0] * column + subtract * (theta + dot(g, v_prev, K)) * rho
    return through, own
