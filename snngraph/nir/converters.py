"""One converter per NIR node type, from the node's parameters to what snngraph makes of it.

A neuron node (``LIF``, ``LI``, ``IF``, ``I``, ``Threshold``, ``CubaLIF``, ``CubaLI``) and an
``Input`` become a :class:`Population` (shaped ``(C, L)`` or ``(C, H, W)`` when its parameters
or input type are); a stateless node (``Linear``, ``Affine``, ``Conv1d``, ``Conv2d``,
``SumPool2d``, ``AvgPool2d``, ``Scale``, ``Delay``, ``Flatten``, ``Identity``) becomes a
:class:`Synapse`, a map of the :class:`Signal` that flows through it.  :data:`CONVERTERS` maps
the NIR type name to its converter; :data:`UNSUPPORTED` names NIR types snngraph cannot
express, and why (none in NIR 1.0).  The maps from NIR's parameters to α, θ and κ are those of
:mod:`snngraph.nir.discretisation`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from snngraph.convolution import conv_spec
from snngraph.nir.discretisation import Discretisation
from snngraph.nir.paths import NodeMap
from snngraph.nir.signals import Signal


@dataclass(frozen=True, eq=False)
class Population:
    """A NIR node that becomes a snngraph population of ``kind`` ``"input"``, ``"lif"`` or ``"li"``.

    ``gain`` (κ per neuron, ``κ_mem·κ_syn`` with a synaptic current) multiplies every current
    into it, weights and ``Affine`` biases alike; ``v_leak`` is snngraph's (the same number as
    NIR's); ``alpha_syn`` (β) is set for ``CubaLIF``/``CubaLI``.  ``theta`` and ``reset`` matter
    for ``"lif"`` only.  ``shape`` is ``(C, L)`` or ``(C, H, W)`` (the parameters flattened in C
    order), or None for a flat population.
    """

    kind: str
    alpha: np.ndarray
    theta: np.ndarray
    reset: str
    gain: np.ndarray
    v_leak: np.ndarray
    alpha_syn: np.ndarray | None = None
    shape: tuple[int, ...] | None = None

    @property
    def size(self) -> int:
        return self.alpha.size

    @classmethod
    def stateless(cls, kind: str, theta: np.ndarray, shape: tuple[int, ...] | None = None) -> Population:
        """α = 0, κ = 1, no reset and no leak: ``U[t] = I[t]`` (plus the bias it receives)."""
        n = theta.size
        return cls(kind, np.zeros(n), theta, "none", np.ones(n), np.zeros(n), shape=shape)


def population_shape(shape: Any) -> tuple[int, ...] | None:
    """The snngraph shape of NIR values of ``shape``: ``(C, L)`` or ``(C, H, W)`` (a leading batch
    dimension of 1 dropped), None for a flat vector."""
    dims = [int(n) for n in np.asarray(shape, dtype=np.int64).reshape(-1)]
    while len(dims) > 3 and dims[0] == 1:
        dims = dims[1:]
    return tuple(dims) if len(dims) in (2, 3) else None


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


def _vectors(name: str, node: Any, *fields: str) -> tuple[list[np.ndarray], tuple[int, ...] | None]:
    """The named parameters as vectors (C order) of one common length, and their shape when it is
    ``(C, L)`` or ``(C, H, W)``; a parameter with a single value is repeated."""
    arrays = [_array(getattr(node, f)) for f in fields]
    shapes = {a.shape for a in arrays if a.size != 1} or {arrays[0].shape}
    if len(shapes) != 1:
        found = ", ".join(f"{f}{a.shape}" for f, a in zip(fields, arrays, strict=True))
        raise ValueError(f"node {name!r}: parameters must share one shape, got {found}")
    (shape,) = shapes
    if len(shape) > 1 and population_shape(shape) is None:
        raise ValueError(
            f"node {name!r}: parameters have shape {shape}; snngraph populations are vectors or "
            "(C, L) / (C, H, W) maps, so give the node one value per neuron in one of those shapes"
        )
    for f, a in zip(fields, arrays, strict=True):
        _require_finite(name, f, a)
    return [np.broadcast_to(a, shape).reshape(-1).copy() for a in arrays], population_shape(shape)


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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[np.ndarray], tuple[int, ...] | None]:
    """α, β, the gain ``κ_mem·κ_syn``, v_leak, the node's other ``fields`` and the shape of a CubaLIF/CubaLI."""
    (tau_mem, tau_syn, r, w_in, v_leak, *rest), shape = _vectors(
        name, node, "tau_mem", "tau_syn", "r", "w_in", "v_leak", *fields
    )
    alpha, kappa_mem = _leaky(name, disc, tau_mem, r, "tau_mem")
    beta = disc.alpha(name, tau_syn, "tau_syn")
    return alpha, beta, kappa_mem * w_in * disc.synaptic_scale(tau_syn, beta), v_leak, rest, shape


