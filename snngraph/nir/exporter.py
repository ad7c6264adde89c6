"""snngraph → NIR: :func:`to_nir`.

Each population becomes one NIR node, chosen by its kind, α and synaptic current (see
:func:`to_nir`), with τ from α (τ_syn from ``alpha_syn``) and R, w_in from κ as in
:mod:`snngraph.nir.discretisation`.  Each edge becomes one ``Linear`` (+ ``Delay``) branch per
distinct delay, its weights divided by the target's gain.  NIR neurons have no bias: a
population's ``bias`` (and, where α = 0, its ``v_leak``) is written as the bias of an
``Affine`` on one incoming branch, divided by the gain like the weights; ``v_leak`` is NIR's.

No spiking NIR node subtracts θ after a spike or keeps its membrane: ``nir.LIF`` and
``nir.IF`` set ``v ← v_reset``, and ``nir.Threshold`` (``z = H(x − θ)``) holds no state.  A
population whose reset NIR cannot say is exported as the nearest NIR model with a
:class:`NIRExportWarning` (or refused with ``strict=True``):

- 0 < α ≤ 1 with reset ``"subtract"`` or ``"none"``: ``LIF``/``IF`` with reset-to-0;
- α = 0 with reset ``"subtract"`` (``U[t] = I[t] − θ·S[t−1]``): ``Threshold``, that is
  ``S[t] = H(I[t] − θ)`` without the subtraction.  With α = 0 the resets ``"zero"`` and
  ``"none"`` both give ``U[t] = I[t]``, which ``Threshold`` computes exactly.

An edge that learns its delays is written at its delays rounded to whole steps, with the warning
where a delay is not whole or a Gaussian kernel of width σ > 0 spreads its synapses over taps.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from snngraph.compiler import read_graph
from snngraph.graph import Graph, PopulationSpec, ProjectionSpec
from snngraph.module import SNN
from snngraph.nir.dependency import nir_module
from snngraph.nir.discretisation import Discretisation
from snngraph.nir.structured import carries_bias, structured_nodes

if TYPE_CHECKING:
    import nir

RESISTANCES = ("absorb", "unit")


class NIRExportWarning(UserWarning):
    """:func:`to_nir` wrote a model that NIR can say only approximately (``strict=False``)."""


def _inexact(message: str, written: str, strict: bool, exact: str = "use reset 'zero' to export exactly") -> None:
    """Refuse (``strict``) or warn that ``message`` has no exact NIR form and ``written`` was
    exported in its place; ``exact`` says what exports exactly.  Called from a population or
    edge check, called from :func:`to_nir`: the warning points at the caller of :func:`to_nir`."""
    if strict:
        raise ValueError(f"{message}; strict=True refuses an inexact export ({exact})")
    warnings.warn(
        f"{message}; exported {written}, a different model (strict=True makes this an error)",
        NIRExportWarning,
        stacklevel=4,
    )


@dataclass(frozen=True, eq=False)
class _Exported:
    """A population in NIR: ``node``, the gain κ per neuron that divides its incoming weights, and
    the constant current per step (``bias``, in snngraph's units) that an ``Affine`` must put in."""

    node: Any
    gain: np.ndarray
    bias: np.ndarray


def _factor(scale: np.ndarray, resistance: str) -> tuple[np.ndarray, np.ndarray]:
    """(the factor written to NIR, R or w_in; the gain left on the weights) for an input scale.

    ``resistance="absorb"`` writes 1/scale so that the weights are exported unchanged (gain 1);
    ``"unit"`` writes 1 and divides the weights by the scale.
    """
    ones = np.ones_like(scale)
    return (1 / scale, ones) if resistance == "absorb" else (ones, scale)


def _membrane(
    spec: PopulationSpec, disc: Discretisation, resistance: str
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(τ, R, κ) of a population with α > 0; τ is None for α = 1 (an integrator, IF or I)."""
    if np.all(spec.alpha == 1):
        tau, scale = None, disc.integrator_scale(spec.size)
    else:
        tau = disc.tau(spec.name, spec.alpha)
        scale = disc.leaky_scale(tau, spec.alpha)
    return (tau, *_factor(scale, resistance))


def _synaptic(spec: PopulationSpec, disc: Discretisation, resistance: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The parameters of a ``CubaLIF``/``CubaLI`` (τ_mem, τ_syn, R, w_in, v_leak) and its gain κ_mem·κ_syn."""
    alpha, beta = spec.alpha, spec.params["alpha_syn"]
    tau_mem, tau_syn = disc.tau(spec.name, alpha), disc.tau(spec.name, beta, "alpha_syn")
    r, gain_mem = _factor(disc.leaky_scale(tau_mem, alpha), resistance)
    w_in, gain_syn = _factor(disc.synaptic_scale(tau_syn, beta), resistance)
    params = {"tau_mem": tau_mem, "tau_syn": tau_syn, "r": r, "w_in": w_in, "v_leak": spec.params["v_leak"].copy()}
    return params, gain_mem * gain_syn


def _shape(spec: PopulationSpec) -> tuple[int, ...]:
    """The shape of a population's values in NIR: its own, or ``(size,)``."""
    return spec.shape if spec.shape is not None else (spec.size,)


def _export_input(spec: PopulationSpec, disc: Discretisation, resistance: str, strict: bool) -> _Exported:
    node = nir_module().Input(input_type=np.array(_shape(spec)))
    return _Exported(node, np.ones(spec.size), np.zeros(spec.size))


def _stateless_bias(spec: PopulationSpec) -> np.ndarray:
    """The constant of ``U[t] = I[t] + v_leak + bias`` (α = 0), which an ``Affine`` puts in."""
    return spec.params["v_leak"] + spec.params["bias"]


def _export_lif(spec: PopulationSpec, disc: Discretisation, resistance: str, strict: bool) -> _Exported:
    """``lif`` → ``nir.CubaLIF`` (with ``alpha_syn``), ``nir.Threshold`` (α = 0), ``nir.IF`` (α = 1)
    or ``nir.LIF`` (τ from α)."""
    nir_lib, n, bias = nir_module(), spec.size, spec.params["bias"]
    if np.all(spec.alpha == 0) and not spec.model.synaptic:  # U[t] = I[t] + v_leak + bias: a threshold
        if spec.reset == "subtract":
            _inexact(
                f"population {spec.name!r} has alpha = 0 and reset 'subtract' (U[t] = I[t] - theta*S[t-1]), "
                "while NIR's Threshold holds no state to subtract from",
                "a nir.Threshold instead, S[t] = H(I[t] - theta) without the subtraction",
                strict,
            )
        return _Exported(nir_lib.Threshold(threshold=spec.theta.copy()), np.ones(n), _stateless_bias(spec))
    if spec.reset != "zero":
        _inexact(
            f"population {spec.name!r} uses reset {spec.reset!r} while NIR's LIF, IF and CubaLIF reset to v_reset",
            "NIR's reset-to-0 instead",
            strict,
        )
    zeros, theta = np.zeros(n), spec.theta.copy()
    if spec.model.synaptic:
        params, gain = _synaptic(spec, disc, resistance)
        return _Exported(nir_lib.CubaLIF(v_threshold=theta, v_reset=zeros, **params), gain, bias)
    tau, r, gain = _membrane(spec, disc, resistance)
    if tau is None:  # α = 1: (1 − α)·v_leak = 0
        return _Exported(nir_lib.IF(r=r, v_threshold=theta, v_reset=zeros), gain, bias)
    node = nir_lib.LIF(tau=tau, r=r, v_leak=spec.params["v_leak"].copy(), v_threshold=theta, v_reset=zeros)
    return _Exported(node, gain, bias)


def _export_li(spec: PopulationSpec, disc: Discretisation, resistance: str, strict: bool) -> _Exported:
    """``li`` → ``nir.CubaLI`` (with ``alpha_syn``), an ``Output`` (α = 0), ``nir.I`` (α = 1) or
    ``nir.LI`` (τ from α)."""
    nir_lib, n, bias = nir_module(), spec.size, spec.params["bias"]
    if spec.model.synaptic:
        params, gain = _synaptic(spec, disc, resistance)
        return _Exported(nir_lib.CubaLI(**params), gain, bias)
    if np.all(spec.alpha == 0):  # U[t] = I[t] + v_leak + bias: the affine sum an Output node holds
        return _Exported(nir_lib.Output(output_type=np.array(_shape(spec))), np.ones(n), _stateless_bias(spec))
    tau, r, gain = _membrane(spec, disc, resistance)
    if tau is None:  # α = 1: (1 − α)·v_leak = 0
        return _Exported(nir_lib.I(r=r), gain, bias)
    return _Exported(nir_lib.LI(tau=tau, r=r, v_leak=spec.params["v_leak"].copy()), gain, bias)


POPULATION_EXPORTERS: dict[str, Callable[[PopulationSpec, Discretisation, str, bool], _Exported]] = {
    "input": _export_input,
    "lif": _export_lif,
    "li": _export_li,
}


def _unique(name: str, taken: set[str]) -> str:
    candidate, i = name, 1
    while candidate in taken:
        candidate, i = f"{name}_{i}", i + 1
    taken.add(candidate)
    return candidate


def _export_names(populations: Mapping[Any, PopulationSpec]) -> dict[Any, str]:
    names: dict[Any, str] = {}
    for name in populations:
        text = str(name)
        if "/" in text:
            raise ValueError(f"population {name!r}: NIR files are HDF5, where '/' separates groups; rename it")
        if text in names.values():
            raise ValueError(f"populations {name!r} and another both read {text!r} as text; NIR names must be unique")
        names[name] = text
    return names


def _with_shape(node: Any, shape: tuple[int, ...] | None) -> Any:
    """A neuron node with its per-neuron parameters shaped like the population (NIR's CNN layout)."""
    if shape is None or isinstance(node, (nir_module().Input, nir_module().Output)):
        return node
    params = {f.name: getattr(node, f.name) for f in dataclasses.fields(node) if f.init}
    n = int(np.prod(shape))
    shaped = {k: v.reshape(shape) if isinstance(v, np.ndarray) and v.size == n else v for k, v in params.items()}
    return type(node)(**shaped)


def _flat_source(
    pre: Any,
    populations: Mapping[Any, PopulationSpec],
    names: Mapping[Any, str],
    nodes: dict[str, Any],
    taken: set[str],
) -> tuple[str, list[tuple[str, str]]]:
    """The node that gives ``pre``'s values as a vector: the population, or a ``Flatten`` of its shape
    (one per population, added to ``nodes`` with its edge the first time)."""
    shape = populations[pre].shape
    if shape is None:
        return names[pre], []
    flat = f"{names[pre]}_flat"
    if isinstance(nodes.get(flat), nir_module().Flatten):
        return flat, []
    flat = _unique(flat, taken)
    nodes[flat] = nir_module().Flatten(input_type=np.array(shape), start_dim=0)
    return flat, [(names[pre], flat)]


def _projection_nodes(
    proj: ProjectionSpec,
    target: _Exported,
    names: Mapping[Any, str],
    disc: Discretisation,
    taken: set[str],
    bias_delay: int | None,
    source_node: str | None = None,
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """One ``Linear`` (+ ``Delay``) branch per distinct delay of projection ``proj``.

    The branch of delay ``bias_delay`` also carries the target's bias: its ``Linear`` becomes an
    ``Affine`` after the ``Delay``, which then delays the presynaptic values, so that the bias
    is there from step 0.  ``source_node`` gives the presynaptic values as a vector (a ``Flatten``
    of a shaped population), by default the population itself.
    """
    nir_lib = nir_module()
    nodes, edges = {}, []
    pre_node = names[proj.pre] if source_node is None else source_node
    delays = np.unique(proj.delay)
    for delay in delays:
        mask = proj.delay == delay
        weight = np.zeros(proj.shape)
        np.add.at(weight, (proj.post_index[mask], proj.pre_index[mask]), proj.weight[mask])
        base = f"{names[proj.pre]}_to_{names[proj.post]}" + (f"_d{delay}" if delays.size > 1 else "")
        weight = weight / target.gain[:, None]
        if delay == bias_delay:
            source = pre_node
            if delay > 0:
                source = _unique(f"{base}_delay", taken)
                nodes[source] = nir_lib.Delay(delay=np.full(proj.shape[1], delay * disc.dt))
                edges.append((pre_node, source))
            affine = _unique(base, taken)
            nodes[affine] = nir_lib.Affine(weight=weight, bias=target.bias / target.gain)
            edges += [(source, affine), (affine, names[proj.post])]
            continue
        linear = _unique(base, taken)
        nodes[linear] = nir_lib.Linear(weight=weight)
        edges.append((pre_node, linear))
        last = linear
        if delay > 0:
            last = _unique(f"{base}_delay", taken)
            nodes[last] = nir_lib.Delay(delay=np.full(proj.shape[0], delay * disc.dt))
            edges.append((linear, last))
        edges.append((last, names[proj.post]))
    return nodes, edges


def _check_learned_delays(proj: ProjectionSpec, strict: bool) -> None:
    """Warn (or refuse, ``strict``) where an edge that learns its delays is not its rounded delays.

    ``proj.delay`` holds the real delays rounded to whole steps, which NIR's ``Delay`` nodes
    write.  They are the model's synapses only where the linear kernel (or a Gaussian one of
    width 0) reads a whole delay, one tap of weight 1: a fractional delay spreads the synapse
    over two taps, and a Gaussian kernel of width σ > 0 over its whole window."""
    spec = proj.delays
    if spec is None:
        return
    tau = proj.delay_values.reshape(-1)[proj.index]  # the delays of the edge's synapses
    rounding = np.abs(tau - np.round(tau))
    edge = f"edge {proj.pre!r} -> {proj.post!r}"
    exact = "only whole delays with delay_kernel='linear' or sigma 0 export exactly"
    written = "the delays rounded to whole steps, one synapse each"
    if spec.kernel == "gaussian" and spec.sigma > 0 and tau.size:
        _inexact(
            f"{edge} learns its delays with a Gaussian kernel of sigma {spec.sigma:g} steps, which spreads "
            f"each synapse over {spec.taps} taps, while a NIR Delay holds one delay per synapse (the largest "
            f"rounding of a delay to a whole step: {rounding.max():.3g} steps)",
            written,
            strict,
            exact,
        )
    elif np.any(rounding > 0):
        worst = int(np.argmax(rounding))
        _inexact(
            f"{edge} has {int(np.count_nonzero(rounding))} of {tau.size} learned delays that are not whole "
            f"steps (the largest rounding: {tau[worst]:.6g} to {np.round(tau[worst]):.0f}), each spread over "
            "two taps, while a NIR Delay holds whole steps",
            written,
            strict,
            exact,
        )


def _bias_carriers(projections: Sequence[ProjectionSpec], exported: Mapping[Any, _Exported]) -> dict[int, int]:
    """For each population with a bias, the projection (its index) and delay whose branch carries
    it: the first projection into it with a zero-delay synapse, else the first, at its smallest delay
    (a convolution only when the bias is one per output channel, a pooling never)."""
    carriers: dict[Any, tuple[int, int]] = {}
    for index, proj in enumerate(projections):
        target = exported[proj.post]
        if not np.any(target.bias) or not carries_bias(proj, target.gain, target.bias):
            continue
        delay = int(proj.delay.min())
        if proj.post not in carriers or (delay == 0 and carriers[proj.post][1] > 0):
            carriers[proj.post] = (index, delay)
    return dict(carriers.values())


def _bias_node(
    name: Any,
    target: _Exported,
    populations: Mapping[Any, PopulationSpec],
    names: Mapping[Any, str],
    taken: set[str],
    nodes: dict[str, Any],
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The bias of a population that no incoming edge carries: an ``Affine`` with zero weights from
    the first input (through a ``Flatten`` when the input is shaped)."""
    source = next((p for p in populations.values() if p.kind == "input"), None)
    if source is None:
        raise ValueError(
            f"population {name!r} has a bias (or v_leak with alpha = 0) and no incoming edge that can carry it; "
            "NIR writes a bias as an Affine on an edge (or a convolution's bias, one per output channel), so add "
            "an input population to carry it"
        )
    flat, edges = _flat_source(source.name, populations, names, nodes, taken)
    node = _unique(f"{names[name]}_bias", taken)
    weight = np.zeros((populations[name].size, source.size))
    affine = nir_module().Affine(weight=weight, bias=target.bias / target.gain)
    return {node: affine}, [*edges, (flat, node), (node, names[name])]


def _shape_into(
    post: Any, populations: Mapping[Any, PopulationSpec], names: Mapping[Any, str], branch: tuple[dict, list]
) -> None:
    """A weight-matrix branch into a shaped population: NIR has no node that gives a vector a shape,
    so the branch's last node states the population's shape as its output type (the values in C
    order), which keeps the graph's types consistent."""
    shape = populations[post].shape
    if shape is None:
        return
    nodes, edges = branch
    for source, target in edges:
        if target == names[post] and source in nodes:
            nodes[source].output_type = {"output": np.array(shape)}


def _output_map(
    g: nx.DiGraph, outputs: Mapping[str, Any] | Sequence[Any] | None, exported: Mapping[Any, _Exported]
) -> dict[str, Any]:
    """Output name → population, from ``outputs``, the recorded ``nir_outputs`` or the sinks."""
    if outputs is None:
        outputs = g.graph.get("nir_outputs") or [
            name for name in exported if g.nodes[name]["kind"] != "input" and g.out_degree(name) == 0
        ]
    if not isinstance(outputs, Mapping):
        outputs = {f"{name}_output": name for name in outputs}
    for out, name in outputs.items():
        if name not in exported or g.nodes[name]["kind"] == "input":
            raise ValueError(f"output {out!r}: {name!r} is not a neuron population of the graph")
    return dict(outputs)


def to_nir(
    graph_or_model: Graph | nx.DiGraph | SNN,
    *,
    dt: float,
    decay: str = "exp",
    input_scale: str = "1-alpha",
    synapse_scale: str | None = None,
    resistance: str = "absorb",
    strict: bool = False,
    outputs: Mapping[str, Any] | Sequence[Any] | None = None,
    path: str | PathLike | None = None,
) -> nir.NIRGraph:
    """Export a graph (or a trained :class:`SNN`, through ``model.to_graph()``) to NIR.

    The inverse of :func:`~snngraph.nir.from_nir` with the same ``dt``/``decay``/``input_scale``/
    ``synapse_scale``.  A ``lif`` population becomes ``nir.CubaLIF`` when it has ``alpha_syn``,
    else ``nir.LIF`` (τ from α), ``nir.IF`` when α = 1 or ``nir.Threshold`` when α = 0; an
    ``li`` becomes ``nir.CubaLI`` with ``alpha_syn``, else ``nir.LI``, ``nir.I`` when α = 1, or,
    when α = 0, an ``Output`` node holding its affine sum.  Each edge becomes one ``Linear``
    (+ ``Delay`` of ``d·dt``) branch per distinct delay ``d``.  ``resistance="absorb"`` writes
    R = 1/κ_mem and w_in = 1/κ_syn so the weights are exported as they are (snnTorch's
    convention); ``"unit"`` writes R = w_in = 1 and divides the weights by the gain (Norse's).
    A ``conv`` edge becomes ``Conv1d``/``Conv2d`` and a ``pool`` edge ``SumPool2d``/``AvgPool2d``
    (:mod:`snngraph.nir.structured`); a shaped population's parameters are shaped like it, and a
    weight-matrix edge from it reads it through a ``Flatten``.

    A population's ``bias`` b becomes the bias b/κ of an ``Affine``: the branch of its first
    incoming edge with a zero-delay synapse (else of its first edge, with the ``Delay`` moved
    before the ``Affine`` so that the bias is there from step 0), or, with no incoming edge, an
    ``"<name>_bias"`` ``Affine`` with zero weights from the first input.  Where α = 0
    (``Threshold``, ``Output``) ``v_leak`` acts as a bias and is written the same way; an ``IF``
    or ``I`` (α = 1) has no leak, so its ``v_leak`` has no effect and is not written.

    NIR's neurons reset to ``v_reset`` or, for ``Threshold``, hold no state: a ``"subtract"``
    or ``"none"`` reset is exported as reset-to-0, and α = 0 with ``"subtract"`` as a
    ``Threshold`` without the subtraction, each with a :class:`NIRExportWarning`, or refused
    when ``strict=True`` (module doc).  An edge that learns its delays (:mod:`snngraph.delays`)
    is written at its delays rounded to whole steps; where that is not the model's edge (a
    delay that is not whole, a Gaussian kernel with σ > 0) it warns or, ``strict``, refuses too.

    ``outputs`` maps ``Output`` names to populations (a sequence names them ``"<name>_output"``);
    by default the ``nir_outputs`` that ``from_nir`` recorded, else every neuron population
    without outgoing edges.  ``path`` also writes the graph with ``nir.write``.
    """
    nir_lib = nir_module()
    if resistance not in RESISTANCES:
        raise ValueError(f"unknown resistance {resistance!r}; choose one of {RESISTANCES}")
    graph = graph_or_model.to_graph() if isinstance(graph_or_model, SNN) else graph_or_model
    disc = Discretisation(dt, decay, input_scale, synapse_scale=synapse_scale)
    populations, projections = read_graph(graph)
    g = graph.nx if isinstance(graph, Graph) else graph
    names = _export_names(populations)
    exported = {}
    for name, spec in populations.items():  # a loop, not a comprehension: the warnings' stacklevel counts frames
        if spec.kind not in POPULATION_EXPORTERS:
            raise ValueError(
                f"population {name!r} is of kind {spec.kind!r}, which has no NIR node; to_nir writes "
                f"{sorted(POPULATION_EXPORTERS)} populations"
            )
        e = POPULATION_EXPORTERS[spec.kind](spec, disc, resistance, strict)
        exported[name] = dataclasses.replace(e, node=_with_shape(e.node, spec.shape))
    nodes = {names[name]: e.node for name, e in exported.items()}
    taken = set(nodes)
    edges: list[tuple[str, str]] = []
    carriers = _bias_carriers(projections, exported)
    for index, proj in enumerate(projections):
        _check_learned_delays(proj, strict)
        target = exported[proj.post]
        if proj.conv is not None:
            bias = target.bias if index in carriers else None
            flat_target = populations[proj.post].shape is None
            unique = lambda name: _unique(name, taken)  # noqa: E731
            branch = structured_nodes(proj, target.gain, bias, names, disc.dt, unique, flat_target)
        else:
            source, flat_edges = _flat_source(proj.pre, populations, names, nodes, taken)
            edges.extend(flat_edges)
            branch = _projection_nodes(proj, target, names, disc, taken, carriers.get(index), source)
            _shape_into(proj.post, populations, names, branch)
        nodes.update(branch[0])
        edges.extend(branch[1])
    carried = {projections[index].post for index in carriers}
    for name, e in exported.items():
        if np.any(e.bias) and name not in carried:
            branch = _bias_node(name, e, populations, names, taken, nodes)
            _shape_into(name, populations, names, branch)
            nodes.update(branch[0])
            edges.extend(branch[1])
    for out, name in _output_map(g, outputs, exported).items():
        if isinstance(exported[name].node, nir_lib.Output):
            continue  # an α = 0 readout is an Output already
        out = _unique(str(out), taken)
        nodes[out] = nir_lib.Output(output_type=np.array(_shape(populations[name])))
        edges.append((names[name], out))
    result = nir_lib.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    result.check_types()
    if path is not None:
        nir_lib.write(path, result)
    return result


__all__ = ["RESISTANCES", "NIRExportWarning", "to_nir"]
