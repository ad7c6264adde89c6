"""What every backend receives and returns: the compiled layer on a device and its tensors.

Notation of DESIGN §1–2.  ``N`` neurons, ``C`` input channels, ``B`` batch, ``T`` layer steps,
``D = layer.max_delay`` steps of spike history, ``Din = layer.max_input_delay``.

Inputs (:class:`LayerInputs`):

* ``x``      ``[Din + T, B, C]`` — the input, with ``Din`` steps of history in front, so that
  ``X[t] = x[Din + t]`` and ``X[t − d]`` is defined for every input delay ``d``;
* ``w_in``   ``[n_in]``, ``w_rec`` ``[n_rec]`` — synaptic weights in the compiled edge order;
* ``alpha``, ``theta`` ``[N]``;
* ``u0``     ``[B, N]`` — U[−1];  ``s_hist`` ``[D, B, N]`` — S[−D], …, S[−1].

A backend returns the membranes ``U`` ``[T, B, N]``; spikes are ``S = H(U − θ)·m`` (``m`` = 0 for
readouts), recomputed wherever needed, never stored separately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import torch

from snngraph.surrogates import Surrogate


@dataclass(frozen=True, eq=False)
class Layer:
    """The compiled layer on one device: synapse indices, per-neuron reset flags, options.

    ``reset_subtract`` (``s``), ``reset_zero`` (``z``) and ``spiking`` (``m``) are 0/1 float
    tensors ``[N]`` so that one update covers every reset:
    ``U[t] = α U[t−1] (1 − z S[t−1]) + I[t] − s θ S[t−1]``.
    ``saved_membranes`` (bfloat16/float16, or None for the layer's dtype) is the storage of the
    membranes saved for backward (:func:`round_membranes`).
    ``cache`` holds what a backend derives from the indices once (CSR views, plans).
    """

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
    reset_subtract: torch.Tensor
    reset_zero: torch.Tensor
    spiking: torch.Tensor
    surrogate: Surrogate
    detach_reset: bool
    saved_membranes: torch.dtype | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    def spikes(self, u: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """S = H(U − θ)·m, as a 0/1 tensor of ``u``'s dtype (one comparison with θ, ∞ where m = 0)."""
        threshold = torch.where(self.spiking > 0, theta, math.inf)
        return (u > threshold).to(u.dtype)


def round_membranes(u: torch.Tensor, theta: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """U rounded to ``dtype`` (bfloat16, float16) for saving, with every spike kept.

    Round to nearest, then move the values that crossed the threshold one step of ``dtype``
    back across it: ``(result.to(u.dtype) > θ) == (u > θ)`` everywhere, so the backward pass
    recomputes the forward spikes exactly; the surrogate, the zero-reset term and ∂α see U to
    within one unit of ``dtype``.  (float16 overflows to ±inf above 65504.)
    """
    low = u.to(dtype)
    spike = u > theta
    crossed = (low.to(u.dtype) > theta) != spike
    towards = torch.where(spike, math.inf, -math.inf).to(dtype)
    return torch.where(crossed, torch.nextafter(low, towards), low)


class LayerInputs(NamedTuple):
    x: torch.Tensor
    w_in: torch.Tensor
    w_rec: torch.Tensor
    alpha: torch.Tensor
    theta: torch.Tensor
    u0: torch.Tensor
    s_hist: torch.Tensor


class Backend(Protocol):
    """A way to run the layer.

    ``traced = True``: :meth:`run` is plain differentiable torch and autograd traces it (the
    reference).  ``traced = False``: the backend provides ``forward(layer, inputs) -> U`` and
    ``backward(layer, inputs, u, grad_u, grad_s) -> LayerInputs`` of gradients (``None`` where
    not needed), wrapped by :class:`snngraph.autograd.LayerFunction`; ``grad_u`` or ``grad_s``
    is ``None`` when no loss reaches that output (never both).
    """

    name: str
    traced: bool

    def unavailable_reason(self, device: torch.device) -> str | None:
        """``None`` when the backend runs on ``device``, else a message saying what to do."""