def _import_input(name: str, node: Any, disc: Discretisation) -> Population:
    shape = node.input_type.get("input") if isinstance(node.input_type, dict) else None
    if shape is None:
        raise ValueError(f"input {name!r} has no shape; give nir.Input an input_type")
    n = int(np.prod(np.asarray(shape, dtype=np.int64)))
    return Population.stateless("input", np.ones(n), population_shape(shape))


def _import_lif(name: str, node: Any, disc: Discretisation) -> Population:
    (tau, r, v_leak, theta, v_reset), shape = _vectors(name, node, "tau", "r", "v_leak", "v_threshold", "v_reset")
    _require_zero_reset(name, v_reset)
    alpha, gain = _leaky(name, disc, tau, r, "tau")
    return Population("lif", alpha, theta, "zero", gain, v_leak, shape=shape)


def _import_li(name: str, node: Any, disc: Discretisation) -> Population:
    (tau, r, v_leak), shape = _vectors(name, node, "tau", "r", "v_leak")
    alpha, gain = _leaky(name, disc, tau, r, "tau")
    return Population("li", alpha, np.ones(tau.size), "none", gain, v_leak, shape=shape)


def _import_cuba_lif(name: str, node: Any, disc: Discretisation) -> Population:
    """A lif with ``alpha_syn = β``: ``J[t] = β·J[t−1] + κ·I[t]``, ``U[t] = α·U[t−1] + (1 − α)·v_leak + J[t]``."""
    alpha, beta, gain, v_leak, (theta, v_reset), shape = _synaptic(name, node, disc, "v_threshold", "v_reset")
    _require_zero_reset(name, v_reset)
    return Population("lif", alpha, theta, "zero", gain, v_leak, beta, shape)


def _import_cuba_li(name: str, node: Any, disc: Discretisation) -> Population:
    alpha, beta, gain, v_leak, _, shape = _synaptic(name, node, disc)
    return Population("li", alpha, np.ones(alpha.size), "none", gain, v_leak, beta, shape)


def _import_if(name: str, node: Any, disc: Discretisation) -> Population:
    (r, theta, v_reset), shape = _vectors(name, node, "r", "v_threshold", "v_reset")
    _require_zero_reset(name, v_reset)
    n = r.size
    return Population("lif", np.ones(n), theta, "zero", r * disc.integrator_scale(n), np.zeros(n), shape=shape)


def _import_i(name: str, node: Any, disc: Discretisation) -> Population:
    (r,), shape = _vectors(name, node, "r")
    n = r.size
    return Population("li", np.ones(n), np.ones(n), "none", r * disc.integrator_scale(n), np.zeros(n), shape=shape)


def _import_threshold(name: str, node: Any, disc: Discretisation) -> Population:
    """``z = H(x − θ)``: a lif with α = 0 and no reset, U[t] = I[t]."""
    (theta,), shape = _vectors(name, node, "threshold")
    return Population.stateless("lif", theta, shape)


def _matrix(name: str, node: Any) -> np.ndarray:
    weight = _array(node.weight)
    if weight.ndim != 2:
        raise ValueError(f"node {name!r}: weight must be a 2-D (out, in) matrix, got shape {weight.shape}")
    _require_finite(name, "weight", weight)
    return weight


def _import_linear(name: str, node: Any, disc: Discretisation) -> Synapse:
    step = NodeMap.matrix(name, _matrix(name, node))
    return Synapse(step.shape[1], lambda s: s.then(step))


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


