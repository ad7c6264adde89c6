"""CPU backend: the compiled layer in NumPy/SciPy, event-driven where the layer is quiet.

Modules: :mod:`~snngraph.backends.scipy.plan` (the index structures derived once per model),
:mod:`~snngraph.backends.scipy.forward`, :mod:`~snngraph.backends.scipy.backward` and
:mod:`~snngraph.backends.scipy.arrays` (time chunks, layouts, per-neuron constants); this
module holds :class:`ScipyBackend`, which wires them to :mod:`snngraph.autograd`.

Notation of DESIGN §1–2 and :mod:`snngraph.backends.base`: ``T`` steps, ``B`` batch, ``N``
neurons, ``C`` input channels, ``D`` = ``layer.max_delay``, ``Din`` = ``layer.max_input_delay``;
``s``, ``z``, ``m`` the per-neuron flags ``reset_subtract``, ``reset_zero``, ``spiking``.

Forward.  The membranes are computed neuron-major, ``V`` ``[T, N, B]`` (returned as the
``[T, B, N]`` view ``U``), and ``V`` doubles as the buffer of future input currents:

1. before the time loop, ``V[t] ← (Σ_d X[t − d] W_in,dᵀ)ᵀ`` — per time chunk one product per
   input delay ``d`` (a BLAS product for a dense delay block, a SciPy product otherwise);
2. the spikes of the incoming history ``S[−D … −1]`` are added into the rows they reach;
3. per step: ``V[t] += α V[t−1] (1 − z S[t−1]) − s θ S[t−1]``, ``S[t] = m·H(V[t] − θ)``, and
   ``S[t]`` is sent along its outgoing synapses into ``V[t + d]``.  Only steps that spiked do
   any recurrent work, and a step with few spikes walks the outgoing synapses of its spike events
   (``np.add.at`` over ``events × fan-out``, :data:`EVENT_FRACTION`); a busier step multiplies
   ``S[t]`` by the sparse matrix of all synapses (cost ``nnz × B``), which is cheaper per synapse
   (a torch sparse CSR product, see :func:`torch_product_matrix`), accumulated in place into
   the rows ``V[t + d]``.

Backward (DESIGN §2 with the flags), λU ``[T + D, N, B]`` (batch innermost, ``D`` zero rows at the
end), in chunks of steps backwards in time:

    λS[t] = ∂L/∂S[t] + Σ_{rec k: j→i, d} w_k λU[t+d]_i − (s θ + z α U[t]) λU[t+1]
    λU[t] = ∂L/∂U[t] + α (1 − z S[t]) λU[t+1] + m σ'(U[t] − θ) λS[t]

(the reset term of λS is dropped when ``detach_reset``).  Per step one sparse product (torch
sparse CSR) ``λS_rec[t] = M_b · vec(λU[t+1 … t+D])`` with ``M_b`` of shape ``(N, D·N)``,
``M_b[j, (d−1)·N + i] = w`` for the synapse ``j → i`` of delay ``d`` (the window of ``D`` future
rows is contiguous, so no copy), plus one BLAS product per dense delay block; everything that
does not depend on the recursion is vectorised over the chunk.  Afterwards

    ∂w_k (rec)  = Σ_{t,b} λU[t+d]_post S[t]_pre       gathered per spike event (t, b, pre),
                                                       or sampled products (:data:`SAMPLED_RATE`)
    ∂w_k (in)   = Σ_{t,b} λU[t]_post X[t−d]_pre        gathered per non-zero input
    ∂X[t]_c     = Σ_{in k from c} w_k λU[t+d]_post     one product per input delay
    ∂α = Σ_t λU[t] U[t−1] (1 − z S[t−1]),   ∂θ = −Σ_t m σ'(U[t] − θ) λS[t] − s Σ_t λU[t+1] S[t]
    ∂U[−1] = α (1 − z S[−1]) λU[0],          ∂S[−k] = λS[−k]

(dense delay blocks take their weight gradient from one BLAS product per time chunk).

Dense or sparse.  The synapses of one delay whose bounding box ``post × pre`` is at least
:data:`DENSE_DENSITY` full (and not tiny) form a dense block multiplied with BLAS through torch;
all other synapses share the sparse structures.  Both constants come from timing the products on
the development machine (2-core Xeon, torch 2.13 CPU, SciPy 1.17); see ``docs/cpu_backend.md``.

Memory.  Saved for backward (by :mod:`snngraph.autograd`): the inputs and ``U``.  Backward
workspace: λU ``(T + D)·N·B`` values, about 8 arrays of one time chunk (``T/CHUNKS`` steps, see
:data:`CHUNKS`), ``(2D − 1)·N·B`` for the gradient of the incoming spikes and the queue of spike
events (two int64 per event, at most ``(T + D)·N·B / CHUNKS`` events).
"""

from __future__ import annotations

import torch

from snngraph.backends.base import Layer, LayerInputs
from snngraph.backends.scipy import backward, forward
from snngraph.backends.scipy.backward import SAMPLED_RATE
from snngraph.backends.scipy.forward import EVENT_FRACTION
from snngraph.backends.scipy.plan import DENSE_DENSITY, MIN_DENSE_AREA, LayerPlan, layer_plan

__all__ = ["DENSE_DENSITY", "EVENT_FRACTION", "MIN_DENSE_AREA", "SAMPLED_RATE", "ScipyBackend"]


class ScipyBackend:
    """The CPU backend (see the module docstring); thresholds are instance attributes."""

    name = "scipy"
    traced = False

    def __init__(
        self,
        event_fraction: float = EVENT_FRACTION,
        dense_density: float = DENSE_DENSITY,
        min_dense_area: int = MIN_DENSE_AREA,
        sampled_rate: float = SAMPLED_RATE,
    ) -> None:
        self.event_fraction = event_fraction
        self.sampled_rate = sampled_rate
        self.dense_density = dense_density
        self.min_dense_area = min_dense_area

    def unavailable_reason(self, device: torch.device) -> str | None:
        if device.type == "cpu":
            return None
        return "it runs on CPU tensors only; use backend='triton' or 'reference' for CUDA tensors"

    def _plan(self, layer: Layer, dtype: torch.dtype) -> LayerPlan:
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"the scipy backend runs float32 and float64, got {dtype}; use model.float()")
        return layer_plan(layer, self.dense_density, self.min_dense_area)

    def forward(self, layer: Layer, inputs: LayerInputs) -> torch.Tensor:
        """U ``[T, B, N]``."""
        return forward.forward(layer, inputs, self._plan(layer, inputs.x.dtype), self.event_fraction)

    def backward(
        self,
        layer: Layer,
        inputs: LayerInputs,
        u: torch.Tensor,
        grad_u: torch.Tensor | None,
        grad_s: torch.Tensor | None,
        needs: LayerInputs,
    ) -> LayerInputs:
        """Gradients of ``inputs`` (``None`` where ``needs`` is False)."""
        u = u.to(inputs.w_rec.dtype)  # membranes may have been saved in bfloat16/float16
        plan = self._plan(layer, u.dtype)
        grads = backward.backward(layer, inputs, u, grad_u, grad_s, needs, plan, self.sampled_rate)
        return LayerInputs(*(None if g is None else torch.from_numpy(g) for g in grads))
