"""Backward pass of the Triton backend (see the package docstring): the gradient of every input."""

from __future__ import annotations

import torch

from snngraph.backends.base import LayerInputs, LayerSpec, Needs
from snngraph.backends.triton.forward import kernel_params
from snngraph.backends.triton.geometry import time_loop
from snngraph.backends.triton.graphs import LaunchBuffers
from snngraph.backends.triton.launch import batch_minor, gather, gather_step, pad, synapse_grad
from snngraph.backends.triton.options import TritonOptions
from snngraph.backends.triton.plan import IndexViews, RowView
from snngraph.neurons import onset_gate, spikes, table_gradient

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
    """Gradients of every input (``None`` where ``needs`` says no) of a plain layer,
    docs/design.md ("BPTT").

    ``v`` may be saved in a lower precision (:func:`~snngraph.backends.base.round_states`);
    the arithmetic runs in the dtype of the weights.
    """
    from snngraph.kernels.lif_backward import lif_backward_kernel

    x, w_in, w_rec, generic, v0, s_hist = inputs
    table = kernel_params(generic)[0]
    u, u0 = v[:, 0], v0[0]
    grad_u = None if grad_v is None else grad_v[:, 0]
    cols = views.rec_cols
    steps, batch, n = u.shape
    grad_u, grad_s = (x.new_zeros(steps, batch, n) if g is None else g for g in (grad_u, grad_s))
    d, padding = layer.max_delay, pad(layer)
    loop = time_loop(views, options, cols, steps, batch, x)
    key = (steps, batch, u.dtype, layer.surrogate, layer.detach_reset)
    buffers = LaunchBuffers.get(views.graphs, "backward", key, loop.graphed)
    lam_u = buffers.tensor("lam_u", lambda: x.new_empty(padding + steps + padding, n, batch))
    lam_u[:padding].zero_()
    lam_u[padding + steps :].zero_()
    lam_rec = buffers.tensor("lam_rec", lambda: x.new_zeros(batch, n))  # the kernel leaves it zero
    acc = buffers.tensor("acc", lambda: x.new_empty(2, n, batch)).zero_()
    du0 = buffers.tensor("du0", lambda: x.new_empty(batch, n))
    hist = buffers.tensor("hist", lambda: x.new_empty(d + steps, n, batch, dtype=torch.uint8))
    hist[:d].copy_(s_hist.transpose(1, 2))
    hist[d:].copy_(spikes(v.to(table.dtype), generic).transpose(1, 2))
    saved_u, grad_u, grad_s = buffers.bind("u", u), buffers.bind("grad_u", grad_u), buffers.bind("grad_s", grad_s)
    u0 = buffers.bind("u0", u0)
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
                num_stages=1,
                **step.meta(),
            )

    buffers.run(launch)
    grad_x, grad_w_in = _input_grads(views, layer, x, w_in, lam_u, needs, options.deterministic)
    neurons = None
    if needs.neurons:
        sums = {"A": acc[0], "theta": acc[1]}  # per (neuron, batch row)
        groups = {name: sum_.sum(1) for name, sum_ in sums.items() if name in needs.neurons}
        if "b" in needs.neurons:  # Σ_{t ≥ onset} λU[t]
            lam_t = lam_u[padding : padding + steps].sum(2)
            gate = onset_gate(generic, steps)
            groups["b"] = (lam_t if gate is None else lam_t * gate).sum(0)
        neurons = table_gradient(generic, groups)
    return LayerInputs(
        x=grad_x,
        w_in=grad_w_in,
        w_rec=synapse_grad(cols, hist, lam_u, padding - d, w_rec, options.deterministic) if needs.w_rec else None,
        neurons=neurons,
        v0=du0.clone()[None] if needs.v0 else None,
        s_hist=_history_grad(layer, cols, w_cols, lam_u, u0, table) if needs.s_hist else None,
    )


def _history_grad(
    layer: LayerSpec,
    cols: RowView | None,
    w_cols: torch.Tensor | None,
    lam_u: torch.Tensor,
    u0: torch.Tensor,
    table: torch.Tensor,
) -> torch.Tensor:
    """∂s_hist ``[D, B, N]``: λS[t] for t = −D … −1 (Wᵀ term; the reset terms at t = −1)."""
    d, padding = layer.max_delay, pad(layer)
    grad = lam_u.new_zeros(d, lam_u.shape[2], lam_u.shape[1])
    if cols is not None and w_cols is not None:
        gather(grad, cols, w_cols, lam_u, padding - d, accumulate=False)
    if not layer.detach_reset:
        reset = table[_SUBTRACT] * table[_THETA] + table[_ZERO] * table[_ALPHA] * u0
        grad[d - 1] -= reset * lam_u[padding].t()
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
    """``(∂x, ∂w_in)``: ∂x[Din + t − d]_c += w λU[t]_i and ∂w = Σ λU[t]_i X[t − d]_c per synapse."""
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
