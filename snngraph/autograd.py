"""The one ``torch.autograd.Function`` of the layer: it saves tensors and dispatches.

Forward: ``U = backend.forward(layer, inputs)`` and ``S = H(U − θ)·m``.  Saved for backward:
the inputs and ``U`` only (spikes are recomputed as ``U > θ``).  Backward:
``backend.backward(...)`` runs the reverse-time recursion of DESIGN §2 and returns the
gradient of every input.  No maths here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from snngraph.backends.base import Layer, LayerInputs, round_membranes


class LayerFunction(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, backend: Any, layer: Layer, *tensors: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = LayerInputs(*tensors)
        u = backend.forward(layer, inputs)
        saved = u if layer.saved_membranes is None else round_membranes(u, inputs.theta, layer.saved_membranes)
        ctx.save_for_backward(*inputs, saved)
        ctx.backend, ctx.layer = backend, layer
        ctx.set_materialize_grads(False)  # an output that no loss reaches gets None, not zeros
        return u, layer.spikes(u, inputs.theta)

    @staticmethod
    @once_differentiable  # the backward is not itself differentiable: refuse double backward
    def backward(ctx: Any, grad_u: torch.Tensor | None, grad_s: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        *saved, u = ctx.saved_tensors
        needs = LayerInputs(*ctx.needs_input_grad[2:])
        if grad_u is None and grad_s is None:
            return (None,) * (2 + len(needs))
        grads = ctx.backend.backward(ctx.layer, LayerInputs(*saved), u, grad_u, grad_s, needs)
        return (None, None, *(g if need else None for g, need in zip(grads, needs, strict=True)))


def run_layer(backend: Any, layer: Layer, inputs: LayerInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """U and S ``[T, B, N]`` through ``backend``: traced directly, or through :class:`LayerFunction`."""
    if backend.traced:
        return backend.run(layer, inputs)
    return LayerFunction.apply(backend, layer, *inputs)
