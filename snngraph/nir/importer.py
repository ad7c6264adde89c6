"""NIR → snngraph: :func:`from_nir`.

The NIR graph is flattened (:mod:`snngraph.nir.subgraphs`) and every node converted
(:mod:`snngraph.nir.converters`): neuron nodes and inputs become populations, stateless nodes
maps of the :class:`~snngraph.nir.signals.Signal` between them.  Walking back from each
population through the stateless nodes gives its input current as a sum of delayed population
outputs; each term becomes one snngraph edge (the target's gain folded into the weights), an
undelayed constant the target's ``bias`` and a delayed one a current from the bias input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from snngraph.graph import Graph
from snngraph.nir.converters import Population, Synapse, convert
from snngraph.nir.dependency import nir_module
from snngraph.nir.discretisation import Discretisation
from snngraph.nir.paths import Paths
from snngraph.nir.signals import BiasKey, Signal
from snngraph.nir.subgraphs import FlatEdges, FlatNodes, flatten

if TYPE_CHECKING:
    import nir

IMPORT_RESETS = ("zero", "subtract")
CYCLE_BIASES = ("start", "feedback")

Edges = dict[str, dict[str, dict[int, Paths]]]  # post → pre → delay → κ·M [post, pre]
Constants = dict[str, dict[BiasKey, np.ndarray]]  # post → (carrier, delay) → κ·b [post]


@dataclass
class _Reader:
    """Walks a flattened NIR graph: populations, synapses and the signals between them."""

    nodes: FlatNodes
    edges: FlatEdges
    disc: Discretisation
    populations: dict[str, Population] = field(default_factory=dict)
    synapses: dict[str, Synapse] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    signals: dict[str, Signal] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    predecessors: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, (node, role) in self.nodes.items():
            if role == "Output":
                self.outputs.append(name)
                continue
            converted = convert(name, node, role, self.disc)
            if isinstance(converted, Population):
                self.populations[name] = converted
            else:
                self.synapses[name] = converted
        self.predecessors = {name: [] for name in self.nodes}
        for pre, post, edge in self.edges:
            if self.nodes[pre][1] == "Output":
                raise ValueError(f"edge {edge} leaves output {pre!r}; an Output node ends the graph")
            if self.nodes[post][1] == "Input":
                raise ValueError(f"edge {edge} enters input {post!r}; an Input node receives no edges")
            self.predecessors[post].append((pre, edge))

    def signal_out(self, name: str) -> Signal:
        """What node ``name`` emits, in terms of population outputs."""
        if name in self.populations:
            population = self.populations[name]
            return Signal.source(name, population.size, population.shape)
        if name not in self.signals:
            if name in self.pending:
                cycle = " -> ".join(map(repr, [*self.pending[self.pending.index(name) :], name]))
                raise ValueError(
                    f"cycle {cycle} passes through no neuron node; a NIR cycle needs a neuron "
                    "(LIF, LI, IF, I, Threshold, CubaLIF, CubaLI) to hold its state"
                )
            self.pending.append(name)
            synapse = self.synapses[name]
            self.signals[name] = synapse.apply(self.signal_in(name, synapse.in_size))
            self.pending.pop()
        return self.signals[name]

    def signal_in(self, name: str, size: int | None) -> Signal:
        """The sum of what enters ``name``; every edge must bring ``size`` values."""
        total = None
        for pre, edge in self.predecessors[name]:
            signal = self.signal_out(pre)
            expected = size if size is not None else (total.size if total is not None else signal.size)
            if signal.size != expected:
                raise ValueError(
                    f"edge {edge}: {pre!r} gives {signal.size} values but {name!r} takes {expected}; "
                    "fix the weight shapes or the edge"
                )
            total = signal if total is None else total + signal
        if total is None:
            if size is None:
                raise ValueError(f"node {name!r} receives no edge, so its size is unknown; connect it or remove it")
            return Signal(size)
        return total


def from_nir(
    graph_or_path: nir.NIRGraph | str | PathLike,
    *,
    dt: float,
    decay: str = "exp",
    input_scale: str = "1-alpha",
    synapse_scale: str | None = None,
    bias_input: str | None = None,
    reset: str = "zero",
    cycle_bias: str = "start",
    delay_tolerance: float = 1e-6,
) -> Graph:
    """Import a NIR graph (or a ``.nir`` file, read with ``nir.read``) as a :class:`Graph`.

    ``dt``, ``decay``, ``input_scale`` and ``synapse_scale`` choose the discretisation
    (:class:`~snngraph.nir.Discretisation`).  Stateless chains between neuron nodes (``Linear``,
    ``Affine``, ``Scale``, ``Delay``, ``Flatten``, subgraph ports) become one snngraph edge per
    pair of populations, with the chains' weights multiplied out, the target's gain κ folded in,
    and one delay per synapse; several chains into a node sum.  A chain through ``Conv1d``/
    ``Conv2d``/``SumPool2d``/``AvgPool2d`` keeps its structure: exactly one convolution or
    pooling is a ``conv``/``pool`` edge, one weighted node (kernel or matrix) with poolings is a
    shared edge that trains that weight (docs/nir.md, "Convolutions, pooling and shapes").
    Neuron parameters and inputs shaped ``(C, L)``/``(C, H, W)`` give the population its shape
    (C order); a convolution's bias becomes the target's bias.  A cycle without a ``Delay`` node
    (snnTorch's ``RLeaky``/``RSynaptic``, Rockpool's recurrent subgraphs) reads its feedback from
    the previous step: the edge that closes it in a depth-first walk from the inputs gets delay 1.

    ``CubaLIF``/``CubaLI`` become ``lif``/``li`` populations with ``alpha_syn``, ``v_leak`` is
    kept as ``v_leak``, and an ``Affine`` bias that reaches a neuron node undelayed becomes the
    node's ``bias`` (``κ·b``; with a synaptic current it enters J, as NIR's input does).  A bias
    that arrives late, behind a ``Delay`` of d steps (from step d on) or, with
    ``cycle_bias="feedback"``, with the feedback of a cycle (from step 1 on: nirtorch's executor,
    which Norse's ``from_nir`` runs, reads the feedback chain's whole output, bias included, from
    the previous step), needs ``bias_input="<name>"``: an input population of size 1 added after
    the NIR inputs, which must be fed with ones.  With ``cycle_bias="start"`` the bias of a
    feedback chain is there from step 0, as in snnTorch's own ``RSynaptic``.  A bias that an
    ``Affine`` computes from several populations at once does not travel with a feedback.

    ``reset`` is the snngraph reset of ``LIF``/``IF``/``CubaLIF`` nodes: ``"zero"`` (what NIR's
    reset-to-0 means) or ``"subtract"``, an explicit override for files whose writer says
    reset-to-0 for a subtracting neuron (snnTorch's default ``Leaky``/``Synaptic``).

    An ``Output`` fed straight by a neuron node names that population; any other ``Output``
    becomes an ``li`` population with α = 0 (U[t] = I[t] + bias, an exact affine readout).
    ``result.nx.graph["nir_outputs"]`` maps each ``Output`` to its population.  Inputs are
    added in the NIR node order (``nir.read`` returns them sorted by name), so feed the model
    a dict ``{input name: [T, B, size]}``.
    """
    nir_lib = nir_module()
    root = (
        nir_lib.read(graph_or_path, type_check=False) if isinstance(graph_or_path, (str, PathLike)) else graph_or_path
    )
    if not isinstance(root, nir_lib.NIRGraph):
        raise TypeError(f"from_nir takes a nir.NIRGraph or a path to a .nir file, got {type(root).__name__}")
    if reset not in IMPORT_RESETS:
        raise ValueError(f"unknown reset {reset!r}; choose one of {IMPORT_RESETS}")
    if cycle_bias not in CYCLE_BIASES:
        raise ValueError(f"unknown cycle_bias {cycle_bias!r}; choose one of {CYCLE_BIASES}")
    disc = Discretisation(dt, decay, input_scale, delay_tolerance, synapse_scale)
    reader = _Reader(*flatten(root, nir_lib), disc)
    populations = {name: replace(p, reset=reset) if p.reset == "zero" else p for name, p in reader.populations.items()}
    currents = {name: reader.signal_in(name, p.size) for name, p in populations.items() if p.kind != "input"}
    nir_outputs = _outputs(reader, populations, currents)
    edges, constants = _synapses(populations, currents)
    _shape_populations(populations, currents, edges)
    for pre, post in _close_zero_delay_cycles(edges, populations):
        if cycle_bias == "feedback" and (pre, 0) in constants[post]:
            constants[post][pre, 1] = constants[post].pop((pre, 0))
    bias, delayed = _split_constants(constants, currents, bias_input)
    result = _build(populations, edges, bias, delayed, bias_input)
    result.nx.graph["nir_outputs"] = nir_outputs
    return result


def _outputs(reader: _Reader, populations: dict[str, Population], currents: dict[str, Signal]) -> dict[str, str]:
    """Output name → population; an Output that shows no population unchanged gets an α = 0
    readout of its own (added to ``populations`` and ``currents``)."""
    outputs = {}
    for name in reader.outputs:
        if not reader.predecessors[name]:
            continue
        signal = reader.signal_in(name, None)
        source = _shown_population(signal, populations)
        if source is None:
            populations[name] = Population.stateless("li", np.ones(signal.size), signal.shape)
            currents[name] = signal
            source = name
        outputs[name] = source
    return outputs


def _shown_population(signal: Signal, populations: Mapping[str, Population]) -> str | None:
    """The neuron population that ``signal`` is, unchanged and undelayed, if any."""
    if len(signal.terms) != 1 or signal.bias:
        return None
    (((source, delay), paths),) = signal.terms.items()
    same = paths.identity or (not paths.structured and np.array_equal(paths.toarray(), np.eye(signal.size)))
    unchanged = delay == 0 and same
    return source if unchanged and populations[source].kind != "input" else None


def _synapses(populations: dict[str, Population], currents: dict[str, Signal]) -> tuple[Edges, Constants]:
    """Per target ``{source: {delay: κ·M}}`` and its constants ``{(carrier, delay): κ·b}``."""
    edges: Edges = {}
    constants: Constants = {}
    for post, signal in currents.items():
        target = populations[post]
        for (pre, delay), paths in signal.terms.items():
            if populations[pre].kind == "li":
                raise ValueError(
                    f"node {pre!r} (a non-spiking readout in snngraph) feeds {post!r}; an 'li' "
                    "population cannot be presynaptic: read it out through an Output instead"
                )
            edges.setdefault(post, {}).setdefault(pre, {})[delay] = paths.scaled_rows(target.gain)
        constants[post] = {key: target.gain * vector for key, vector in signal.bias.items()}
    return edges, constants


def _split_constants(
    constants: Constants, currents: Mapping[str, Signal], bias_input: str | None
) -> tuple[dict[str, np.ndarray], dict[str, dict[int, np.ndarray]]]:
    """The populations' own ``bias`` (the undelayed constants) and the delayed constants
    ``{post: {delay: [post]}}`` that need the bias input."""
    bias: dict[str, np.ndarray] = {}
    delayed: dict[str, dict[int, np.ndarray]] = {}
    for post, parts in constants.items():
        late: dict[int, np.ndarray] = {}
        for (_, delay), vector in parts.items():
            if delay == 0:
                bias[post] = bias.get(post, 0.0) + vector
            else:
                late[delay] = late.get(delay, 0.0) + vector
        late = {delay: vector for delay, vector in late.items() if np.any(vector)}
        if late and bias_input is None:
            origin = currents[post].bias_nodes[0]
            raise ValueError(
                f"node {origin!r} puts a constant current into {post!r} that starts after step 0 "
                "(an Affine bias behind a Delay, or on a feedback with cycle_bias='feedback'), which a "
                "population bias cannot express; pass bias_input='<name>' to add an input population "
                "of size 1 fed with ones"
            )
        if late:
            delayed[post] = late
    return bias, delayed


def _close_zero_delay_cycles(edges: Edges, populations: dict[str, Population]) -> set[tuple[str, str]]:
    """A cycle with no delay reads the previous step: the zero-delay synapses of the edge that
    closes it (depth-first from the inputs) get delay 1.  Returns the edges that were closed."""
    order = sorted(populations, key=lambda name: populations[name].kind != "input")
    zero_hops = {pre: [post for post in edges if 0 in edges[post].get(pre, {})] for pre in order}
    back = _back_edges(order, zero_hops)
    for pre, post in back:
        terms = edges[post][pre]
        matrix = terms.pop(0)
        terms[1] = terms[1] + matrix if 1 in terms else matrix
    return back


def _back_edges(order: Sequence[str], successors: Mapping[str, Sequence[str]]) -> set[tuple[str, str]]:
    """Edges that close a cycle in a depth-first traversal visiting roots in ``order``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    back = set()
    for root in order:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(successors.get(root, ())))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(successors.get(child, ()))))
    return back


