"""Backward pass of the Triton backend (see the package docstring): the gradient of every input."""

from __future__ import annotations

import torch

from snngraph.backends.base import LayerInputs, LayerSpec, Needs
from snngraph.backends.triton.forward import has_onsets, input_current, kernel_params
from snngraph.backends.triton.geometry import time_loop
from snngraph.backends.triton.graphs import LaunchBuffers
from snngraph.backends.triton.launch import batch_minor, gather, gather_step, pad, synapse_grad
from snngraph.backends.triton.options import TritonOptions
from snngraph.backends.triton.plan import IndexViews, RowView
from snngraph.neurons import Generic, onset_gate, spikes, table_gradient

_ALPHA, _THETA, _SUBTRACT, _ZERO = range(4)  # rows of the kernels' parameters


def backward(
    views: IndexViews,
    layer: LayerSpec,
    options: TritonOptions,
    inputs: LayerInputs,
    v: torch.Tensor,
    grad_v: torch.Tensor | None,
    grad_s: torch.Tensor | None,
    needs: Needs,
) -> LayerInputs:
    """Gradients of every input (``None`` where ``needs`` says no), docs/design.md ("BPTT",
    "Neurons").

    The reverse loop writes into ``lam_u`` what the synapses see, λU of a plain layer or
    λI = e·λv of any other.  A plain layer sums its ∂α, ∂θ in the kernel; any other has the
    kernel hand back ∂L/∂v0 and its part of ∂L/∂s_hist[−1], and write λv[t] and λq[t] (only when
    the table trains), whose sums over t and b give the table's gradient (:func:`_table_grads`).
    ``v`` may be saved in a lower precision (:func:`~snngraph.backends.base.round_states`);
    the arithmetic runs in the dtype of the weights.
    """
    from snngraph.kernels.lif_backward import lif_backward_kernel

    x, w_in, w_rec, generic, v0, s_hist = inputs
    table = kernel_params(generic)[0] if layer.plain else generic
    cols, k = views.rec_cols, layer.n_states
    steps, _, batch, n = v.shape
    grad_v = x.new_zeros(steps, k, batch, n) if grad_v is None else grad_v
    grad_s = x.new_zeros(steps, batch, n) if grad_s is None else grad_s
    d, padding = layer.max_delay, pad(layer)
    loop = time_loop(views, options, cols, steps, batch, x, k)
    factors = not layer.plain and bool(needs.neurons)  # the kernel writes λv[t] and λq[t]
    onsets = has_onsets(generic)
    key = (steps, batch, v.dtype, layer.surrogate, layer.detach_reset, factors, onsets)
    buffers = LaunchBuffers.get(views.graphs, "backward", key, loop.graphed)
    lam_u = buffers.tensor("lam_u", lambda: x.new_empty(padding + steps + padding, n, batch))
    lam_u[:padding].zero_()
    lam_u[padding + steps :].zero_()
    lam_rec = buffers.tensor("lam_rec", lambda: x.new_zeros(batch, n))  # the kernel leaves it zero
    if layer.plain:
        acc = buffers.tensor("acc", lambda: x.new_empty(2, n, batch)).zero_()
        du0 = buffers.tensor("du0", lambda: x.new_empty(batch, n))
    else:  # acc: λv[t] and λq[t]; du0: what each step hands back to the one before it
        acc = buffers.tensor("acc", lambda: x.new_empty(steps, k + 1, batch, n)) if factors else table
        du0 = buffers.tensor("du0", lambda: x.new_empty(k + 1, batch, n)).zero_()
    hist = buffers.tensor("hist", lambda: x.new_empty(d + steps, n, batch, dtype=torch.uint8))
    hist[:d].copy_(s_hist.transpose(1, 2))
    hist[d:].copy_(spikes(v.to(table.dtype), generic).transpose(1, 2))
    saved_u, grad_u, grad_s = buffers.bind("u", v), buffers.bind("grad_u", grad_v), buffers.bind("grad_s", grad_s)
    u0 = buffers.bind("u0", v0)
    params = buffers.bind("params", table)
    slope = buffers.bind("slope", table.new_tensor([layer.surrogate.slope]))
    w_cols = None if cols is None else buffers.bind("w_cols", w_rec[cols.order])
    fused = (cols.ptr, cols.index, cols.shift, w_cols) if loop.fused else (params,) * 4
    step = loop.step

    def launch() -> None:
        for t_start, count in reversed(loop.spans):
            t_last = t_start + count - 1
            if loop.gather is not None:
                gather_step(lam_rec, cols, w_cols, lam_u, padding + t_last, loop.gather, loop.chunked)
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
                padding,
                t_last,
                count,
                SURROGATE=layer.surrogate.code,
                DETACH_RESET=layer.detach_reset,
                ADD_REC=loop.gather is not None,
                HAS_REC=loop.fused,
                RESIDENT=step.resident,
                GENERIC=not layer.plain,
                N_STATES=k,
                STEP_FACTORS=factors,
                ONSET=onsets,
                num_stages=1,
                **step.meta(),
            )

    buffers.run(launch)
    grad_x, grad_w_in = _input_grads(views, layer, x, w_in, lam_u, needs, options.deterministic)
    neurons = None
    if needs.neurons and layer.plain:
        sums = {"A": acc[0], "theta": acc[1]}  # per (neuron, batch row)
        groups = {name: sum_.sum(1) for name, sum_ in sums.items() if name in needs.neurons}
        if "b" in needs.neurons:  # Σ_{t ≥ onset} λU[t]
            lam_t = lam_u[padding : padding + steps].sum(2)
            gate = onset_gate(generic, steps)
            groups["b"] = (lam_t if gate is None else lam_t * gate).sum(0)
        neurons = table_gradient(generic, groups)
    elif needs.neurons:
        current = _current(views, layer, inputs, hist) if "e" in needs.neurons else None
        neurons = _table_grads(generic, v.to(table.dtype), inputs, hist, acc, current, needs.neurons)
    grad_s_hist = None
    if needs.s_hist:
        own = du0[k] if not layer.plain else None if layer.detach_reset else _reset_grad(table, u0, lam_u[padding])
        grad_s_hist = _history_grad(layer, cols, w_cols, lam_u, own)
    return LayerInputs(
        x=grad_x,
        w_in=grad_w_in,
        w_rec=synapse_grad(cols, hist, lam_u, padding - d, w_rec, options.deterministic) if needs.w_rec else None,
        neurons=neurons,
        v0=(du0[None] if layer.plain else du0[:k]).clone() if needs.v0 else None,
        s_hist=grad_s_hist,
    )


