"""Compile a graph into the single layer view (docs/design.md, "Compile and retiming").

Pure steps, each a function: :func:`read_graph` (validate every node and edge) →
:func:`compute_lags` (retime zero-delay hops) → :func:`emit` (flat synapse arrays).

Retiming.  A zero-delay hop between neuron populations (the layer-by-layer semantics of
snnTorch) cannot exist in one recurrent layer, where every hop costs a step.  Each population
``v`` gets a lag ``r(v) ≥ 0`` (inputs ``0``) and each synapse ``u → v`` of delay ``d`` is compiled
with ``d' = d + r(v) − r(u)``, which must be ``≥ 1`` between neurons.  That is the system of
difference constraints ``r(u) − r(v) ≤ d_min(u → v) − 1``; its smallest solution is
``r(v) = −dist(v)``, the shortest-path distance from a virtual source joined to every
population by a 0-weight edge, over edges ``u → v`` weighted ``d_min − 1`` (Bellman–Ford).  A
negative cycle is a loop with less total delay than hops: no single layer reproduces it.
"""

from __future__ import annotations

from itertools import accumulate, pairwise
from typing import Any

import networkx as nx
import numpy as np
import torch

from snngraph.delays import tap_delays, window_starts
from snngraph.graph import (
    Graph,
    PopulationSpec,
    ProjectionSpec,
    check_endpoints,
    population_spec,
    projection_spec,
)
from snngraph.kinds import NAMED
from snngraph.network import CompiledNetwork, EdgeInfo, PopulationInfo, neuron_table

ZERO_DELAY_MODES = ("retime", "promote", "error")


def read_graph(graph: Graph | nx.DiGraph) -> tuple[dict[Any, PopulationSpec], list[ProjectionSpec]]:
    """Validate nodes and edges; return the populations (in insertion order) and projections."""
    g = graph.nx if isinstance(graph, Graph) else graph
    if not isinstance(g, nx.DiGraph) or g.is_multigraph():
        raise TypeError(f"expected a snngraph.Graph or networkx.DiGraph, got {type(graph).__name__}")
    populations = {name: population_spec(name, attrs) for name, attrs in g.nodes(data=True)}
    if not any(p.is_neuron for p in populations.values()):
        raise ValueError("the graph has no neurons; add a population with add_lif or add_li")
    projections = []
    for pre, post, attrs in g.edges(data=True):
        check_endpoints(pre, post, populations[pre].kind, populations[post].kind)
        pre_spec, post_spec = populations[pre], populations[post]
        shapes = (pre_spec.shape, post_spec.shape)
        projections.append(
            projection_spec(pre, post, attrs, pre_spec.size, post_spec.size, shapes, not pre_spec.is_neuron)
        )
    return populations, projections


def _is_recurrent(projection: ProjectionSpec, populations: dict[Any, PopulationSpec]) -> bool:
    return populations[projection.pre].is_neuron


def compute_lags(
    populations: dict[Any, PopulationSpec], projections: list[ProjectionSpec], zero_delay: str = "retime"
) -> dict[Any, int]:
    """Lag per population (inputs 0) so that every compiled neuron-to-neuron delay is ≥ 1."""
    if zero_delay not in ZERO_DELAY_MODES:
        raise ValueError(f"unknown zero_delay {zero_delay!r}; choose one of {ZERO_DELAY_MODES}")
    lags = dict.fromkeys(populations, 0)
    zero_hops = [p for p in projections if _is_recurrent(p, populations) and p.min_delay == 0]
    if not zero_hops or zero_delay == "promote":
        return lags
    if zero_delay == "error":
        p = zero_hops[0]
        raise ValueError(
            f"edge {p.pre!r} -> {p.post!r} has zero-delay synapses between neurons; give it delay >= 1 "
            "or compile with zero_delay='retime' (exact) or 'promote' (zero becomes one step)"
        )
    source = object()
    constraints = nx.DiGraph()
    constraints.add_edges_from((source, name, {"weight": 0}) for name, p in populations.items() if p.is_neuron)
    for p in projections:
        if _is_recurrent(p, populations) and p.n_synapses:  # an empty projection constrains nothing
            weight = p.min_delay - 1
            if constraints.has_edge(p.pre, p.post):
                weight = min(weight, constraints.edges[p.pre, p.post]["weight"])
            constraints.add_edge(p.pre, p.post, weight=weight)
    try:
        dist = nx.single_source_bellman_ford_path_length(constraints, source)
    except nx.NetworkXUnbounded:
        cycle = nx.find_negative_cycle(constraints, source)
        hops = list(pairwise(cycle))
        total = sum(constraints.edges[u, v]["weight"] + 1 for u, v in hops)
        path = " -> ".join(repr(n) for n in cycle)
        raise ValueError(
            f"cycle {path} has total delay {total} over {len(hops)} hops between neurons; a single "
            f"recurrent layer needs at least one step per hop: add {len(hops) - total} step(s) of delay "
            "to its edges, or compile with zero_delay='promote'"
        ) from None
    lags.update({name: -int(d) for name, d in dist.items() if name is not source})
    return lags