def _ints(value: Any) -> Any:
    """NIR's geometry (ints, arrays, or a padding string, maybe as bytes) in plain Python."""
    if isinstance(value, bytes):
        return value.decode()
    array = np.asarray(value)
    if array.dtype.kind in "SUO":
        item = array.reshape(-1)[0] if array.size else ""
        return item.decode() if isinstance(item, bytes) else str(item)
    if array.ndim == 0:
        return int(array)
    return tuple(int(v) for v in array.reshape(-1))


def _conv_input(name: str, node: Any, n_dims: int, channels: int) -> tuple[int, ...] | None:
    """The input shape ``(C_in, *spatial)`` that a Conv node states (input_type, else input_shape)."""
    stated = node.input_type.get("input") if isinstance(node.input_type, dict) else None
    if stated is not None and np.size(stated) == n_dims + 1:
        spatial = tuple(int(n) for n in np.asarray(stated).reshape(-1)[1:])
    elif getattr(node, "input_shape", None) is not None:
        spatial = tuple(int(n) for n in np.atleast_1d(np.asarray(node.input_shape)))
    else:
        return None
    if len(spatial) != n_dims:
        raise ValueError(f"node {name!r}: input_shape {spatial} must hold {n_dims} spatial sizes")
    return (channels, *spatial)


def _shaped_input(name: str, what: str, stated: tuple[int, ...] | None, s: Signal, n_dims: int) -> tuple[int, ...]:
    """The input shape of a convolution or pooling: as stated, else the shape of what flows in."""
    shape = stated if stated is not None else s.shape
    if shape is None or len(shape) != n_dims + 1:
        raise ValueError(
            f"node {name!r}: a nir.{what} needs its input's shape (C, {'H, W' if n_dims == 2 else 'L'}), which "
            f"neither the node nor its input gives (got {shape}); set the node's input_type (or input_shape) "
            "or give the source node shaped parameters"
        )
    if int(np.prod(shape)) != s.size:
        raise ValueError(f"node {name!r}: its input shape {shape} holds {int(np.prod(shape))} values, got {s.size}")
    return tuple(shape)


def _import_conv(name: str, node: Any, disc: Discretisation) -> Synapse:
    """``nir.Conv1d``/``nir.Conv2d``: PyTorch's convolution; its bias ``b[c]`` repeated over each
    output channel's positions."""
    role = type(node).__name__
    kernel = _array(node.weight)
    n_dims = 1 if role == "Conv1d" else 2
    if kernel.ndim != n_dims + 2:
        raise ValueError(f"node {name!r}: a nir.{role} weight is (C_out, C_in/groups, k…), got shape {kernel.shape}")
    _require_finite(name, "weight", kernel)
    groups = int(np.asarray(node.groups).reshape(-1)[0])
    bias = np.zeros(kernel.shape[0]) if node.bias is None else _array(node.bias).reshape(-1)
    if bias.size == 1:
        bias = np.full(kernel.shape[0], bias[0])
    if bias.shape != (kernel.shape[0],):
        raise ValueError(f"node {name!r}: bias must hold {kernel.shape[0]} values (one per output channel)")
    _require_finite(name, "bias", bias)
    stated = _conv_input(name, node, n_dims, kernel.shape[1] * groups)
    geometry = {key: _ints(getattr(node, key)) for key in ("stride", "padding", "dilation")}

    def apply(s: Signal) -> Signal:
        in_shape = _shaped_input(name, role, stated, s, n_dims)
        spec = conv_spec(
            in_shape, edge=f"{name!r} (nir.{role})", out_channels=kernel.shape[0], kernel_size=kernel.shape[2:],
            groups=groups, **geometry,
        )  # fmt: skip
        positions = int(np.prod(spec.out_shape[1:]))
        out = s.then(NodeMap.convolution(name, spec, kernel), spec.out_shape)
        return out.with_bias(name, np.repeat(bias, positions), s.carrier())

    return Synapse(None if stated is None else int(np.prod(stated)), apply)