def _reset_grad(table: torch.Tensor, u0: torch.Tensor, lam_u0: torch.Tensor) -> torch.Tensor:
    """The reset terms of a plain layer's λS[−1] ``[B, N]``: ``−(s·θ + z·α·u0)·λU[0]``."""
    return -(table[_SUBTRACT] * table[_THETA] + table[_ZERO] * table[_ALPHA] * u0[0]) * lam_u0.t()


def _current(views: IndexViews, layer: LayerSpec, inputs: LayerInputs, hist: torch.Tensor) -> torch.Tensor:
    """I[t] ``[T, B, N]`` = I_in[t] + Σ_{rec synapses} w_k S[t − d_k], again from the input and the
    spike history (for ∂e)."""
    x, w_in, w_rec = inputs.x, inputs.w_in, inputs.w_rec
    current = x.new_empty(x.shape[0] - layer.max_input_delay, x.shape[1], layer.n_neurons)
    input_current(views, layer, x, w_in, current)
    if views.rec_rows is not None:
        gather(current, views.rec_rows, w_rec[views.rec_rows.order], hist, layer.max_delay, accumulate=True)
    return current


def _table_grads(
    table: torch.Tensor,
    v: torch.Tensor,
    inputs: LayerInputs,
    hist: torch.Tensor,
    factors: torch.Tensor,
    current: torch.Tensor | None,
    groups: frozenset[str],
) -> torch.Tensor:
    """The gradient of a generic table from λv[t] and λq[t] (``factors`` ``[T, K + 1, B, N]``),
    sums over t and b (docs/design.md, "Neurons"), only of ``groups``:

        ∂A[j, k] = Σ λv_j[t]·m_k[t]          ∂e = Σ λv[t]·I[t]        ∂b = Σ λv[t]
        ∂c = Σ λv[t]·S[t − 1]                 ∂r = −Σ λv[t]·s·θ_eff[t − 1]·S[t − 1]
        ∂g = −Σ λq[t]·v[t] − Σ ρ[t]·v[t − 1]  ∂θ = −Σ λq[t] − Σ ρ[t]

    with m[t] = v[t − 1] but m₀[t] = v₀[t − 1]·(1 − z·S[t − 1]) and ρ[t] = s·S[t − 1]·(r·λv[t]).
    """
    neuron, k = Generic.of(table), v.shape[1]
    lam_v, lam_q = factors[:, :k], factors[:, k]
    v_prev = torch.cat([inputs.v0[None], v[:-1]])
    d = inputs.s_hist.shape[0]
    s_prev = hist[d - 1 : -1].transpose(1, 2).to(v.dtype)  # S[t − 1], [T, B, N]
    sums: dict[str, torch.Tensor] = {}
    if "A" in groups:
        kept = torch.cat([v_prev[:, :1] * (1 - neuron.zero * s_prev[:, None]), v_prev[:, 1:]], 1)
        sums["A"] = torch.einsum("tjbn,tkbn->jkn", lam_v, kept)
    if "e" in groups:
        sums["e"] = torch.einsum("tkbn,tbn->kn", lam_v, current)
    if "b" in groups:  # Σ_{t ≥ onset} λv[t]
        gate = onset_gate(table, v.shape[0])
        sums["b"] = (lam_v if gate is None else lam_v * gate[:, None, None]).sum((0, 2))
    if "c" in groups:
        sums["c"] = torch.einsum("tkbn,tbn->kn", lam_v, s_prev)
    if "r" in groups:
        theta_prev = neuron.theta + torch.einsum("kn,tkbn->tbn", neuron.g, v_prev)
        sums["r"] = -torch.einsum("tkbn,tbn->kn", lam_v, neuron.subtract * theta_prev * s_prev)
    if groups & {"g", "theta"}:
        rho = neuron.subtract * s_prev * torch.einsum("kn,tkbn->tbn", neuron.r, lam_v)
        sums["g"] = -torch.einsum("tbn,tkbn->kn", lam_q, v) - torch.einsum("tbn,tkbn->kn", rho, v_prev)
        sums["theta"] = -(lam_q + rho).sum((0, 1))
    return table_gradient(table, {name: sums[name] for name in groups})


