"""CPU backend: the compiled layer with torch sparse CSR and BLAS products and NumPy, event-driven
where the layer is quiet.

Modules: :mod:`~snngraph.backends.cpu.plan` (the index structures derived once per model),
:mod:`~snngraph.backends.cpu.forward`, :mod:`~snngraph.backends.cpu.backward` and
:mod:`~snngraph.backends.cpu.arrays` (time chunks, layouts, per-neuron constants); this
module holds :class:`CpuBackend`; :mod:`~snngraph.backends.cpu.options` holds the measured
thresholds that choose between its paths (:class:`CpuOptions`).

Notation of docs/design.md ("The model", "BPTT") and :mod:`snngraph.backends.base`: ``T`` steps, ``B`` batch, ``N``
neurons, ``C`` input channels, ``D`` = ``layer.max_delay``, ``Din`` = ``layer.max_input_delay``;
``s``, ``z``, ``m`` the flag rows of the neuron table (:mod:`snngraph.neurons`): subtract, zero, spiking.

Forward.  The membranes are computed neuron-major, ``V`` ``[T, N, B]`` (returned as the
``[T, B, N]`` view ``U``), and ``V`` doubles as the buffer of future input currents:

1. before the time loop, ``V[t] ← (Σ_d X[t − d] W_in,dᵀ)ᵀ`` — per time chunk one product per
   input delay ``d`` (a BLAS product for a dense delay block, a SciPy product otherwise);
2. the spikes of the incoming history ``S[−D … −1]`` are added into the rows they reach;
3. per step: ``V[t] += α V[t−1] (1 − z S[t−1]) − s θ S[t−1]``, ``S[t] = m·H(V[t] − θ)``, and
   ``S[t]`` is sent along its outgoing synapses into ``V[t + d]``.  Only steps that spiked do
   any recurrent work, and a step with few spikes walks the outgoing synapses of its spike events
   (``np.add.at`` over ``events × fan-out``, ``CpuOptions.event_fraction``); a busier step multiplies
   ``S[t]`` by the sparse matrix of all synapses (cost ``nnz × B``), which is cheaper per synapse
   (a torch sparse CSR product, see :func:`torch_product_matrix`), accumulated in place into
   the rows ``V[t + d]``.

Backward (docs/design.md, "BPTT", with the flags), λU ``[T + D, N, B]`` (batch innermost, ``D`` zero rows at the
end), in chunks of steps backwards in time:

    λS[t] = ∂L/∂S[t] + Σ_{rec k: j→i, d} w_k λU[t+d]_i − (s θ + z α U[t]) λU[t+1]
    λU[t] = ∂L/∂U[t] + α (1 − z S[t]) λU[t+1] + m σ'(U[t] − θ) λS[t]

(the reset term of λS is dropped when ``detach_reset``).  Per step one sparse product (torch
sparse CSR) ``λS_rec[t] = M_b · vec(λU[t+1 … t+D])`` with ``M_b`` of shape ``(N, D·N)``,
``M_b[j, (d−1)·N + i] = w`` for the synapse ``j → i`` of delay ``d`` (the window of ``D`` future
rows is contiguous, so no copy), plus one BLAS product per dense delay block; everything that
does not depend on the recursion is vectorised over the chunk.  Afterwards

    ∂w_k (rec)  = Σ_{t,b} λU[t+d]_post S[t]_pre       gathered per spike event (t, b, pre),
                                                       or sampled products (``sampled_rate``)
    ∂w_k (in)   = Σ_{t,b} λU[t]_post X[t−d]_pre        gathered per non-zero input
    ∂X[t]_c     = Σ_{in k from c} w_k λU[t+d]_post     one product per input delay
    ∂α = Σ_t λU[t] U[t−1] (1 − z S[t−1]),   ∂θ = −Σ_t m σ'(U[t] − θ) λS[t] − s Σ_t λU[t+1] S[t]
    ∂U[−1] = α (1 − z S[−1]) λU[0],          ∂S[−k] = λS[−k]

(dense delay blocks take their weight gradient from one BLAS product per time chunk).

Dense or sparse.  The synapses of one delay whose bounding box ``post × pre`` is at least
``CpuOptions.dense_density`` full (and not tiny) form a dense block multiplied with BLAS through
torch; all other synapses share the sparse structures.

Memory.  Saved for backward (by :mod:`snngraph.autograd`): the inputs and ``U``.  Backward
workspace: λU ``(T + D)·N·B`` values, about 8 arrays of one time chunk (``T/chunks`` steps,
``CpuOptions.chunks``), ``(2D − 1)·N·B`` for the gradient of the incoming spikes and the queue of spike
events (two int64 per event, at most ``(T + D)·N·B / chunks`` events).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from snngraph.backends.base import LayerInputs, LayerSpec, Needs, Plan
from snngraph.backends.cpu import backward, forward
from snngraph.backends.cpu.options import CpuOptions
from snngraph.backends.cpu.plan import layer_plan
from snngraph.neurons import table_gradient

__all__ = ["CpuBackend", "CpuOptions"]


@dataclass(frozen=True)
class CpuBackend:
    """The CPU backend (see the module docstring), configured by :class:`CpuOptions`."""

    options: CpuOptions = field(default_factory=CpuOptions)
    name: ClassVar[str] = "cpu"

    def unavailable_reason(self, device: torch.device) -> str | None:
        if device.type == "cpu":
            return None
        return "it runs on CPU tensors only; use backend='triton' or 'reference' for CUDA tensors"

    def prepare(self, layer: LayerSpec, dtype: torch.dtype) -> Plan:
        """The dense blocks and sparse structures of ``layer`` (:func:`~snngraph.backends.cpu.plan.layer_plan`)."""
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"the cpu backend runs float32 and float64, got {dtype}; use model.float()")
        return Plan(self, layer, dtype, layer_plan(layer, self.options))

    def forward(self, plan: Plan, inputs: LayerInputs) -> torch.Tensor:
        """V ``[T, K, B, N]``."""
        if not plan.layer.plain:
            raise NotImplementedError("the cpu backend runs plain LIF/LI layers (K = 1) only so far")
        return forward.forward(plan.layer, inputs, plan.structures, self.options)

    def backward(
        self,
        plan: Plan,
        inputs: LayerInputs,
        v: torch.Tensor,
        grad_v: torch.Tensor | None,
        grad_s: torch.Tensor | None,
        needs: Needs,
    ) -> LayerInputs:
        """Gradients of ``inputs`` (``None`` where ``needs`` says no)."""
        u = v[:, 0].to(inputs.w_rec.dtype)  # states may have been saved in bfloat16/float16
        grad_u = None if grad_v is None else grad_v[:, 0]
        grads = backward.backward(plan.layer, inputs, u, grad_u, grad_s, needs, plan.structures, self.options)
        x, w_in, w_rec, alpha, theta, bias, u0, s_hist = (None if g is None else torch.from_numpy(g) for g in grads)
        table = None
        if needs.neurons:
            table = table_gradient(inputs.neurons, {"A": alpha, "theta": theta, "b": bias})
        return LayerInputs(x, w_in, w_rec, table, None if u0 is None else u0[None], s_hist)
