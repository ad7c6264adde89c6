"""What every backend receives and returns: the layer's structure, its plan and its tensors.

Notation of docs/design.md ("The model", "BPTT").  ``N`` neurons, ``C`` input channels, ``B``
batch, ``T`` layer steps, ``D = layer.max_delay`` steps of spike history,
``Din = layer.max_input_delay``.

Inputs (:class:`LayerInputs`):

* ``x``       ``[Din + T, B, C]`` — the input, with ``Din`` steps of history in front, so that
  ``X[t] = x[Din + t]`` and ``X[t − d]`` is defined for every input delay ``d``;
* ``w_in``    ``[n_in]``, ``w_rec`` ``[n_rec]`` — synaptic weights in the compiled edge order;
* ``neurons`` ``[P, N]`` — the neuron table (:mod:`snngraph.neurons`: θ, s, z, spiking and
  the generic blocks A, e, b, c, r, g of ``K = layer.n_states`` state variables);
* ``v0``      ``[K, B, N]`` — v[−1];  ``s_hist`` ``[D, B, N]`` — S[−D], …, S[−1].

Every backend has the same interface (:class:`Backend`): ``prepare`` derives, once per network,
device, dtype and options, what it needs from the synapse indices (an immutable :class:`Plan`);
``forward`` returns the states ``V`` ``[T, K, B, N]`` (``V[:, 0]`` = U) and the spikes
``S = spiking·H(U − θ_eff)`` ``[T, B, N]`` as 0/1 values of ``V``'s dtype (a backend that steps
through time writes them as it goes); ``backward`` returns the gradient of every input, and
recomputes the spikes from the saved ``V`` wherever it needs them.
:mod:`snngraph.autograd` wraps the pair in the one ``torch.autograd.Function``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch

from snngraph.convolution import ConvSpec
from snngraph.neurons import spikes
from snngraph.surrogates import Surrogate


@dataclass(frozen=True)
class ConvSynapses:
    """The synapses ``start:stop`` of the ``"input"`` or ``"recurrent"`` arrays that one
    convolution or pooling edge compiled, in the order of ``spec.synapses()``, from the neurons
    (or input channels) ``pre_start …`` onto the neurons ``post_start …``.  Backends may run them
    as convolutions instead of as synapses (all synapses of a kernel tap then share a weight)."""

    target: str
    start: int
    stop: int
    post_start: int
    pre_start: int
    spec: ConvSpec


@dataclass(frozen=True)
class SynapseRange:
    """The synapses ``start:stop`` of the ``"input"`` or ``"recurrent"`` arrays."""

    target: str
    start: int
    stop: int


@dataclass(frozen=True, eq=False)
class LayerSpec:
    """The compiled layer on one device: sizes, synapse indices and the options of the op.

    Synapse indices are int64 tensors on the device (``in_*`` from inputs, ``rec_*`` between
    neurons).  ``n_states`` is ``K``; ``plain`` says that every neuron is the plain LIF/LI
    neuron with a bias (``K = 1``, ``e = r = 1``, ``c = g = 0``): backends may then read only
    the rows θ, s, z, spiking, ``A`` and ``b`` of the table.  ``saved_membranes``
    (bfloat16/float16, or None for the compute dtype) is the storage of the states saved for
    backward (:func:`round_states`).  ``convolutions`` lists the synapse ranges that came from
    convolution and pooling edges (:class:`ConvSynapses`).  ``tied_convolutions`` says that the
    caller reads the weight gradient of those ranges only as sums over each kernel tap's
    synapses (the module gathers them from one kernel): a backend may then return each tap's
    sum on one of its synapses and zero on the others.  ``fixed`` lists synapse ranges whose
    weight gradient the caller does not read (the module's fixed edges): a backend may return
    zero there without computing it.  ``edges`` lists the synapse range of every edge of the
    graph (a backend may, for one, look for dense blocks edge by edge).
    """

    n_states: int
    plain: bool
    n_neurons: int
    n_inputs: int
    max_delay: int
    max_input_delay: int
    in_post: torch.Tensor
    in_pre: torch.Tensor
    in_delay: torch.Tensor
    rec_post: torch.Tensor
    rec_pre: torch.Tensor
    rec_delay: torch.Tensor
    surrogate: Surrogate
    detach_reset: bool
    saved_membranes: torch.dtype | None = None
    convolutions: tuple[ConvSynapses, ...] = ()
    tied_convolutions: bool = False
    fixed: tuple[SynapseRange, ...] = ()
    edges: tuple[SynapseRange, ...] = ()

    @property
    def device(self) -> torch.device:
        return self.rec_post.device


class LayerInputs(NamedTuple):
    """The tensors of one call (or, returned by ``backward``, their gradients, ``None`` where not needed)."""

    x: torch.Tensor
    w_in: torch.Tensor
    w_rec: torch.Tensor
    neurons: torch.Tensor
    v0: torch.Tensor
    s_hist: torch.Tensor


class Needs(NamedTuple):
    """Which gradients ``backward`` computes; ``neurons``: the wanted groups of the table
    (:data:`snngraph.neurons.GROUPS`)."""

    x: bool
    w_in: bool
    w_rec: bool
    neurons: frozenset[str]
    v0: bool
    s_hist: bool


@dataclass(frozen=True, eq=False)
class Plan:
    """Everything a call needs besides its tensors, built once per network, device, dtype and options.

    ``structures`` is what ``backend.prepare`` derived from the indices (CSR/CSC views, dense
    blocks, launch geometry).  A plan is immutable; the Triton backend's CUDA-graph buffers,
    which replay recorded launches, live in its structures' explicit launch cache.
    """

    backend: Backend
    layer: LayerSpec
    dtype: torch.dtype
    structures: Any


def round_states(v: torch.Tensor, table: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The states ``v`` ``[T, K, B, N]`` rounded to ``dtype`` (bfloat16, float16) for saving, with
    every spike kept.

    Round to nearest; then, where the rounded states would spike differently, move U one step
    of ``dtype`` at a time back across the threshold θ_eff of the rounded states (θ_eff does not
    depend on U when ``g₀ = 0``, as for every named kind): the backward pass recomputes the
    forward spikes exactly from the saved states, and the surrogate and the other terms see
    them to within a unit or two of ``dtype``.  (float16 overflows to ±inf above 65504.)
    """
    want = spikes(v, table) > 0
    low = v.to(dtype)
    towards = torch.where(want, math.inf, -math.inf).to(dtype)
    for _ in range(8):
        crossed = (spikes(low.to(v.dtype), table) > 0) != want
        if not crossed.any():
            return low
        low[:, 0] = torch.where(crossed, torch.nextafter(low[:, 0], towards), low[:, 0])
    raise ArithmeticError(f"the states cannot be stored in {dtype} with their spikes kept; use saved_membranes=None")


class Backend(Protocol):
    """A way to run the layer (see the module docstring)."""

    name: str

    def unavailable_reason(self, device: torch.device) -> str | None:
        """``None`` when the backend runs on ``device``, else a message saying what to do."""

    def prepare(self, layer: LayerSpec, dtype: torch.dtype, previous: Plan | None = None) -> Plan:
        """The plan of ``layer`` for calls in ``dtype``.  ``previous``, a plan of this backend for
        a layer of the same sizes (one whose delays moved), may lend the structures of index
        tensors that ``layer`` shares with it (the same tensor objects)."""

    def forward(self, plan: Plan, inputs: LayerInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """V ``[T, K, B, N]`` and S ``[T, B, N]``."""

    def backward(
        self,
        plan: Plan,
        inputs: LayerInputs,
        v: torch.Tensor,
        grad_v: torch.Tensor | None,
        grad_s: torch.Tensor | None,
        needs: Needs,
    ) -> LayerInputs:
        """Gradients of ``inputs`` (``None`` where ``needs`` says no); ``grad_v`` ``[T, K, B, N]``
        or ``grad_s`` ``[T, B, N]`` is ``None`` when no loss reaches that output (never both);
        ``v`` may be saved in 16 bits."""
