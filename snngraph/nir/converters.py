"""One converter per NIR node type, from the node's parameters to what snngraph makes of it.

A neuron node (``LIF``, ``LI``, ``IF``, ``I``, ``Threshold``, ``CubaLIF``, ``CubaLI``) and an
``Input`` become a :class:`Population`; a stateless node (``Linear``, ``Affine``, ``Scale``, ``Delay``,
``Flatten``, ``Identity``) becomes a :class:`Synapse`, a map of the :class:`Signal` that flows
through it.  :data:`CONVERTERS` maps the NIR type name to its converter; :data:`UNSUPPORTED`
names the NIR types snngraph cannot express, and why.  The maps from NIR's parameters to α, θ
and κ are those of :mod:`snngraph.nir.discretisation`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from snngraph.nir.discretisation import Discretisation
from snngraph.nir.signals import Signal


@dataclass(frozen=True, eq=False)
class Population:
    """A NIR node that becomes a snngraph population of ``kind`` ``"input"``, ``"lif"`` or ``"li"``.

    ``gain`` (κ per neuron, ``κ_mem·κ_syn`` with a synaptic current) multiplies every current
    into it, weights and ``Affine`` biases alike; ``v_leak`` is snngraph's (the same number as
    NIR's); ``alpha_syn`` (β) is set for ``CubaLIF``/``CubaLI``.  ``theta`` and ``reset`` matter
    for ``"lif"`` only.
    """

    kind: str
    alpha: np.ndarray
    theta: np.ndarray
    reset: str
    gain: np.ndarray
    v_leak: np.ndarray
    alpha_syn: np.ndarray | None = None

    @property
    def size(self) -> int:
        return self.alpha.size

    @classmethod
    def stateless(cls, kind: str, theta: np.ndarray) -> Population:
        """α = 0, κ = 1, no reset and no leak: ``U[t] = I[t]`` (plus the bias it receives)."""
        n = theta.size
        return cls(kind, np.zeros(n), theta, "none", np.ones(n), np.zeros(n))


@dataclass(frozen=True)
class Synapse:
    """A stateless NIR node: ``in_size`` values in (None: any), ``apply`` maps the summed input."""

    in_size: int | None
    apply: Callable[[Signal], Signal]


Converter = Callable[[str, Any, Discretisation], Population | Synapse]


def _array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _require_finite(name: str, what: str, values: np.ndarray) -> None:
    if not np.all(np.isfinite(values)):
        raise ValueError(f"node {name!r}: {what} contains NaN or inf")


def _vectors(name: str, node: Any, *fields: str) -> list[np.ndarray]:
    """The named parameters of a NIR node as float64 vectors of one common length."""
    arrays = [_array(getattr(node, f)) for f in fields]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        found = ", ".join(f"{f}{a.shape}" for f, a in zip(fields, arrays, strict=True))
        raise ValueError(f"node {name!r}: parameters must share one shape, got {found}")
    if arrays[0].ndim > 1:
        raise ValueError(
            f"node {name!r}: parameters have shape {arrays[0].shape}; snngraph populations are "
            "vectors, so give the node one value per neuron (a 1-D shape)"
        )
    for f, a in zip(fields, arrays, strict=True):
        _require_finite(name, f, a)
    return [a.reshape(-1) for a in arrays]


def _require_zero_reset(name: str, v_reset: np.ndarray) -> None:
    if np.any(v_reset != 0):
        raise ValueError(
            f"node {name!r}: v_reset = {v_reset} is not supported (snngraph resets to 0: reset='zero'); set it to 0"
        )


def _leaky(name: str, disc: Discretisation, tau: np.ndarray, r: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """α and κ = R·(κ/R) of a membrane with time constant ``tau`` (NIR's parameter ``what``)."""
    alpha = disc.alpha(name, tau, what)
    return alpha, r * disc.leaky_scale(tau, alpha)


def _synaptic(
    name: str, node: Any, disc: Discretisation, *fields: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """α, β, the gain ``κ_mem·κ_syn``, v_leak and the node's other ``fields`` of a CubaLIF/CubaLI."""
    tau_mem, tau_syn, r, w_in, v_leak, *rest = _vectors(
        name, node, "tau_mem", "tau_syn", "r", "w_in", "v_leak", *fields
    )
    alpha, kappa_mem = _leaky(name, disc, tau_mem, r, "tau_mem")
    beta = disc.alpha(name, tau_syn, "tau_syn")
    return alpha, beta, kappa_mem * w_in * disc.synaptic_scale(tau_syn, beta), v_leak, rest


def _import_input(name: str, node: Any, disc: Discretisation) -> Population:
    shape = node.input_type.get("input") if isinstance(node.input_type, dict) else None
    if shape is None:
        raise ValueError(f"input {name!r} has no shape; give nir.Input an input_type")
    return Population.stateless("input", np.ones(int(np.prod(np.asarray(shape, dtype=np.int64)))))


def _import_lif(name: str, node: Any, disc: Discretisation) -> Population:
    tau, r, v_leak, theta, v_reset = _vectors(name, node, "tau", "r", "v_leak", "v_threshold", "v_reset")
    _require_zero_reset(name, v_reset)
    alpha, gain = _leaky(name, disc, tau, r, "tau")
    return Population("lif", alpha, theta, "zero", gain, v_leak)


def _import_li(name: str, node: Any, disc: Discretisation) -> Population:
    tau, r, v_leak = _vectors(name, node, "tau", "r", "v_leak")
    alpha, gain = _leaky(name, disc, tau, r, "tau")
    return Population("li", alpha, np.ones(tau.size), "none", gain, v_leak)


def _import_cuba_lif(name: str, node: Any, disc: Discretisation) -> Population:
    """A lif with ``alpha_syn = β``: ``J[t] = β·J[t−1] + κ·I[t]``, ``U[t] = α·U[t−1] + (1 − α)·v_leak + J[t]``."""
    alpha, beta, gain, v_leak, (theta, v_reset) = _synaptic(name, node, disc, "v_threshold", "v_reset")
    _require_zero_reset(name, v_reset)
    return Population("lif", alpha, theta, "zero", gain, v_leak, beta)


def _import_cuba_li(name: str, node: Any, disc: Discretisation) -> Population:
    alpha, beta, gain, v_leak, _ = _synaptic(name, node, disc)
    return Population("li", alpha, np.ones(alpha.size), "none", gain, v_leak, beta)


def _import_if(name: str, node: Any, disc: Discretisation) -> Population:
    r, theta, v_reset = _vectors(name, node, "r", "v_threshold", "v_reset")
    _require_zero_reset(name, v_reset)
    n = r.size
    return Population("lif", np.ones(n), theta, "zero", r * disc.integrator_scale(n), np.zeros(n))


def _import_i(name: str, node: Any, disc: Discretisation) -> Population:
    (r,) = _vectors(name, node, "r")
    n = r.size
    return Population("li", np.ones(n), np.ones(n), "none", r * disc.integrator_scale(n), np.zeros(n))


def _import_threshold(name: str, node: Any, disc: Discretisation) -> Population:
    """``z = H(x − θ)``: a lif with α = 0 and no reset, U[t] = I[t]."""
    (theta,) = _vectors(name, node, "threshold")
    return Population.stateless("lif", theta)


def _matrix(name: str, node: Any) -> np.ndarray:
    weight = _array(node.weight)
    if weight.ndim != 2:
        raise ValueError(f"node {name!r}: weight must be a 2-D (out, in) matrix, got shape {weight.shape}")
    _require_finite(name, "weight", weight)
    return weight


def _import_linear(name: str, node: Any, disc: Discretisation) -> Synapse:
    weight = _matrix(name, node)
    return Synapse(weight.shape[1], lambda s: s.rows(lambda m: weight @ m, weight.shape[0]))


def _import_affine(name: str, node: Any, disc: Discretisation) -> Synapse:
    weight = _matrix(name, node)
    bias = _array(node.bias)
    if bias.reshape(-1).shape != (weight.shape[0],):
        raise ValueError(
            f"node {name!r}: bias must hold {weight.shape[0]} values (one per output), got shape {bias.shape}"
        )
    _require_finite(name, "bias", bias)
    linear = _import_linear(name, node, disc)
    return Synapse(linear.in_size, lambda s: linear.apply(s).with_bias(name, bias.reshape(-1), s.carrier()))


def _elementwise(name: str, values: np.ndarray, what: str) -> int | None:
    """The input size an elementwise parameter fixes: its length, or None for a scalar."""
    if values.ndim > 1:
        raise ValueError(f"node {name!r}: {what} must be a scalar or a vector, got shape {values.shape}")
    _require_finite(name, what, values)
    return values.size if values.ndim == 1 else None


def _import_scale(name: str, node: Any, disc: Discretisation) -> Synapse:
    scale = _array(node.scale)
    in_size = _elementwise(name, scale, "scale")
    return Synapse(in_size, lambda s: s.rows(lambda a: (a.T * scale).T, s.size))


def _import_delay(name: str, node: Any, disc: Discretisation) -> Synapse:
    delay = _array(node.delay)
    in_size = _elementwise(name, delay, "delay")
    steps = disc.steps(name, delay)
    return Synapse(in_size, lambda s: s.delayed(np.broadcast_to(steps, (s.size,))))


def _import_identity(name: str, node: Any, disc: Discretisation) -> Synapse:
    """nir.Identity, nir.Flatten and the Input/Output nodes of subgraphs pass values through."""
    return Synapse(None, lambda s: s)


CONVERTERS: dict[str, Converter] = {
    "Input": _import_input,
    "LIF": _import_lif,
    "LI": _import_li,
    "IF": _import_if,
    "I": _import_i,
    "Threshold": _import_threshold,
    "CubaLIF": _import_cuba_lif,
    "CubaLI": _import_cuba_li,
    "Linear": _import_linear,
    "Affine": _import_affine,
    "Scale": _import_scale,
    "Delay": _import_delay,
    "Flatten": _import_identity,
    "Identity": _import_identity,
}
UNSUPPORTED: dict[str, str] = {
    "Conv1d": "convolutions",
    "Conv2d": "convolutions",
    "AvgPool2d": "pooling",
    "SumPool2d": "pooling",
}


def convert(name: str, node: Any, role: str, disc: Discretisation) -> Population | Synapse:
    """Node ``name`` of NIR type ``role`` through its converter; an error for the types snngraph
    cannot express or does not know."""
    if role in CONVERTERS:
        return CONVERTERS[role](name, node, disc)
    if role in UNSUPPORTED:
        raise ValueError(
            f"node {name!r} is a nir.{role}: snngraph has no {UNSUPPORTED[role]} yet, so it "
            "cannot be imported exactly; replace it in the source network (or remove it)"
        )
    known = sorted({"Output", "NIRGraph", *CONVERTERS})
    raise ValueError(f"node {name!r} has the unknown NIR type {role!r}; from_nir reads {known}")


__all__ = ["CONVERTERS", "UNSUPPORTED", "Converter", "Population", "Synapse", "convert"]