def emit(
    populations: dict[Any, PopulationSpec],
    projections: list[ProjectionSpec],
    lags: dict[Any, int],
    zero_delay: str = "retime",
) -> CompiledNetwork:
    """Flatten populations and retimed projections into a :class:`CompiledNetwork`."""
    neuron_pops, input_pops = [], []
    neurons = inputs = 0
    start = {}
    for name, p in populations.items():
        if p.is_neuron:
            neuron_pops.append(PopulationInfo(name, p.kind, neurons, neurons + p.size, lags[name], p.model, p.shape))
            start[name], neurons = neurons, neurons + p.size
        else:
            input_pops.append(PopulationInfo(name, p.kind, inputs, inputs + p.size, 0, shape=p.shape))
            start[name], inputs = inputs, inputs + p.size
    per_neuron = [p for p in populations.values() if p.is_neuron]
    names = [name for name in NAMED if any(name in p.params for p in per_neuron)]
    parameters = {name: np.zeros(neurons) for name in names}
    for p in per_neuron:
        for name, values in p.params.items():
            parameters[name][start[p.name] : start[p.name] + p.size] = values
    generic = {p.name: p.generic for p in per_neuron if p.generic is not None}

    groups: dict[str, list[ProjectionSpec]] = {"input": [], "recurrent": []}
    for proj in projections:
        groups["recurrent" if _is_recurrent(proj, populations) else "input"].append(proj)

    sizes = {target: [p.values.size for p in group] for target, group in groups.items()}
    first_value = {"input": 0, "recurrent": sum(sizes["input"])}  # parameters in edge order

    def flat(target: str) -> tuple[list[EdgeInfo], dict[str, np.ndarray]]:
        """The ``"input"`` or ``"recurrent"`` synapses, edge after edge, in a few vectorised
        operations: ``post``, ``pre``, ``delay`` and the ``index`` into the edge's parameter.  An
        edge that learns its delays compiles its taps, tap-major (:mod:`snngraph.delays`)."""
        group = groups[target]
        counts = [p.n_synapses * p.taps for p in group]
        param_starts = list(accumulate(sizes[target], initial=first_value[target]))[:-1]
        infos = [
            EdgeInfo(
                p.pre, p.post, target, stop - n, stop, p.shape, p.dense, p.kind, p.values.shape, at, p.trainable,
                p.conv, p.delays,
            )
            for p, n, stop, at in zip(group, counts, accumulate(counts), param_starts, strict=True)
        ]  # fmt: skip

        def column(values: list[np.ndarray], offsets: list[int], dtype: type) -> np.ndarray:
            if not group:
                return np.zeros(0, dtype)
            return np.concatenate(values).astype(dtype) + np.repeat(np.array(offsets, dtype), counts)

        delay = column([_tap_delays(p) for p in group], [lags[p.post] - lags[p.pre] for p in group], np.int64)
        if target == "recurrent" and zero_delay == "promote":
            delay = np.maximum(delay, 1)
        return infos, {
            "post": column([np.tile(p.post_index, p.taps) for p in group], [start[p.post] for p in group], np.int64),
            "pre": column([np.tile(p.pre_index, p.taps) for p in group], [start[p.pre] for p in group], np.int64),
            "delay": delay,
            "index": column([np.tile(p.index, p.taps) for p in group], [0] * len(group), np.int64),
        }

    def scale(target: str) -> np.ndarray | None:
        """The synapses' fixed factors, or ``None`` when every one is 1."""
        group = groups[target]
        if all(p.scale is None for p in group):
            return None
        factors = [np.ones(p.n_synapses) if p.scale is None else p.scale for p in group]
        return np.concatenate([np.tile(f, p.taps) for f, p in zip(factors, group, strict=True)])

    in_edges, ins = flat("input")
    rec_edges, rec = flat("recurrent")
    ordered = [p for target in ("input", "recurrent") for p in groups[target]]
    values = [p.values.reshape(-1) for p in ordered]
    delay_values = None
    if any(p.delays is not None for p in ordered):
        delay_values = np.concatenate(
            [np.full(p.values.size, np.nan) if p.delays is None else p.delay_values.reshape(-1) for p in ordered]
        )
    return CompiledNetwork(
        populations=tuple(neuron_pops),
        inputs=tuple(input_pops),
        edges=tuple(in_edges + rec_edges),
        neurons=neuron_table(tuple(neuron_pops), parameters, generic),
        **{f"in_{name}": column for name, column in ins.items()},
        **{f"rec_{name}": column for name, column in rec.items()},
        values=np.concatenate(values).astype(np.float64) if values else np.zeros(0),
        parameters=parameters,
        in_scale=scale("input"),
        rec_scale=scale("recurrent"),
        delay_values=delay_values,
    )


def _tap_delays(projection: ProjectionSpec) -> np.ndarray:
    """The delays of ``projection``'s compiled synapses (before the lags): its taps' when it learns
    its delays (:func:`snngraph.delays.tap_delays`), else its own."""
    if projection.delays is None:
        return projection.delay
    starts = window_starts(torch.from_numpy(projection.delay_values.reshape(-1)), projection.delays)
    return tap_delays(starts, torch.from_numpy(projection.index), projection.taps, 0).numpy()


def compile(graph: Graph | nx.DiGraph, zero_delay: str = "retime") -> CompiledNetwork:
    """Compile ``graph`` into one recurrent layer with delays.

    ``zero_delay`` says what a zero-delay hop between neuron populations becomes: ``"retime"``
    (default) adds lags so the layer reproduces the layered network exactly, ``"promote"``
    makes every such synapse a one-step synapse (the plain rule of the blog post 'Backpropagation
    for a recurrent LIF layer', docs/design.md, References), ``"error"`` refuses.
    """
    populations, projections = read_graph(graph)
    lags = compute_lags(populations, projections, zero_delay)
    return emit(populations, projections, lags, zero_delay)