def _build(
    populations: dict[str, Population],
    edges: Edges,
    bias: Mapping[str, np.ndarray],
    delayed: Mapping[str, dict[int, np.ndarray]],
    bias_input: str | None,
) -> Graph:
    """The snngraph Graph: NIR inputs, the bias input, neurons, then edges."""
    result = Graph()
    for name, p in populations.items():
        if p.kind == "input":
            result.add_input(name, p.shape or p.size)
    if delayed:
        if bias_input in populations:
            raise ValueError(f"bias_input {bias_input!r} is also a NIR node name; choose another name")
        result.add_input(bias_input, 1)
    for name, p in populations.items():
        params = {"alpha": p.alpha, "bias": bias.get(name, 0.0), "alpha_syn": p.alpha_syn, "v_leak": p.v_leak}
        if p.kind == "lif":
            result.add_lif(name, p.shape or p.size, theta=p.theta, reset=p.reset, **params)
        elif p.kind == "li":
            result.add_li(name, p.shape or p.size, **params)
    for post, sources in edges.items():
        for pre, terms in sources.items():
            if any(paths.structured for paths in terms.values()):
                _structured_edge(result, pre, post, terms)
            else:
                weight, delay = _projection({d: paths.toarray() for d, paths in terms.items()})
                result.connect(pre, post, weight=weight, delay=delay)
    for post, late in delayed.items():
        weight, delay = _projection({d: vector[:, None] for d, vector in late.items()})
        result.connect(bias_input, post, weight=weight, delay=delay)
    return result