def _import_pool(name: str, node: Any, disc: Discretisation) -> Synapse:
    """``nir.SumPool2d``/``nir.AvgPool2d``: fixed weights 1 or 1/∏k per channel (zero padding
    counted in the average, as ``avg_pool2d`` with ``count_include_pad=True``)."""
    role = type(node).__name__
    kernel_size = _ints(node.kernel_size)
    stride = kernel_size if getattr(node, "stride", None) is None else _ints(node.stride)
    padding = 0 if getattr(node, "padding", None) is None else _ints(node.padding)
    pool = "sum" if role == "SumPool2d" else "avg"

    def apply(s: Signal) -> Signal:
        in_shape = _shaped_input(name, role, None, s, 2)
        spec = conv_spec(
            in_shape, edge=f"{name!r} (nir.{role})", out_channels=in_shape[0], kernel_size=kernel_size,
            stride=stride, padding=padding, groups=in_shape[0], pool=pool,
        )  # fmt: skip
        return s.then(NodeMap.convolution(name, spec, None), spec.out_shape)

    return Synapse(None, apply)


def _import_flatten(name: str, node: Any, disc: Discretisation) -> Synapse:
    """``nir.Flatten``: the values stay (C order), their shape merges dimensions start_dim … end_dim."""

    def apply(s: Signal) -> Signal:
        stated = node.input_type.get("input") if isinstance(node.input_type, dict) else None
        shape = s.shape if stated is None else tuple(int(n) for n in np.asarray(stated).reshape(-1))
        if shape is None or int(np.prod(shape)) != s.size:
            return s.reshaped(None)
        dims = list(shape)
        start, end = int(node.start_dim) % len(dims), int(node.end_dim) % len(dims)
        merged = [*dims[:start], int(np.prod(dims[start : end + 1])), *dims[end + 1 :]]
        return s.reshaped(population_shape(merged))

    return Synapse(None, apply)


def _elementwise(name: str, values: np.ndarray, what: str) -> tuple[np.ndarray, int | None]:
    """An elementwise parameter (a scalar, or one value per input, shaped like the input or flat,
    C order) and the input size it fixes (None for a scalar)."""
    if values.ndim > 1 and population_shape(values.shape) is None:
        raise ValueError(
            f"node {name!r}: {what} must be a scalar, a vector or shaped (C, L) / (C, H, W), got shape {values.shape}"
        )
    _require_finite(name, what, values)
    return values.reshape(-1), (values.size if values.ndim >= 1 else None)


def _import_scale(name: str, node: Any, disc: Discretisation) -> Synapse:
    scale, in_size = _elementwise(name, _array(node.scale), "scale")
    return Synapse(in_size, lambda s: s.then(NodeMap.diagonal(name, np.broadcast_to(scale, (s.size,))), s.shape))


def _import_delay(name: str, node: Any, disc: Discretisation) -> Synapse:
    delay, in_size = _elementwise(name, _array(node.delay), "delay")
    steps = disc.steps(name, delay)
    return Synapse(in_size, lambda s: s.delayed(np.broadcast_to(steps, (s.size,))))


def _import_identity(name: str, node: Any, disc: Discretisation) -> Synapse:
    """nir.Identity and the Input/Output nodes of subgraphs pass values through."""
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
    "Conv1d": _import_conv,
    "Conv2d": _import_conv,
    "SumPool2d": _import_pool,
    "AvgPool2d": _import_pool,
    "Flatten": _import_flatten,
    "Identity": _import_identity,
}
UNSUPPORTED: dict[str, str] = {}  # NIR type → what snngraph lacks to express it


def convert(name: str, node: Any, role: str, disc: Discretisation) -> Population | Synapse:
    """Node ``name`` of NIR type ``role`` through its converter; an error for the types snngraph
    cannot express or does not know."""
    if role in CONVERTERS:
        return CONVERTERS[role](name, node, disc)
    if role in UNSUPPORTED:
        raise ValueError(
            f"node {name!r} is a nir.{role}: snngraph has no {UNSUPPORTED[role]}, so it "
            "cannot be imported exactly; replace it in the source network (or remove it)"
        )
    known = sorted({"Output", "NIRGraph", *CONVERTERS})
    raise ValueError(f"node {name!r} has the unknown NIR type {role!r}; from_nir reads {known}")


__all__ = ["CONVERTERS", "UNSUPPORTED", "Converter", "Population", "Synapse", "convert"]
