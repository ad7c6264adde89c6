"""snngraph → NIR: :func:`to_nir`.

Each population becomes one NIR node, chosen by its kind and α (see :func:`to_nir`), with τ
from α and R from κ as in :mod:`snngraph.nir.discretisation`.  Each edge becomes one
``Linear`` (+ ``Delay``) branch per distinct delay, its weights divided by the target's κ.

No spiking NIR node subtracts θ after a spike or keeps its membrane: ``nir.LIF`` and
``nir.IF`` set ``v ← v_reset``, and ``nir.Threshold`` (``z = H(x − θ)``) holds no state.  A
population whose reset NIR cannot say is exported as the nearest NIR model with a
:class:`NIRExportWarning` (or refused with ``strict=True``):

- 0 < α ≤ 1 with reset ``"subtract"`` or ``"none"``: ``LIF``/``IF`` with reset-to-0;
- α = 0 with reset ``"subtract"`` (``U[t] = I[t] − θ·S[t−1]``): ``Threshold``, that is
  ``S[t] = H(I[t] − θ)`` without the subtraction.  With α = 0 the resets ``"zero"`` and
  ``"none"`` both give ``U[t] = I[t]``, which ``Threshold`` computes exactly.
"""

from __future__ import annotations

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

if TYPE_CHECKING:
    import nir

RESISTANCES = ("absorb", "unit")


class NIRExportWarning(UserWarning):
    """:func:`to_nir` wrote a model that NIR can say only approximately (``strict=False``)."""


def _inexact(message: str, written: str, strict: bool) -> None:
    """Refuse (``strict``) or warn that ``message`` has no exact NIR form and ``written`` was
    exported in its place.  Called from a population exporter, called from :func:`to_nir`: the
    warning points at the caller of :func:`to_nir`."""
    if strict:
        raise ValueError(f"{message}; strict=True refuses an inexact export (use reset 'zero' to export exactly)")
    warnings.warn(
        f"{message}; exported {written}, a different model (strict=True makes this an error)",
        NIRExportWarning,
        stacklevel=4,
    )


@dataclass(frozen=True, eq=False)
class _Exported:
    """A population in NIR: ``node`` and the κ per neuron that divides its incoming weights."""

    node: Any
    gain: np.ndarray


