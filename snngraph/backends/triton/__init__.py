"""GPU backend: the compiled layer as Triton kernels (``snngraph.kernels``), launched from here.

Forward (docs/design.md, "The model" and "Runtime"):

1. the input current of every step at once, ``I_in[t] = Σ_d W_in[d] X[t − d]``: a dense matrix
   product (cuBLAS) for each input delay whose synapses fill at least ``dense_input`` of the
   ``N × C`` matrix, a gather kernel over the rest;
2. the time loop (:mod:`snngraph.kernels.lif_forward`): per step, gather the recurrent input
   from the spike history (CSR over postsynaptic neurons, grouped by delay), add ``I_in``,
   update U with the reset, threshold, write U and the spikes (uint8).

Backward (docs/design.md, "BPTT"): the reverse time loop (:mod:`snngraph.kernels.lif_backward`) writes λU
and the ∂α, ∂θ, ∂u0 terms, reading ``Wᵀ λU`` through the CSC view over presynaptic neurons;
then, with λU known at every step, one gather over the history steps gives ∂s_hist, the input
delays give ∂x and ∂w_in (matrix products or gather kernels), and
:mod:`snngraph.kernels.synapse_grad` accumulates ∂w on the stored synapses only, where the
presynaptic neuron spiked.

Generic neurons (``layer.plain`` false, K = 1 … 4 states; docs/design.md, "Neurons"): the same
kernels specialised by ``GENERIC``/``N_STATES`` read the whole table and keep the K states
(forward) or λv (backward) as register tiles (:mod:`snngraph.kernels.states`); the synapses see
λI = e·λv where a plain layer has λU, so every synaptic gradient runs unchanged; the table's
gradient is summed on the host from the λv[t] and λq[t] that the reverse loop writes, ∂e from
I[t] recomputed from the input and the spike history.

The time loop runs either *persistent* — one launch that loops over time inside the kernel,
every program owning all neurons of one batch row and gathering the recurrent term itself
(safe without a grid barrier: only the program's own threads exchange spikes) — or *per step*:
for each step, :func:`~snngraph.kernels.gather.gather_chunks_kernel` sums the recurrent term in
equal chunks of synapses (atomic adds, so long rows such as a readout's do not hold a step
back), then the step kernel updates every neuron; on CUDA these launches are recorded once as
a CUDA graph and replayed.  ``time_loop="auto"`` picks persistent when there are no recurrent
synapses (neurons are then independent and any grid works) or at most
``TritonOptions.persistent_max_neurons`` neurons.

Determinism.  The per-step chunked gather and the weight gradient's blocks of time steps add
atomically, in the order they land, so float results may differ in the last bits from run to
run; ``TritonOptions(deterministic=True)`` sums both in a fixed order (whole rows per program,
one block of all steps per chunk of synapses).  Everything else (the persistent loop, the
row gathers, the matrix products) sums in a fixed order either way.

Modules: :mod:`~snngraph.backends.triton.options` (:class:`TritonOptions`),
:mod:`~snngraph.backends.triton.plan` (the row views and dense-input buckets, built once per
plan: each call only gathers the current weight values), :mod:`~snngraph.backends.triton.geometry`
(block sizes, grids, the time loop), :mod:`~snngraph.backends.triton.graphs` (CUDA-graph buffers),
:mod:`~snngraph.backends.triton.launch` (the shared host launchers),
:mod:`~snngraph.backends.triton.forward` and :mod:`~snngraph.backends.triton.backward`.  Triton is
imported only when a kernel runs, so that ``import snngraph`` works without it.

Internal tensors are batch-minor (``[time, N, B]``), so that a synapse gathers ``B`` contiguous
values: the spike history ``hist`` ``[D + T, N, B]`` (uint8, S[t] at row ``D + t``) and the
adjoint ``λU`` (λI) ``[P + T + P, N, B]`` with zero pads of ``P = max(D, Din)`` rows on both
ends.  The states keep the interface's ``[T, K, B, N]``.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from snngraph.backends.base import LayerInputs, LayerSpec, Needs, Plan
from snngraph.backends.triton import backward, forward
from snngraph.backends.triton.geometry import is_persistent
from snngraph.backends.triton.options import TritonOptions
from snngraph.backends.triton.plan import IndexViews
from snngraph.neurons import spikes

__all__ = ["TritonBackend", "TritonOptions"]


@dataclass(frozen=True)
class TritonBackend:
    """The layer on Triton kernels (see the module docstring), configured by :class:`TritonOptions`."""

    options: TritonOptions = field(default_factory=TritonOptions)
    name: ClassVar[str] = "triton"

    def unavailable_reason(self, device: torch.device) -> str | None:
        if importlib.util.find_spec("triton") is None:
            return "Triton is not installed: pip install triton"
        if device.type == "cuda":
            return None
        if device.type == "cpu":
            if os.environ.get("TRITON_INTERPRET") == "1":
                return None
            return "Triton runs on CUDA tensors (on CPU tensors only under its interpreter: TRITON_INTERPRET=1)"
        return f"Triton runs on CUDA tensors, not on {device.type}"

    def prepare(self, layer: LayerSpec, dtype: torch.dtype, previous: Plan | None = None) -> Plan:
        """The row views and dense-input buckets of ``layer`` (:class:`IndexViews`), built anew
        (``previous`` is not read)."""
        return Plan(self, layer, dtype, IndexViews.build(layer, self.options.dense_input))

    def time_loop_of(self, plan: Plan) -> str:
        """``"persistent"`` or ``"per_step"``: how the time loop of ``plan`` runs."""
        return "persistent" if is_persistent(plan.structures, self.options) else "per_step"

    def forward(self, plan: Plan, inputs: LayerInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """V ``[T, K, B, N]`` and S ``[T, B, N]`` (from V, :func:`~snngraph.neurons.spikes`)."""
        v = forward.forward(plan.structures, plan.layer, self.options, inputs)
        return v, spikes(v, inputs.neurons)

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
        return backward.backward(plan.structures, plan.layer, self.options, inputs, v, grad_v, grad_s, needs)
