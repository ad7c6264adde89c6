"""Forward pass of the Triton backend (see the package docstring): the states V ``[T, K, B, N]``."""

from __future__ import annotations

import torch

from snngraph.backends.base import LayerInputs, LayerSpec
from snngraph.backends.triton.geometry import time_loop
from snngraph.backends.triton.graphs import LaunchBuffers
from snngraph.backends.triton.launch import batch_minor, gather, gather_step
from snngraph.backends.triton.options import TritonOptions
from snngraph.backends.triton.plan import IndexViews
from snngraph.neurons import FLAGS, THETA, block_rows, onset_gate

_PLAIN = block_rows(1)


def kernel_params(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The plain kernels' ``[6, N]`` rows (α, θ, s, z, m; :mod:`snngraph.kernels.neurons`; then
    the onsets) of a plain table (``K = 1``, α = A₀₀) and its bias b₀ (``None`` when zero
    everywhere)."""
    alpha, bias = table[_PLAIN["A"]], table[_PLAIN["b"]][0]
    params = torch.cat([alpha, table[THETA : THETA + 1], table[FLAGS], table[-1:]])
    return params, (bias if bool(bias.any()) else None)


def has_onsets(table: torch.Tensor) -> bool:
    """Whether some neuron of the table starts late (the kernels then run with ``ONSET``)."""
    return bool(table[-1].any())


def input_current(views: IndexViews, layer: LayerSpec, x: torch.Tensor, w_in: torch.Tensor, out: torch.Tensor) -> None:
    """``out`` ``[T, B, N]`` ← ``I_in[t] = Σ_{input synapses} w_k X[t − d_k]_{pre_k}``."""
    steps, batch, n = out.shape
    d_in, flat = layer.max_input_delay, out.view(steps * batch, n)
    for i, bucket in enumerate(views.dense):
        x_d = x[d_in - bucket.delay : d_in - bucket.delay + steps].reshape(steps * batch, -1)
        weight_t = bucket.matrix(w_in, (n, layer.n_inputs)).t()
        if i == 0:
            torch.mm(x_d, weight_t, out=flat)
        else:
            flat.addmm_(x_d, weight_t)
    if views.in_rows is not None:
        gather(out, views.in_rows, w_in[views.in_rows.order], batch_minor(x), d_in, bool(views.dense))
    elif not views.dense:
        out.zero_()


def forward(views: IndexViews, layer: LayerSpec, options: TritonOptions, inputs: LayerInputs) -> torch.Tensor:
    """V ``[T, K, B, N]``, docs/design.md ("The model", "Neurons"): a plain layer through the
    kernels' ``[5, N]`` rows with the bias in the current, any other through the whole table."""
    from snngraph.kernels.lif_forward import lif_forward_kernel

    x, w_in, w_rec, table, v0, s_hist = inputs
    onsets = has_onsets(table)
    table, bias = kernel_params(table) if layer.plain else (table, None)
    rows = views.rec_rows
    n, d, k = layer.n_neurons, layer.max_delay, layer.n_states
    steps, batch = x.shape[0] - layer.max_input_delay, x.shape[1]
    loop = time_loop(views, options, rows, steps, batch, x, k)
    buffers = LaunchBuffers.get(views.graphs, "forward", (steps, batch, onsets), loop.graphed)
    current = buffers.tensor("current", lambda: x.new_empty(steps, batch, n))
    u = buffers.tensor("u", lambda: x.new_empty(steps, k, batch, n))
    hist = buffers.tensor("hist", lambda: x.new_empty(d + steps, n, batch, dtype=torch.uint8))
    input_current(views, layer, x, w_in, current)
    if bias is not None:  # the constant b added to I[t] from each neuron's onset on
        gate = onset_gate(inputs.neurons, steps)
        current += bias if gate is None else (bias * gate)[:, None]
    hist[:d].copy_(s_hist.transpose(1, 2))
    u0 = buffers.bind("u0", v0)
    params = buffers.bind("params", table)
    w_rows = None if rows is None else buffers.bind("w_rows", w_rec[rows.order])
    fused = (rows.ptr, rows.index, rows.shift, w_rows) if loop.fused else (params,) * 4
    step = loop.step

    def launch() -> None:
        for t_start, count in loop.spans:
            if loop.gather is not None:
                gather_step(current[t_start], rows, w_rows, hist, d + t_start, loop.gather, loop.chunked)
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
                GENERIC=not layer.plain,
                N_STATES=k,
                ONSET=onsets,
                num_stages=1,  # no software pipelining across the steps' barriers
                **step.meta(),
            )

    buffers.run(launch)
    return u.clone() if loop.graphed else u