def _membrane(
    spec: PopulationSpec, disc: Discretisation, resistance: str
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(τ, R, κ) of a population with α > 0; τ is None for α = 1 (an integrator, IF or I).

    ``resistance="absorb"`` puts 1/(κ/R) into R so the weights are exported unchanged (κ = 1);
    ``"unit"`` keeps R = 1 and divides the weights by κ = κ/R.
    """
    if np.all(spec.alpha == 1):
        tau, scale = None, disc.integrator_scale(spec.size)
    else:
        tau = disc.tau(spec.name, spec.alpha)
        scale = disc.leaky_scale(tau, spec.alpha)
    if resistance == "absorb":
        return tau, 1 / scale, np.ones_like(scale)
    return tau, np.ones_like(scale), scale


def _export_input(spec: PopulationSpec, disc: Discretisation, resistance: str, strict: bool) -> _Exported:
    return _Exported(nir_module().Input(input_type=np.array([spec.size])), np.ones(spec.size))


def _export_lif(spec: PopulationSpec, disc: Discretisation, resistance: str, strict: bool) -> _Exported:
    """``lif`` → ``nir.Threshold`` (α = 0), ``nir.IF`` (α = 1) or ``nir.LIF`` (τ from α)."""
    nir_lib, n = nir_module(), spec.size
    if np.all(spec.alpha == 0):  # U[t] = I[t] for reset "zero" and "none": a threshold
        if spec.reset == "subtract":
            _inexact(
                f"population {spec.name!r} has alpha = 0 and reset 'subtract' (U[t] = I[t] - theta*S[t-1]), "
                "while NIR's Threshold holds no state to subtract from",
                "a nir.Threshold instead, S[t] = H(I[t] - theta) without the subtraction",
                strict,
            )
        return _Exported(nir_lib.Threshold(threshold=spec.theta.copy()), np.ones(n))
    if spec.reset != "zero":
        _inexact(
            f"population {spec.name!r} uses reset {spec.reset!r} while NIR's LIF and IF reset to v_reset",
            "NIR's reset-to-0 instead",
            strict,
        )
    tau, r, gain = _membrane(spec, disc, resistance)
    zeros = np.zeros(n)
    if tau is None:
        return _Exported(nir_lib.IF(r=r, v_threshold=spec.theta.copy(), v_reset=zeros), gain)
    node = nir_lib.LIF(tau=tau, r=r, v_leak=zeros, v_threshold=spec.theta.copy(), v_reset=zeros.copy())
    return _Exported(node, gain)


def _export_li(spec: PopulationSpec, disc: Discretisation, resistance: str, strict: bool) -> _Exported:
    """``li`` → an ``Output`` (α = 0), ``nir.I`` (α = 1) or ``nir.LI`` (τ from α)."""
    nir_lib, n = nir_module(), spec.size
    if np.all(spec.alpha == 0):  # U[t] = I[t]: the weighted sum an Output node holds
        return _Exported(nir_lib.Output(output_type=np.array([n])), np.ones(n))
    tau, r, gain = _membrane(spec, disc, resistance)
    if tau is None:
        return _Exported(nir_lib.I(r=r), gain)
    return _Exported(nir_lib.LI(tau=tau, r=r, v_leak=np.zeros(n)), gain)


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


def _projection_nodes(
    proj: ProjectionSpec, gain: np.ndarray, names: Mapping[Any, str], disc: Discretisation, taken: set[str]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """One ``Linear`` (+ ``Delay``) branch per distinct delay of projection ``proj``."""
    nir_lib = nir_module()
    nodes, edges = {}, []
    delays = np.unique(proj.delay)
    for delay in delays:
        mask = proj.delay == delay
        weight = np.zeros(proj.shape)
        np.add.at(weight, (proj.post_index[mask], proj.pre_index[mask]), proj.weight[mask])
        base = f"{names[proj.pre]}_to_{names[proj.post]}" + (f"_d{delay}" if delays.size > 1 else "")
        linear = _unique(base, taken)
        nodes[linear] = nir_lib.Linear(weight=weight / gain[:, None])
        edges.append((names[proj.pre], linear))
        last = linear
        if delay > 0:
            last = _unique(f"{base}_delay", taken)
            nodes[last] = nir_lib.Delay(delay=np.full(proj.shape[0], delay * disc.dt))
            edges.append((linear, last))
        edges.append((last, names[proj.post]))
    return nodes, edges


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
    resistance: str = "absorb",
    strict: bool = False,
    outputs: Mapping[str, Any] | Sequence[Any] | None = None,
    path: str | PathLike | None = None,
) -> nir.NIRGraph:
    """Export a graph (or a trained :class:`SNN`, through ``model.to_graph()``) to NIR.

    The inverse of :func:`~snngraph.nir.from_nir` with the same ``dt``/``decay``/``input_scale``.
    A ``lif`` population becomes ``nir.LIF`` (τ from α), ``nir.IF`` when α = 1 or
    ``nir.Threshold`` when α = 0; an ``li`` becomes ``nir.LI``, ``nir.I`` when α = 1, or, when
    α = 0, an ``Output`` node holding its weighted sum.  Each edge becomes one ``Linear``
    (+ ``Delay`` of ``d·dt``) branch per distinct delay ``d``.  ``resistance="absorb"`` writes
    R = 1/scale so the weights are exported as they are (snnTorch's convention); ``"unit"``
    writes R = 1 and divides the weights by the scale (Norse's).

    NIR's neurons reset to ``v_reset`` or, for ``Threshold``, hold no state: a ``"subtract"``
    or ``"none"`` reset is exported as reset-to-0, and α = 0 with ``"subtract"`` as a
    ``Threshold`` without the subtraction, each with a :class:`NIRExportWarning`, or refused
    when ``strict=True`` (module doc).

    ``outputs`` maps ``Output`` names to populations (a sequence names them ``"<name>_output"``);
    by default the ``nir_outputs`` that ``from_nir`` recorded, else every neuron population
    without outgoing edges.  ``path`` also writes the graph with ``nir.write``.
    """
    nir_lib = nir_module()
    if resistance not in RESISTANCES:
        raise ValueError(f"unknown resistance {resistance!r}; choose one of {RESISTANCES}")
    graph = graph_or_model.to_graph() if isinstance(graph_or_model, SNN) else graph_or_model
    disc = Discretisation(dt, decay, input_scale)
    populations, projections = read_graph(graph)
    g = graph.nx if isinstance(graph, Graph) else graph
    names = _export_names(populations)
    exported = {}
    for name, spec in populations.items():  # a loop, not a comprehension: the warnings' stacklevel counts frames
        exported[name] = POPULATION_EXPORTERS[spec.kind](spec, disc, resistance, strict)
    nodes = {names[name]: e.node for name, e in exported.items()}
    taken = set(nodes)
    edges: list[tuple[str, str]] = []
    for proj in projections:
        branch_nodes, branch_edges = _projection_nodes(proj, exported[proj.post].gain, names, disc, taken)
        nodes.update(branch_nodes)
        edges.extend(branch_edges)
    for out, name in _output_map(g, outputs, exported).items():
        if isinstance(exported[name].node, nir_lib.Output):
            continue  # an α = 0 readout is an Output already
        out = _unique(str(out), taken)
        nodes[out] = nir_lib.Output(output_type=np.array([populations[name].size]))
        edges.append((names[name], out))
    result = nir_lib.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    result.check_types()
    if path is not None:
        nir_lib.write(path, result)
    return result


__all__ = ["RESISTANCES", "NIRExportWarning", "to_nir"]
