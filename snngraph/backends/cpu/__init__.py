"""CPU backend: the compiled layer with torch sparse CSR and BLAS products and NumPy, event-driven
where the layer is quiet.

Modules: :mod:`~snngraph.backends.cpu.plan` (the index structures derived once per model),
:mod:`~snngraph.backends.cpu.memory` (the whole-sequence arrays' blocks, kept between calls),
:mod:`~snngraph.backends.cpu.forward`, :mod:`~snngraph.backends.cpu.backward`,
:mod:`~snngraph.backends.cpu.states` (the generic neuron's algebra) and
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

Generic neurons (``layer.plain`` False: ``K = 1 … 4`` states, docs/design.md "Neurons") take
their own path through the same synaptic machinery; the plain path above is for ``K = 1``,
``e = r = 1``, ``c = g = 0`` only.  Forward: the currents ``I`` ``[T, N, B]`` are built as ``V``
is above (inputs, history, the spikes of each step sent into the future rows), and the states
``V`` ``[T, K, N, B]`` are a separate array, returned as the ``[T, K, B, N]`` view; per step

    v[t] = A v'[t−1] + e I[t] + b·[t ≥ onset] + (c − s θ_eff[t−1] r) S[t−1],
    S[t] = m·[t ≥ onset]·H(v₀[t] − θ_eff[t])

with ``v'[t]`` = ``v[t]`` but ``U (1 − z S[t])``, ``θ_eff = θ + g·v``, each sum over the states
skipping the coefficients that are zero for every neuron.  Backward, in the same time chunks,
with λv ``[K]`` per neuron and ``λI = e·λv`` in the place of λU in everything synaptic (the
per-step adjoint product, the weight and input gradients, ∂S[−k]):

    λS[t] = ∂L/∂S[t] + Σ_{rec k: j→i, d} w_k λI[t+d]_i + (c − z v₀[t] A[:, 0] − s θ_eff[t] r)·λv[t+1]
    λv[t] = ∂L/∂v[t] + Dᵀ Aᵀ λv[t+1] − s S[t] g (r·λv[t+1]) + m σ'(v₀[t] − θ_eff[t]) λS[t] (e₀ − g)

(``D = diag(1 − z S[t], 1, …)``; the reset terms of λS dropped with ``detach_reset``); the
gradient of every group of the table is summed per chunk (:mod:`~snngraph.backends.cpu.states`),
``∂e`` from the currents recomputed from the saved states' spikes with the forward machinery.

Dense or sparse.  The synapses of one delay whose bounding box ``post × pre`` is at least
``CpuOptions.dense_density`` full (and not tiny) form a dense block multiplied with BLAS through
torch; all other synapses share the sparse structures.

Memory.  Saved for backward (by :mod:`snngraph.autograd`): the inputs and ``U``.  ``V``, the
spikes and λU (the currents and λI of generic neurons) are blocks of the plan's array cache
(:mod:`~snngraph.backends.cpu.memory`), kept between calls.  Backward
workspace: λU ``(T + D)·N·B`` values, about 8 arrays of one time chunk (``T/chunks`` steps,
``CpuOptions.chunks``), ``(2D − 1)·N·B`` for the gradient of the incoming spikes and the queue of spike
events (two int64 per event, at most ``(T + D)·N·B / chunks`` events).  Generic neurons: saved
``V`` ``K·T·B·N``; forward ``I`` ``T·B·N`` besides ``V``; backward λI ``(T + D)·N·B`` (as λU),
λv of one chunk ``K·(T/chunks + 1)·N·B``, the chunk's states, spikes and coefficients, and
``T·B·N`` for the recomputed currents when ``∂e`` is wanted.
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

    def prepare(self, layer: LayerSpec, dtype: torch.dtype, previous: Plan | None = None) -> Plan:
        """The dense blocks and sparse structures of ``layer`` (:func:`~snngraph.backends.cpu.plan.layer_plan`),
        those of a synapse population whose indices ``previous`` shares taken from it."""
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"the cpu backend runs float32 and float64, got {dtype}; use model.float()")
        reusable = previous is not None and previous.backend == self
        return Plan(self, layer, dtype, layer_plan(layer, self.options, previous if reusable else None))

    def forward(self, plan: Plan, inputs: LayerInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """V ``[T, K, B, N]`` and S ``[T, B, N]``."""
        run = forward.forward if plan.layer.plain else forward.forward_states
        return run(plan.layer, inputs, plan.structures, self.options)

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
        if not plan.layer.plain:
            return backward.backward_states(plan.layer, inputs, v, grad_v, grad_s, needs, plan.structures, self.options)
        u = v[:, 0].to(inputs.w_rec.dtype)  # states may have been saved in bfloat16/float16
        grad_u = None if grad_v is None else grad_v[:, 0]
        grads = backward.backward(plan.layer, inputs, u, grad_u, grad_s, needs, plan.structures, self.options)
        x, w_in, w_rec, alpha, theta, bias, u0, s_hist = (None if g is None else torch.from_numpy(g) for g in grads)
        table = None
        if needs.neurons:
            table = table_gradient(inputs.neurons, {"A": alpha, "theta": theta, "b": bias})
        return LayerInputs(x, w_in, w_rec, table, None if u0 is None else u0[None], s_hist)
