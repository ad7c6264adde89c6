"""Import NIR graphs into snngraph and export snngraph networks to NIR.

NIR (the Neuromorphic Intermediate Representation, ``pip install snngraph[nir]``) describes a
network in continuous time and stores no timestep.  Its leaky neurons follow

    τ·dv/dt = (v_leak − v) + R·I                       (nir.LIF, nir.LI)
    dv/dt   = R·I                                       (nir.IF, nir.I)

and spike/reset as ``z = H(v − v_threshold)``, ``v ← v_reset``.  snngraph runs DESIGN §1:

    U[t] = α·U[t−1]·(1 − S[t−1]) + I[t],   S[t] = H(U[t] − θ)     (lif, reset="zero")
    U[t] = α·U[t−1] + I[t]                                        (li)

where I[t] is the plain weighted sum of the presynaptic signals.  A :class:`Discretisation`
says how one becomes the other for a step ``dt``:

    α = exp(−dt/τ)            decay="exp"      (exact for the leak)
    α = 1 − dt/τ              decay="euler"    (forward Euler)

    κ = R·(1 − α)             input_scale="1-alpha"   (exact for an input held over the step)
    κ = R·dt/τ                input_scale="dt/tau"    (forward Euler)
    κ = R                     input_scale="r"         (the input charges the membrane directly)

(for ``IF``/``I``, which have no τ, ``κ = R·dt`` for the first two and ``κ = R`` for "r").  Every
synaptic weight into a node is multiplied by the node's κ on import and divided by it on
export; a leak towards ``v_leak`` is the constant current ``(1 − α)·v_leak``.  NIR's
reset-to-``v_reset`` is snngraph's ``"zero"`` reset when ``v_reset = 0``: resetting right after
the spike (NIR, Norse) or one step later (snngraph) gives the same spikes, with snngraph's
membrane the pre-reset value.  Delays are in time units: ``steps = delay / dt``.

See ``docs/nir.md`` for the node table and the recipes that reproduce snnTorch and Norse.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import scipy.sparse as sp
import torch

from snngraph._optional import require
from snngraph.compiler import read_graph
from snngraph.graph import Graph, PopulationSpec, ProjectionSpec
from snngraph.module import SNN

if TYPE_CHECKING:
    import nir

DECAYS = ("exp", "euler")
INPUT_SCALES = ("1-alpha", "dt/tau", "r")
RESISTANCES = ("absorb", "unit")
IMPORT_RESETS = ("zero", "subtract")


def _nir() -> Any:
    return require("nir", "snngraph's NIR converters", "nir")


class NIRExportWarning(UserWarning):
    """:func:`to_nir` wrote a model that NIR can say only approximately (``strict=False``)."""


@dataclass(frozen=True)
class Discretisation:
    """How NIR's continuous time becomes snngraph steps of length ``dt`` (module doc).

    ``decay``: ``"exp"`` (α = exp(−dt/τ)) or ``"euler"`` (α = 1 − dt/τ).  ``input_scale``:
    ``"1-alpha"`` (κ = R·(1 − α)), ``"dt/tau"`` (κ = R·dt/τ) or ``"r"`` (κ = R).
    ``delay_tolerance``: how far (in steps) ``delay / dt`` may lie from an integer.
    """

    dt: float
    decay: str = "exp"
    input_scale: str = "1-alpha"
    delay_tolerance: float = 1e-6

    def __post_init__(self) -> None:
        if isinstance(self.dt, bool) or not isinstance(self.dt, (int, float)) or not 0 < self.dt < np.inf:
            raise ValueError(f"dt must be a positive number (the step in NIR's time unit), got {self.dt!r}")
        if self.decay not in DECAYS:
            raise ValueError(f"unknown decay {self.decay!r}; choose one of {DECAYS}")
        if self.input_scale not in INPUT_SCALES:
            raise ValueError(f"unknown input_scale {self.input_scale!r}; choose one of {INPUT_SCALES}")
        if not self.delay_tolerance >= 0:
            raise ValueError(f"delay_tolerance must be >= 0 (steps), got {self.delay_tolerance!r}")

    def alpha(self, node: str, tau: np.ndarray) -> np.ndarray:
        """α per neuron from τ: exp(−dt/τ) or 1 − dt/τ."""
        if np.any(tau <= 0) or not np.all(np.isfinite(tau)):
            raise ValueError(f"node {node!r}: tau must be positive and finite, got {tau}")
        if self.decay == "exp":
            return np.exp(-self.dt / tau)
        ratio = self.dt / tau
        if np.any(ratio > 1):
            raise ValueError(
                f"node {node!r}: dt/tau = {ratio.max():g} > 1 makes the forward-Euler decay "
                "1 - dt/tau negative; use a smaller dt or decay='exp'"
            )
        return 1 - ratio

    def tau(self, population: Any, alpha: np.ndarray) -> np.ndarray:
        """τ per neuron from α, the inverse of :meth:`alpha`."""
        exp = self.decay == "exp"
        valid = (alpha > 0 if exp else alpha >= 0) & (alpha < 1)  # forward Euler reaches α = 0 at τ = dt
        if not np.all(valid):
            bounds = "0 < alpha < 1" if exp else "0 <= alpha < 1"
            raise ValueError(
                f"population {population!r}: a NIR leaky node with decay={self.decay!r} needs "
                f"{bounds} for every neuron, got alpha in [{alpha.min():g}, {alpha.max():g}]; "
                "alpha = 0 (nir.Threshold / a plain output) and alpha = 1 (nir.IF / nir.I) export "
                "only when the whole population shares it"
            )
        return -self.dt / np.log(alpha) if exp else self.dt / (1 - alpha)

    def leaky_scale(self, tau: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """κ/R of a leaky node (LIF, LI): 1 − α, dt/τ or 1."""
        scales = {"1-alpha": 1 - alpha, "dt/tau": self.dt / tau, "r": np.ones_like(tau)}
        return scales[self.input_scale]

    def integrator_scale(self, size: int) -> np.ndarray:
        """κ/R of an integrator (IF, I): dt, or 1 for input_scale="r"."""
        return np.full(size, 1.0 if self.input_scale == "r" else self.dt)

    def steps(self, node: str, delay: np.ndarray) -> np.ndarray:
        """Integer delays in steps, ``delay / dt``; an error when they are not integers."""
        steps = delay / self.dt
        rounded = np.round(steps)
        if not np.all(np.isfinite(steps)) or np.any(np.abs(steps - rounded) > self.delay_tolerance):
            worst = float(np.max(np.abs(steps - rounded))) if np.all(np.isfinite(steps)) else np.inf
            raise ValueError(
                f"node {node!r}: delay / dt is not an integer number of steps (off by up to "
                f"{worst:g} steps with dt={self.dt:g}); choose a dt that divides every delay "
                "or raise delay_tolerance"
            )
        if np.any(rounded < 0):
            raise ValueError(f"node {node!r}: delays must be >= 0, got {delay.min():g}")
        return rounded.astype(np.int64)


# ----------------------------------------------------------------------------------------
# Import: NIR nodes as populations (stateful) or synapses (stateless maps between them)


@dataclass(frozen=True, eq=False)
class _Population:
    """A NIR node that becomes a snngraph population.

    ``gain`` (κ per neuron) multiplies every current into it; ``leak_current`` is the constant
    ``(1 − α)·v_leak`` (zero when ``v_leak = 0``).
    """

    kind: str
    size: int
    alpha: np.ndarray
    theta: np.ndarray
    reset: str
    gain: np.ndarray
    leak_current: np.ndarray


@dataclass
class _Signal:
    """The output of a stateless NIR node as a sum over populations and delays:

        y[t] = Σ_{(p, d)} M_{p,d} · out_p[t − d]  +  Σ_d b_d · [t ≥ d]

    ``terms`` maps (source population, delay in steps) to ``M`` of shape ``[size, source size]``;
    ``bias`` maps a delay to ``b`` of shape ``[size]``; ``bias_nodes`` names the NIR nodes that
    put a bias in (for error messages).
    """

    size: int
    terms: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    bias: dict[int, np.ndarray] = field(default_factory=dict)
    bias_nodes: tuple[str, ...] = ()

    @classmethod
    def source(cls, name: str, size: int) -> _Signal:
        return cls(size, {(name, 0): np.eye(size)})

    def __add__(self, other: _Signal) -> _Signal:
        terms, bias = dict(self.terms), dict(self.bias)
        for key, matrix in other.terms.items():
            terms[key] = terms[key] + matrix if key in terms else matrix
        for delay, vector in other.bias.items():
            bias[delay] = bias[delay] + vector if delay in bias else vector
        return _Signal(self.size, terms, bias, self.bias_nodes + other.bias_nodes)

    def rows(self, map_rows: Callable[[np.ndarray], np.ndarray], size: int) -> _Signal:
        """Apply one linear map to every term ``[size, source size]`` and bias ``[size]``."""
        terms = {key: map_rows(matrix) for key, matrix in self.terms.items()}
        bias = {delay: map_rows(vector) for delay, vector in self.bias.items()}
        return _Signal(size, terms, bias, self.bias_nodes)

    def with_bias(self, node: str, vector: np.ndarray) -> _Signal:
        if not np.any(vector):
            return self
        return self + _Signal(self.size, {}, {0: vector}, (node,))

    def delayed(self, steps: np.ndarray) -> _Signal:
        """Row ``i`` delayed by ``steps[i]``: terms and biases split by distinct delay."""
        result = _Signal(self.size, {}, {}, self.bias_nodes)
        for k in np.unique(steps):
            part = self.rows(lambda a, mask=steps == k: (a.T * mask).T, self.size)
            terms = {(src, d + int(k)): m for (src, d), m in part.terms.items()}
            bias = {d + int(k): b for d, b in part.bias.items()}
            result = result + _Signal(self.size, terms, bias)
        return result


@dataclass(frozen=True)
class _Synapse:
    """A stateless NIR node: ``in_size`` values in (None: any), ``apply`` maps the summed input."""

    in_size: int | None
    apply: Callable[[_Signal], _Signal]


def _array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


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
        if not np.all(np.isfinite(a)):
            raise ValueError(f"node {name!r}: {f} contains NaN or inf")
    return [a.reshape(-1) for a in arrays]


def _require_zero(name: str, values: np.ndarray, what: str, why: str) -> None:
    if np.any(values != 0):
        raise ValueError(f"node {name!r}: {what} = {values} is not supported ({why}); set it to 0")


_RESET_WHY = "snngraph resets to 0: reset='zero'"


def _import_lif(name: str, node: Any, disc: Discretisation) -> _Population:
    tau, r, v_leak, theta, v_reset = _vectors(name, node, "tau", "r", "v_leak", "v_threshold", "v_reset")
    _require_zero(name, v_reset, "v_reset", _RESET_WHY)
    alpha = disc.alpha(name, tau)
    gain = r * disc.leaky_scale(tau, alpha)
    return _Population("lif", tau.size, alpha, theta, "zero", gain, (1 - alpha) * v_leak)


def _import_li(name: str, node: Any, disc: Discretisation) -> _Population:
    tau, r, v_leak = _vectors(name, node, "tau", "r", "v_leak")
    alpha = disc.alpha(name, tau)
    gain = r * disc.leaky_scale(tau, alpha)
    return _Population("li", tau.size, alpha, np.ones(tau.size), "none", gain, (1 - alpha) * v_leak)


def _import_if(name: str, node: Any, disc: Discretisation) -> _Population:
    r, theta, v_reset = _vectors(name, node, "r", "v_threshold", "v_reset")
    _require_zero(name, v_reset, "v_reset", _RESET_WHY)
    n = r.size
    return _Population("lif", n, np.ones(n), theta, "zero", r * disc.integrator_scale(n), np.zeros(n))


def _import_i(name: str, node: Any, disc: Discretisation) -> _Population:
    (r,) = _vectors(name, node, "r")
    n = r.size
    return _Population("li", n, np.ones(n), np.ones(n), "none", r * disc.integrator_scale(n), np.zeros(n))


def _import_threshold(name: str, node: Any, disc: Discretisation) -> _Population:
    """``z = H(x − θ)``: a lif with α = 0 and no reset, U[t] = I[t]."""
    (theta,) = _vectors(name, node, "threshold")
    n = theta.size
    return _Population("lif", n, np.zeros(n), theta, "none", np.ones(n), np.zeros(n))


def _matrix(name: str, node: Any) -> np.ndarray:
    weight = _array(node.weight)
    if weight.ndim != 2:
        raise ValueError(f"node {name!r}: weight must be a 2-D (out, in) matrix, got shape {weight.shape}")
    if not np.all(np.isfinite(weight)):
        raise ValueError(f"node {name!r}: weight contains NaN or inf")
    return weight


def _import_linear(name: str, node: Any, disc: Discretisation) -> _Synapse:
    weight = _matrix(name, node)
    return _Synapse(weight.shape[1], lambda s: s.rows(lambda m: weight @ m, weight.shape[0]))


def _import_affine(name: str, node: Any, disc: Discretisation) -> _Synapse:
    weight = _matrix(name, node)
    bias = _array(node.bias).reshape(-1)
    if bias.shape != (weight.shape[0],) or not np.all(np.isfinite(bias)):
        raise ValueError(
            f"node {name!r}: bias must hold {weight.shape[0]} finite values (one per output), "
            f"got shape {_array(node.bias).shape}"
        )
    linear = _import_linear(name, node, disc)
    return _Synapse(linear.in_size, lambda s: linear.apply(s).with_bias(name, bias))


def _elementwise(name: str, values: np.ndarray, what: str) -> int | None:
    if values.ndim > 1:
        raise ValueError(f"node {name!r}: {what} must be a scalar or a vector, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"node {name!r}: {what} contains NaN or inf")
    return values.size if values.ndim == 1 else None


def _import_scale(name: str, node: Any, disc: Discretisation) -> _Synapse:
    scale = _array(node.scale)
    in_size = _elementwise(name, scale, "scale")
    return _Synapse(in_size, lambda s: s.rows(lambda a: (a.T * scale).T, s.size))


def _import_delay(name: str, node: Any, disc: Discretisation) -> _Synapse:
    delay = _array(node.delay)
    in_size = _elementwise(name, delay, "delay")
    steps = disc.steps(name, delay)
    return _Synapse(in_size, lambda s: s.delayed(np.broadcast_to(steps, (s.size,))))


def _import_identity(name: str, node: Any, disc: Discretisation) -> _Synapse:
    """Subgraph ports (inner Input/Output), nir.Identity and nir.Flatten pass values through."""
    return _Synapse(None, lambda s: s)


NEURON_IMPORTERS: dict[str, Callable[[str, Any, Discretisation], _Population]] = {
    "LIF": _import_lif,
    "LI": _import_li,
    "IF": _import_if,
    "I": _import_i,
    "Threshold": _import_threshold,
}
SYNAPSE_IMPORTERS: dict[str, Callable[[str, Any, Discretisation], _Synapse]] = {
    "Linear": _import_linear,
    "Affine": _import_affine,
    "Scale": _import_scale,
    "Delay": _import_delay,
    "Flatten": _import_identity,
    "Identity": _import_identity,
}
UNSUPPORTED: dict[str, str] = {
    "CubaLIF": "current-based synapses (a synaptic current state per neuron)",
    "CubaLI": "current-based synapses (a synaptic current state per neuron)",
    "Conv1d": "convolutions",
    "Conv2d": "convolutions",
    "AvgPool2d": "pooling",
    "SumPool2d": "pooling",
}
_PORT = "port"  # an Input/Output node inside a subgraph: passes values through


def _flatten(graph: Any, nir_module: Any, prefix: str = "") -> tuple[dict[str, tuple[Any, str]], list]:
    """Nodes of ``graph`` and its subgraphs under flat names ``"G.node"``, and edges between them.

    Returns ``{flat name: (node, role)}`` (role is the NIR type name, or ``"port"`` for the
    Input/Output nodes of subgraphs) and the edges as ``(flat source, flat target, as written)``.
    """
    nodes: dict[str, tuple[Any, str]] = {}
    edges = []
    for name, node in graph.nodes.items():
        flat = prefix + str(name)
        if isinstance(node, nir_module.NIRGraph):
            inner, inner_edges = _flatten(node, nir_module, flat + ".")
            clashes = sorted(set(inner) & set(nodes))
            if clashes:
                raise ValueError(f"subgraph {flat!r}: flat names {clashes} clash with other nodes; rename them")
            nodes.update(inner)
            edges.extend(inner_edges)
            continue
        if flat in nodes:
            raise ValueError(f"node {flat!r} clashes with a node of a subgraph; rename one of them")
        role = type(node).__name__
        nodes[flat] = (node, _PORT if prefix and role in ("Input", "Output") else role)
    for pre, post in graph.edges:
        edge = f"{prefix}{pre} -> {prefix}{post}"
        source = _endpoint(graph, pre, "source", prefix, nir_module, edge)
        target = _endpoint(graph, post, "target", prefix, nir_module, edge)
        edges.append((source, target, edge))
    return nodes, edges


def _endpoint(graph: Any, name: str, end: str, prefix: str, nir_module: Any, edge: str) -> str:
    """Flat name of an edge end: a node, ``"G"`` (a subgraph's single Input/Output) or ``"G.x"``."""
    if name in graph.nodes:
        node = graph.nodes[name]
        if not isinstance(node, nir_module.NIRGraph):
            return prefix + name
        kind = nir_module.Output if end == "source" else nir_module.Input
        ports = [k for k, n in node.nodes.items() if isinstance(n, kind)]
        if len(ports) != 1:
            raise ValueError(
                f"edge {edge}: subgraph {prefix + name!r} has {len(ports)} {kind.__name__} nodes "
                f"({ports}); name one in the edge as '{name}.<node>'"
            )
        return f"{prefix}{name}.{ports[0]}"
    for i, char in enumerate(name):
        head = name[:i]
        if char == "." and isinstance(graph.nodes.get(head), nir_module.NIRGraph):
            return _endpoint(graph.nodes[head], name[i + 1 :], end, f"{prefix}{head}.", nir_module, edge)
    raise ValueError(f"edge {edge}: unknown node {name!r}; the graph has {sorted(graph.nodes)}")


def _input_size(name: str, node: Any) -> int:
    shape = node.input_type.get("input") if isinstance(node.input_type, dict) else None
    if shape is None:
        raise ValueError(f"input {name!r} has no shape; give nir.Input an input_type")
    return int(np.prod(np.asarray(shape, dtype=np.int64)))


@dataclass
class _Reader:
    """Walks a flattened NIR graph: populations, synapses and the signals between them."""

    nodes: dict[str, tuple[Any, str]]
    edges: list[tuple[str, str, str]]
    disc: Discretisation
    populations: dict[str, _Population] = field(default_factory=dict)
    synapses: dict[str, _Synapse] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    signals: dict[str, _Signal] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    predecessors: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, (node, role) in self.nodes.items():
            if role == "Input":
                n = _input_size(name, node)
                self.populations[name] = _Population(
                    "input", n, np.zeros(n), np.ones(n), "none", np.ones(n), np.zeros(n)
                )
            elif role == "Output":
                self.outputs.append(name)
            elif role in NEURON_IMPORTERS:
                self.populations[name] = NEURON_IMPORTERS[role](name, node, self.disc)
            elif role == _PORT:
                self.synapses[name] = _import_identity(name, node, self.disc)
            elif role in SYNAPSE_IMPORTERS:
                self.synapses[name] = SYNAPSE_IMPORTERS[role](name, node, self.disc)
            elif role in UNSUPPORTED:
                raise ValueError(
                    f"node {name!r} is a nir.{role}: snngraph has no {UNSUPPORTED[role]} yet, so it "
                    "cannot be imported exactly; replace it in the source network (or remove it)"
                )
            else:
                known = sorted({"Input", "Output", "NIRGraph", *NEURON_IMPORTERS, *SYNAPSE_IMPORTERS})
                raise ValueError(f"node {name!r} has the unknown NIR type {role!r}; from_nir reads {known}")
        self.predecessors = {name: [] for name in self.nodes}
        for pre, post, edge in self.edges:
            if self.nodes[pre][1] == "Output":
                raise ValueError(f"edge {edge} leaves output {pre!r}; an Output node ends the graph")
            if self.nodes[post][1] == "Input":
                raise ValueError(f"edge {edge} enters input {post!r}; an Input node receives no edges")
            self.predecessors[post].append((pre, edge))

    def signal_out(self, name: str) -> _Signal:
        """What node ``name`` emits, in terms of population outputs."""
        if name in self.populations:
            return _Signal.source(name, self.populations[name].size)
        if name not in self.signals:
            if name in self.pending:
                cycle = " -> ".join(map(repr, [*self.pending[self.pending.index(name) :], name]))
                raise ValueError(
                    f"cycle {cycle} passes through no neuron node; a NIR cycle needs a neuron "
                    "(LIF, LI, IF, I, Threshold) to hold its state"
                )
            self.pending.append(name)
            synapse = self.synapses[name]
            self.signals[name] = synapse.apply(self.signal_in(name, synapse.in_size))
            self.pending.pop()
        return self.signals[name]

    def signal_in(self, name: str, size: int | None) -> _Signal:
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
            return _Signal(size)
        return total


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


def _shown_population(signal: _Signal, populations: Mapping[str, _Population]) -> str | None:
    """The neuron population that ``signal`` is, unchanged and undelayed, if any."""
    if len(signal.terms) != 1 or signal.bias:
        return None
    (((source, delay), matrix),) = signal.terms.items()
    unchanged = delay == 0 and np.array_equal(matrix, np.eye(signal.size))
    return source if unchanged and populations[source].kind != "input" else None


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


def from_nir(
    graph_or_path: nir.NIRGraph | str | PathLike,
    *,
    dt: float,
    decay: str = "exp",
    input_scale: str = "1-alpha",
    bias_input: str | None = None,
    reset: str = "zero",
    delay_tolerance: float = 1e-6,
) -> Graph:
    """Import a NIR graph (or a ``.nir`` file, read with ``nir.read``) as a :class:`Graph`.

    ``dt``, ``decay`` and ``input_scale`` choose the discretisation (:class:`Discretisation`,
    module doc).  Stateless chains between neuron nodes (``Linear``, ``Affine``, ``Scale``,
    ``Delay``, subgraph ports) become one snngraph edge per pair of populations, with the
    chains' weights multiplied out, the target's κ folded in, and one delay per synapse;
    several chains into a node sum.  A cycle without a ``Delay`` node (snnTorch's ``RLeaky``,
    Rockpool's recurrent subgraphs) reads its feedback from the previous step: the edge that
    closes it in a depth-first walk from the inputs gets delay 1.

    Constant currents (an ``Affine`` bias, a leak towards ``v_leak ≠ 0``) need
    ``bias_input="<name>"``: an input population of size 1 added after the NIR inputs, which
    must be fed with ones.  ``reset`` is the snngraph reset of ``LIF``/``IF`` nodes: ``"zero"``
    (what NIR's reset-to-0 means) or ``"subtract"``, an explicit override for files whose
    writer says reset-to-0 for a subtracting neuron (snnTorch's default ``Leaky``).

    An ``Output`` fed straight by a neuron node names that population; any other ``Output``
    becomes an ``li`` population with α = 0 (U[t] = I[t], an exact linear readout).
    ``result.nx.graph["nir_outputs"]`` maps each ``Output`` to its population.  Inputs are
    added in the NIR node order (``nir.read`` returns them sorted by name), so feed the model
    a dict ``{input name: [T, B, size]}``.
    """
    nir_module = _nir()
    root = (
        nir_module.read(graph_or_path, type_check=False)
        if isinstance(graph_or_path, (str, PathLike))
        else graph_or_path
    )
    if not isinstance(root, nir_module.NIRGraph):
        raise TypeError(f"from_nir takes a nir.NIRGraph or a path to a .nir file, got {type(root).__name__}")
    if reset not in IMPORT_RESETS:
        raise ValueError(f"unknown reset {reset!r}; choose one of {IMPORT_RESETS}")
    disc = Discretisation(dt, decay, input_scale, delay_tolerance)
    reader = _Reader(*_flatten(root, nir_module), disc)
    populations = {name: replace(p, reset=reset) if p.reset == "zero" else p for name, p in reader.populations.items()}
    currents = {name: reader.signal_in(name, p.size) for name, p in populations.items() if p.kind != "input"}
    nir_outputs = _outputs(reader, populations, currents)
    edges, constant = _synapses(populations, currents, bias_input)
    _close_zero_delay_cycles(edges, populations)
    result = _build(populations, edges, constant, bias_input)
    result.nx.graph["nir_outputs"] = nir_outputs
    return result


def _outputs(reader: _Reader, populations: dict[str, _Population], currents: dict[str, _Signal]) -> dict[str, str]:
    """Output name → population; an Output that shows no population unchanged gets an α = 0
    readout of its own (added to ``populations`` and ``currents``)."""
    outputs = {}
    for name in reader.outputs:
        if not reader.predecessors[name]:
            continue
        signal = reader.signal_in(name, None)
        source = _shown_population(signal, populations)
        if source is None:
            n = signal.size
            populations[name] = _Population("li", n, np.zeros(n), np.ones(n), "none", np.ones(n), np.zeros(n))
            currents[name] = signal
            source = name
        outputs[name] = source
    return outputs


def _synapses(
    populations: dict[str, _Population], currents: dict[str, _Signal], bias_input: str | None
) -> tuple[dict[str, dict[str, dict[int, np.ndarray]]], dict[str, dict[int, np.ndarray]]]:
    """Per target ``{source: {delay: κ·M}}`` and the constant currents ``{delay: [post]}``."""
    edges: dict[str, dict[str, dict[int, np.ndarray]]] = {}
    constant: dict[str, dict[int, np.ndarray]] = {}
    for post, signal in currents.items():
        target = populations[post]
        for (pre, delay), matrix in signal.terms.items():
            if populations[pre].kind == "li":
                raise ValueError(
                    f"node {pre!r} (a non-spiking readout in snngraph) feeds {post!r}; an 'li' "
                    "population cannot be presynaptic: read it out through an Output instead"
                )
            edges.setdefault(post, {}).setdefault(pre, {})[delay] = target.gain[:, None] * matrix
        bias = {delay: target.gain * vector for delay, vector in signal.bias.items()}
        if np.any(target.leak_current):
            bias[0] = bias.get(0, 0) + target.leak_current
        bias = {delay: vector for delay, vector in bias.items() if np.any(vector)}
        if bias and bias_input is None:
            origin = signal.bias_nodes or (post,)
            raise ValueError(
                f"node {origin[0]!r} puts a constant current into {post!r} (an Affine bias or "
                "v_leak != 0), which snngraph neurons do not have; pass bias_input='<name>' to "
                "add an input population of size 1 fed with ones, or make the bias/v_leak zero"
            )
        if bias:
            constant[post] = bias
    return edges, constant


def _close_zero_delay_cycles(
    edges: dict[str, dict[str, dict[int, np.ndarray]]], populations: dict[str, _Population]
) -> None:
    """A cycle with no delay reads the previous step: the zero-delay synapses of the edge that
    closes it (depth-first from the inputs) get delay 1."""
    order = sorted(populations, key=lambda name: populations[name].kind != "input")
    zero_hops = {pre: [post for post in edges if 0 in edges[post].get(pre, {})] for pre in order}
    for pre, post in _back_edges(order, zero_hops):
        terms = edges[post][pre]
        matrix = terms.pop(0)
        terms[1] = terms[1] + matrix if 1 in terms else matrix


def _build(
    populations: dict[str, _Population],
    edges: dict[str, dict[str, dict[int, np.ndarray]]],
    constant: dict[str, dict[int, np.ndarray]],
    bias_input: str | None,
) -> Graph:
    """The snngraph Graph: NIR inputs, the bias input, neurons, then edges."""
    result = Graph()
    for name, p in populations.items():
        if p.kind == "input":
            result.add_input(name, p.size)
    if constant:
        if bias_input in populations:
            raise ValueError(f"bias_input {bias_input!r} is also a NIR node name; choose another name")
        result.add_input(bias_input, 1)
    for name, p in populations.items():
        if p.kind == "lif":
            result.add_lif(name, p.size, alpha=p.alpha, theta=p.theta, reset=p.reset)
        elif p.kind == "li":
            result.add_li(name, p.size, alpha=p.alpha)
    for post, sources in edges.items():
        for pre, terms in sources.items():
            weight, delay = _projection(terms)
            result.connect(pre, post, weight=weight, delay=delay)
    for post, bias in constant.items():
        weight, delay = _projection({d: vector[:, None] for d, vector in bias.items()})
        result.connect(bias_input, post, weight=weight, delay=delay)
    return result


# ----------------------------------------------------------------------------------------
# Export


def _lossy(message: str, strict: bool) -> None:
    if strict:
        raise ValueError(f"{message}; NIR cannot express it exactly (strict=True)")
    warnings.warn(
        f"{message}; exported NIR's reset-to-0 instead, a different model (strict=True makes this an error)",
        NIRExportWarning,
        stacklevel=4,
    )


@dataclass(frozen=True, eq=False)
class _Exported:
    """A population in NIR: ``node`` and the κ per neuron that divides its incoming weights."""

    node: Any
    gain: np.ndarray


def _resistance(scale: np.ndarray, resistance: str) -> tuple[np.ndarray, np.ndarray]:
    """(R, κ): "absorb" puts 1/scale into R (weights unchanged), "unit" keeps R = 1."""
    if resistance == "absorb":
        return 1 / scale, np.ones_like(scale)
    return np.ones_like(scale), scale


def _export_input(spec: PopulationSpec, disc: Discretisation, resistance: str, strict: bool) -> _Exported:
    return _Exported(_nir().Input(input_type=np.array([spec.size])), np.ones(spec.size))


def _export_lif(spec: PopulationSpec, disc: Discretisation, resistance: str, strict: bool) -> _Exported:
    """``lif`` → ``nir.Threshold`` (α = 0), ``nir.IF`` (α = 1) or ``nir.LIF`` (τ from α)."""
    nir_module, n, alpha = _nir(), spec.size, spec.alpha
    if np.all(alpha == 0):  # U[t] = I[t]: a threshold unless the reset subtracts
        if spec.reset == "subtract":
            _lossy(f"population {spec.name!r} has alpha = 0 and reset 'subtract' (U[t] = I[t] - theta*S[t-1])", strict)
        return _Exported(nir_module.Threshold(threshold=spec.theta.copy()), np.ones(n))
    if spec.reset != "zero":
        _lossy(f"population {spec.name!r} uses reset {spec.reset!r} while NIR's LIF and IF reset to v_reset", strict)
    zeros = np.zeros(n)
    if np.all(alpha == 1):
        r, gain = _resistance(disc.integrator_scale(n), resistance)
        return _Exported(nir_module.IF(r=r, v_threshold=spec.theta.copy(), v_reset=zeros), gain)
    tau = disc.tau(spec.name, alpha)
    r, gain = _resistance(disc.leaky_scale(tau, alpha), resistance)
    node = nir_module.LIF(tau=tau, r=r, v_leak=zeros, v_threshold=spec.theta.copy(), v_reset=zeros.copy())
    return _Exported(node, gain)


def _export_li(spec: PopulationSpec, disc: Discretisation, resistance: str, strict: bool) -> _Exported:
    """``li`` → an ``Output`` (α = 0), ``nir.I`` (α = 1) or ``nir.LI`` (τ from α)."""
    nir_module, n, alpha = _nir(), spec.size, spec.alpha
    if np.all(alpha == 0):  # U[t] = I[t]: the weighted sum an Output node holds
        return _Exported(nir_module.Output(output_type=np.array([n])), np.ones(n))
    if np.all(alpha == 1):
        r, gain = _resistance(disc.integrator_scale(n), resistance)
        return _Exported(nir_module.I(r=r), gain)
    tau = disc.tau(spec.name, alpha)
    r, gain = _resistance(disc.leaky_scale(tau, alpha), resistance)
    return _Exported(nir_module.LI(tau=tau, r=r, v_leak=np.zeros(n)), gain)


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
    nir_module = _nir()
    nodes, edges = {}, []
    delays = np.unique(proj.delay)
    for delay in delays:
        mask = proj.delay == delay
        weight = np.zeros(proj.shape)
        np.add.at(weight, (proj.post_index[mask], proj.pre_index[mask]), proj.weight[mask])
        base = f"{names[proj.pre]}_to_{names[proj.post]}" + (f"_d{delay}" if delays.size > 1 else "")
        linear = _unique(base, taken)
        nodes[linear] = nir_module.Linear(weight=weight / gain[:, None])
        edges.append((names[proj.pre], linear))
        last = linear
        if delay > 0:
            last = _unique(f"{base}_delay", taken)
            nodes[last] = nir_module.Delay(delay=np.full(proj.shape[0], delay * disc.dt))
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

    The inverse of :func:`from_nir` with the same ``dt``/``decay``/``input_scale``.  A ``lif``
    population becomes ``nir.LIF`` (τ from α), ``nir.IF`` when α = 1 or ``nir.Threshold``
    when α = 0; an ``li`` becomes ``nir.LI``, ``nir.I`` when α = 1, or, when α = 0, an
    ``Output`` node holding its weighted sum.  Each edge becomes one ``Linear`` (+ ``Delay`` of
    ``d·dt``) branch per distinct delay ``d``.  ``resistance="absorb"`` writes R = 1/scale so the
    weights are exported as they are (snnTorch's convention); ``"unit"`` writes R = 1 and divides
    the weights by the scale (Norse's).

    NIR's neurons reset to ``v_reset``: a ``"subtract"`` or ``"none"`` reset is exported as
    reset-to-0 with a :class:`NIRExportWarning`, or refused when ``strict=True``.

    ``outputs`` maps ``Output`` names to populations (a sequence names them ``"<name>_output"``);
    by default the ``nir_outputs`` that :func:`from_nir` recorded, else every neuron population
    without outgoing edges.  ``path`` also writes the graph with ``nir.write``.
    """
    nir_module = _nir()
    if resistance not in RESISTANCES:
        raise ValueError(f"unknown resistance {resistance!r}; choose one of {RESISTANCES}")
    graph = graph_or_model.to_graph() if isinstance(graph_or_model, SNN) else graph_or_model
    disc = Discretisation(dt, decay, input_scale)
    populations, projections = read_graph(graph)
    g = graph.nx if isinstance(graph, Graph) else graph
    names = _export_names(populations)
    exported = {
        name: POPULATION_EXPORTERS[spec.kind](spec, disc, resistance, strict) for name, spec in populations.items()
    }
    nodes = {names[name]: e.node for name, e in exported.items()}
    taken = set(nodes)
    edges: list[tuple[str, str]] = []
    for proj in projections:
        branch_nodes, branch_edges = _projection_nodes(proj, exported[proj.post].gain, names, disc, taken)
        nodes.update(branch_nodes)
        edges.extend(branch_edges)
    for out, name in _output_map(g, outputs, exported).items():
        if isinstance(exported[name].node, nir_module.Output):
            continue  # an α = 0 readout is an Output already
        out = _unique(str(out), taken)
        nodes[out] = nir_module.Output(output_type=np.array([populations[name].size]))
        edges.append((names[name], out))
    result = nir_module.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    result.check_types()
    if path is not None:
        nir_module.write(path, result)
    return result


__all__ = [
    "DECAYS",
    "IMPORT_RESETS",
    "INPUT_SCALES",
    "RESISTANCES",
    "Discretisation",
    "NIRExportWarning",
    "from_nir",
    "to_nir",
]
