"""The reference backend: the compiled layer in plain, dense PyTorch autograd.

Slow (dense ``[D, N, N]`` weights, one Python step per timestep) and clear: it is the oracle
the fused backends are tested against.  Autograd differentiates it, with the surrogate
derivative in :class:`HeavisideSurrogate`.
"""

from __future__ import annotations

import torch

from snngraph.backends.base import Layer, LayerInputs
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


class ReferenceBackend:
    name = "reference"
    traced = True

    def unavailable_reason(self, device: torch.device) -> None:
        return None

    def run(self, layer: Layer, inputs: LayerInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """U and S ``[T, B, N]`` by the recursion of DESIGN §1, step by step."""
        x, w_in, w_rec, alpha, theta, u0, s_hist = inputs
        n, d_in, d_rec = layer.n_neurons, layer.max_input_delay, layer.max_delay
        steps = x.shape[0] - d_in
        w_in_d = dense_weights(w_in, layer.in_post, layer.in_pre, layer.in_delay, (d_in + 1, n, layer.n_inputs))
        w_rec_d = dense_weights(w_rec, layer.rec_post, layer.rec_pre, layer.rec_delay, (d_rec + 1, n, n))
        # I_in[t] = Σ_d W_in[d] X[t − d], with X[t − d] = x[Din + t − d]
        current_in = sum(
            torch.einsum("tbc,nc->tbn", x[d_in - d : d_in - d + steps], w_in_d[d]) for d in range(d_in + 1)
        )
        history = list(s_hist.unbind(0))  # S[t − D], …, S[t − 1]
        u_prev, us, ss = u0, [], []
        for t in range(steps):
            current = current_in[t] + sum(history[-d] @ w_rec_d[d].T for d in range(1, d_rec + 1))
            s_prev = history[-1].detach() if layer.detach_reset else history[-1]
            u = alpha * u_prev * (1 - layer.reset_zero * s_prev) + current - layer.reset_subtract * theta * s_prev
            s = HeavisideSurrogate.apply(u - theta, layer.surrogate) * layer.spiking
            history = [*history[1:], s]
            u_prev = u
            us.append(u)
            ss.append(s)
        return torch.stack(us), torch.stack(ss)
