"""The reference backend: the compiled layer in plain, dense PyTorch, differentiated by autograd.

Slow (dense ``[D, N, N]`` weights, one Python step per timestep) and clear: :func:`reference_layer`
is the oracle that the fused backends are tested against, with the surrogate derivative in
:class:`HeavisideSurrogate`.  Behind the one interface of :mod:`snngraph.backends.base`,
``forward`` runs it without a graph and ``backward`` runs it again under autograd and
differentiates that run.
"""

from __future__ import annotations

import torch

from snngraph.backends.base import LayerInputs, LayerSpec, Needs, Plan
from snngraph.neurons import Generic, onset_gate, table_gradient
from snngraph.surrogates import Surrogate


class HeavisideSurrogate(torch.autograd.Function):
    """S = H(x) forward (H(x) = 1 if x > 0), dS/dx = σ'(x) backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: Surrogate) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * ctx.surrogate.grad(x), None


def dense_weights(
    values: torch.Tensor, post: torch.Tensor, pre: torch.Tensor, delay: torch.Tensor, shape: tuple[int, int, int]
) -> torch.Tensor:
    """W[d, post, pre] = Σ of the synapses with that delay, post and pre (differentiable)."""
    weight = values.new_zeros(shape)
    return weight.index_put((delay, post, pre), values, accumulate=True)


def reference_layer(layer: LayerSpec, inputs: LayerInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """V ``[T, K, B, N]`` and S ``[T, B, N]`` by the recursion of docs/design.md ("The model",
    "Neurons"), step by step, differentiable by autograd in every input.

    ``detach_reset`` detaches S[t − 1] where it resets the membrane (the zero reset and the
    subtracted θ_eff·r); the spike-triggered increments ``c·S[t − 1]`` keep their gradient.
    """
    x, w_in, w_rec, table, v0, s_hist = inputs
    g = Generic.of(table)
    n, d_in, d_rec = layer.n_neurons, layer.max_input_delay, layer.max_delay
    steps = x.shape[0] - d_in
    w_in_d = dense_weights(w_in, layer.in_post, layer.in_pre, layer.in_delay, (d_in + 1, n, layer.n_inputs))
    w_rec_d = dense_weights(w_rec, layer.rec_post, layer.rec_pre, layer.rec_delay, (d_rec + 1, n, n))
    # I_in[t] = Σ_d W_in[d] X[t − d], with X[t − d] = x[Din + t − d]
    current_in = sum(torch.einsum("tbc,nc->tbn", x[d_in - d : d_in - d + steps], w_in_d[d]) for d in range(d_in + 1))
    history = list(s_hist.unbind(0))  # S[t − D], …, S[t − 1]
    column = {name: getattr(g, name)[:, None, :] for name in ("e", "b", "c", "r", "g")}  # [K, 1, N]
    gate = onset_gate(table, steps)  # [t ≥ onset]: the drive and the spikes act from each neuron's onset on
    v_prev, vs, ss = v0, [], []
    for t in range(steps):
        current = current_in[t] + sum(history[-d] @ w_rec_d[d].T for d in range(1, d_rec + 1))
        s_prev = history[-1]
        s_reset = s_prev.detach() if layer.detach_reset else s_prev
        kept = torch.cat([v_prev[:1] * (1 - g.zero * s_reset), v_prev[1:]])  # m(v[t − 1])
        theta_prev = g.theta + (column["g"] * v_prev).sum(0)  # θ_eff[t − 1]
        v = (
            torch.einsum("jkn,kbn->jbn", g.A, kept)
            + column["e"] * current
            + (column["b"] if gate is None else column["b"] * gate[t])
            + column["c"] * s_prev
            - column["r"] * (g.subtract * theta_prev * s_reset)
        )
        theta_eff = g.theta + (column["g"] * v).sum(0)
        s = HeavisideSurrogate.apply(v[0] - theta_eff, layer.surrogate) * g.spiking
        if gate is not None:
            s = s * gate[t]
        history = [*history[1:], s]
        v_prev = v
        vs.append(v)
        ss.append(s)
    return torch.stack(vs), torch.stack(ss)


class ReferenceBackend:
    """:func:`reference_layer` behind the backend interface (any device, any float dtype)."""

    name = "reference"

    def unavailable_reason(self, device: torch.device) -> None:
        return None

    def prepare(self, layer: LayerSpec, dtype: torch.dtype, previous: Plan | None = None) -> Plan:
        return Plan(self, layer, dtype, None)

    def forward(self, plan: Plan, inputs: LayerInputs) -> tuple[torch.Tensor, torch.Tensor]:
        return reference_layer(plan.layer, inputs)

    def backward(
        self,
        plan: Plan,
        inputs: LayerInputs,
        v: torch.Tensor,
        grad_v: torch.Tensor | None,
        grad_s: torch.Tensor | None,
        needs: Needs,
    ) -> LayerInputs:
        """Autograd through a second run of :func:`reference_layer`; the table's gradient keeps
        only the groups in ``needs.neurons``."""
        wants = [bool(need) for need in needs]
        with torch.enable_grad():
            leaves = LayerInputs(*(t.detach().requires_grad_(want) for t, want in zip(inputs, wants, strict=True)))
            outputs = reference_layer(plan.layer, leaves)
            pairs = [(out, g) for out, g in zip(outputs, (grad_v, grad_s), strict=True) if g is not None]
            wanted = [leaf for leaf, want in zip(leaves, wants, strict=True) if want]
            found = torch.autograd.grad(
                [out for out, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True, materialize_grads=True
            )
        grads = iter(found)
        result = LayerInputs(*(next(grads) if want else None for want in wants))
        if result.neurons is None:
            return result
        full = Generic.of(result.neurons)
        groups = {name: getattr(full, name) for name in needs.neurons}
        return result._replace(neurons=table_gradient(inputs.neurons, groups))
