"""The one ``torch.autograd.Function`` of the layer: it saves tensors and dispatches.

Forward: ``V, S = backend.forward(plan, inputs)``, the states ``[T, K, B, N]`` and
``S = spiking·H(U − θ_eff)``.  Saved for backward: the inputs and ``V`` only (spikes are
recomputed from V).  Backward: ``backend.backward(...)`` runs the reverse-time recursion
(docs/design.md, "BPTT", "Neurons") and returns the gradient of every input.  No maths here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from snngraph.backends.base import LayerInputs, Needs, Plan, round_states


class LayerFunction(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, plan: Plan, trainable: frozenset[str], *tensors: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = LayerInputs(*tensors)
        v, s = plan.backend.forward(plan, inputs)
        storage = plan.layer.saved_membranes
        saved = v if storage is None else round_states(v, inputs.neurons, storage)
        ctx.save_for_backward(*inputs, saved)
        ctx.plan, ctx.trainable = plan, trainable
        ctx.set_materialize_grads(False)  # an output that no loss reaches gets None, not zeros
        return v, s

    @staticmethod
    @once_differentiable  # the backward is not itself differentiable: refuse double backward
    def backward(ctx: Any, grad_v: torch.Tensor | None, grad_s: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        *saved, v = ctx.saved_tensors
        wanted = LayerInputs(*ctx.needs_input_grad[2:])
        if grad_v is None and grad_s is None:
            return (None,) * (2 + len(wanted))
        needs = Needs(*wanted)._replace(neurons=ctx.trainable if wanted.neurons else frozenset())
        grads = ctx.plan.backend.backward(ctx.plan, LayerInputs(*saved), v, grad_v, grad_s, needs)
        return (None, None, *(g if need else None for g, need in zip(grads, wanted, strict=True)))