def _projection(terms: dict[int, np.ndarray]) -> tuple[np.ndarray | sp.coo_array, int | np.ndarray]:
    """One snngraph edge from ``{delay: [post, pre] matrix}``: dense for a single delay, else
    sparse with one synapse per nonzero entry and delay."""
    if len(terms) == 1:
        ((delay, matrix),) = terms.items()
        return matrix, delay
    rows, cols, values, delays = [], [], [], []
    for delay, matrix in sorted(terms.items()):
        r, c = np.nonzero(matrix)
        rows.append(r)
        cols.append(c)
        values.append(matrix[r, c])
        delays.append(np.full(r.size, delay, dtype=np.int64))
    shape = next(iter(terms.values())).shape
    weight = sp.coo_array((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=shape)
    return weight, np.concatenate(delays)


def _shape_populations(populations: dict[str, Population], currents: Mapping[str, Signal], edges: Edges) -> None:
    """A flat population takes the shape of the values it receives (a convolution's output, not
    one flattened since), and a flat population that a convolution or pooling reads the shape it
    has there."""
    for name, signal in currents.items():
        if populations[name].shape is None and signal.shape is not None:
            populations[name] = replace(populations[name], shape=signal.shape)
    for sources in edges.values():
        for pre, terms in sources.items():
            for paths in terms.values():
                if paths.conv is not None and populations[pre].shape is None:
                    populations[pre] = replace(populations[pre], shape=paths.conv.in_shape)


def _structured_edge(result: Graph, pre: str, post: str, terms: Mapping[int, Paths]) -> None:
    """The edge of a chain through a convolution or pooling: a conv or pool edge when it is exactly
    one (the target's gain constant per output channel, to rounding: folded into the kernel; 1: a
    pooling), else a shared edge with one synapse per path, which reads the chain's one weighted
    node (its kernel or matrix, the edge's trained parameter) times the path's fixed factors; a
    chain with several weighted nodes (multiplied out) or none (fixed) is a sparse edge of the
    summed paths."""
    if len(terms) == 1:
        ((delay, paths),) = terms.items()
        spec = paths.conv
        if spec is not None and spec.pool is None:
            channel = paths.rows // int(np.prod(spec.out_shape[1:]))
            factor = np.zeros(spec.out_channels)
            factor[channel] = paths.scale
            if np.allclose(factor[channel], paths.scale, rtol=1e-12, atol=0):
                kernel = paths.param * factor.reshape((-1,) + (1,) * (paths.param.ndim - 1))
                geometry = {"stride": spec.stride, "padding": spec.padding_attribute(), "dilation": spec.dilation}
                result.connect_conv(pre, post, kernel=kernel, groups=spec.groups, delay=delay, **geometry)
                return
        if spec is not None and np.allclose(paths.scale, spec.value, rtol=1e-12, atol=0):  # a gain 1 (to rounding)
            geometry = {"stride": spec.stride, "padding": spec.padding_attribute()}
            result.connect_pool(pre, post, kind=spec.pool, kernel_size=spec.kernel_size, delay=delay, **geometry)
            return
    shape = next(iter(terms.values())).shape
    rows, cols, delays = (
        np.concatenate(a) for a in zip(*(_synapse_arrays(d, p) for d, p in terms.items()), strict=True)
    )
    params = {id(paths.param) for paths in terms.values() if not paths.free}
    tied = all(paths.param is not None and not paths.free for paths in terms.values()) and len(params) == 1
    if tied:  # one synapse per path: the weight it reads there and its fixed factors
        param = next(iter(terms.values())).param
        index = np.concatenate([paths.index for paths in terms.values()])
        scale = np.concatenate([paths.scale for paths in terms.values()])
        shared = sp.coo_array((index, (rows, cols)), shape=shape)
        result.connect(pre, post, weight=param, shared=shared, scale=scale, delay=delays)
        return
    values = np.concatenate([paths.weights() for paths in terms.values()])
    keys, inverse = np.unique(np.stack([rows, cols, delays]), axis=1, return_inverse=True)
    summed = np.bincount(inverse.reshape(-1), weights=values, minlength=keys.shape[1])
    weight = sp.coo_array((summed, (keys[0], keys[1])), shape=shape)
    trainable = any(paths.trainable for paths in terms.values())
    result.connect(pre, post, weight=weight, delay=keys[2], trainable=trainable)


def _synapse_arrays(delay: int, paths: Paths) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return paths.rows, paths.cols, np.full(paths.rows.size, delay, dtype=np.int64)


__all__ = ["CYCLE_BIASES", "IMPORT_RESETS", "from_nir"]