def _history_grad(
    layer: LayerSpec,
    cols: RowView | None,
    w_cols: torch.Tensor | None,
    lam_u: torch.Tensor,
    own: torch.Tensor | None,
) -> torch.Tensor:
    """∂s_hist ``[D, B, N]``: λS[t] for t = −D … −1, the ``Wᵀ`` term plus ``own`` ``[B, N]``
    at t = −1 (the neuron's own terms; ``None``: none)."""
    d, padding = layer.max_delay, pad(layer)
    grad = lam_u.new_zeros(d, lam_u.shape[2], lam_u.shape[1])
    if cols is not None and w_cols is not None:
        gather(grad, cols, w_cols, lam_u, padding - d, accumulate=False)
    if own is not None:
        grad[d - 1] += own
    return grad


def _input_grads(
    views: IndexViews,
    layer: LayerSpec,
    x: torch.Tensor,
    w_in: torch.Tensor,
    lam_u: torch.Tensor,
    needs: Needs,
    deterministic: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(∂x, ∂w_in)``: ∂x[Din + t − d]_c += w λU[t]_i and ∂w = Σ λU[t]_i X[t − d]_c per synapse
    (λI in place of λU in a generic layer)."""
    d_in, padding = layer.max_input_delay, pad(layer)
    steps, batch = x.shape[0] - d_in, x.shape[1]
    grad_x = torch.zeros_like(x) if needs.x else None
    grad_w = torch.zeros_like(w_in) if needs.w_in else None
    if views.dense and (needs.x or needs.w_in):
        lam_flat = lam_u[padding : padding + steps].transpose(1, 2).reshape(steps * batch, -1)
        for bucket in views.dense:
            rows = slice(d_in - bucket.delay, d_in - bucket.delay + steps)
            if grad_x is not None:
                weight = bucket.matrix(w_in, (layer.n_neurons, layer.n_inputs))
                grad_x[rows].view(steps * batch, -1).addmm_(lam_flat, weight)
            if grad_w is not None:
                grad_dense = lam_flat.t() @ x[rows].reshape(steps * batch, -1)
                grad_w[bucket.ids] = grad_dense.view(-1)[bucket.flat]
    if views.in_cols is not None:
        if grad_x is not None:
            gather(grad_x, views.in_cols, w_in[views.in_cols.order], lam_u, padding - d_in, accumulate=True)
        if grad_w is not None:
            grad_w += synapse_grad(views.in_cols, batch_minor(x), lam_u, padding - d_in, w_in, deterministic)
    return grad_x, grad_w
