"""The compiled single layer: plain arrays plus the maps back to the graph (docs/design.md,
"Compile and retiming").

A :class:`CompiledNetwork` is what :func:`snngraph.compile` returns.  Neurons of all ``lif`` and
``li`` populations form one layer of ``N`` neurons; inputs form one vector of ``n_inputs``
channels.  Synapses are flat arrays in *edge order* (each graph edge owns a contiguous range,
``EdgeInfo.start:stop``), with their compiled (retimed) delays:

    I[t]_i = Σ_{k ∈ input synapses, post_k = i} w_k X[t − d_k]_{pre_k}
           + Σ_{k ∈ recurrent synapses, post_k = i} w_k S[t − d_k]_{pre_k}

Population ``v`` at graph time ``t`` is the layer at time ``t + lag(v)``.

The synapse weights are not stored themselves but read from the edges' parameters
(docs/design.md, "Synapses"): edge ``e`` owns a parameter of its natural shape (``EdgeInfo.param_shape``,
stored flat in ``values[EdgeInfo.param_slice]``) and its synapse ``k`` has the weight
``w_k = values[param_slice].reshape(-1)[index_k]`` (``in_index``/``rec_index``): the identity for a
dense or sparse edge, many-to-one for a shared one.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from os import PathLike
from typing import Any, NamedTuple

import numpy as np
import torch

from snngraph.convolution import ConvSpec
from snngraph.delays import DelaySpec, edge_tap_factors
from snngraph.kinds import NeuronModel, layer_columns
from snngraph.neurons import SPIKING, THETA, n_states_of, reset_name

FORMAT_VERSION = 5
"""Version of the ``.npz`` layout that :meth:`CompiledNetwork.save` writes (``format_version`` in
its metadata) and the newest that :func:`load` reads.  Version 5 adds, for edges that learn their
delays, their :class:`~snngraph.delays.DelaySpec` (``delays`` in the edge's metadata) and the real
delays (``delay_values``); a file without them is a version 4 file.  Version 4 holds the edges' parameters
(``values``, and per edge its kind, parameter shape and offset, whether it trains) and per synapse
the index into its edge's parameter (``in_index``/``rec_index``), with the generic neuron table,
the named parameters (``param_<name>``) and each population's neuron model of version 3.
Versions 1 to 3 store one weight per synapse (``in_weight``/``rec_weight``), every edge free
(dense or sparse); versions 1 (no ``format_version``: ``alpha``, ``theta``, int8 reset codes and
``spiking`` flags) and 2 (a five-row table α, θ, s, z, m) hold plain LIF/LI networks.
:func:`load` converts them all."""
SUMMARY_EDGES = 20
"""How many edges :meth:`CompiledNetwork.summary` lists one by one."""
_V1_NEURONS = ("alpha", "theta", "reset", "spiking")
_V1_RESETS = ("subtract", "zero", "none")  # version 1's reset codes 0, 1, 2


@dataclass(frozen=True)
class PopulationInfo:
    """Where a population lives: neurons ``start:stop`` of the layer (or of the input vector),
    laid out in ``shape`` (C order) when it has one."""

    name: Any
    kind: str
    start: int
    stop: int
    lag: int = 0
    model: NeuronModel | None = None
    shape: tuple[int, ...] | None = None

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)


@dataclass(frozen=True)
class EdgeInfo:
    """A graph edge: its synapses ``start:stop`` of the input (``target="input"``) or recurrent
    arrays, and its parameter, ``values[param_slice]`` of :class:`CompiledNetwork` in the shape
    ``param_shape``.

    ``kind`` is ``"dense"`` (parameter ``(post, pre)``, one synapse per entry), ``"sparse"`` (the
    stored values ``[nnz]``) or ``"shared"`` (1-D values indexed by the synapses, see
    :meth:`snngraph.Graph.connect`), ``"conv"`` (the kernel) or ``"pool"`` (one fixed value), the
    last two with their geometry ``conv``; ``trainable=False`` marks a fixed edge.  ``dense`` says that
    the synapse pattern was given as a dense matrix (written back that way by ``to_graph``).
    ``delays`` (a :class:`~snngraph.delays.DelaySpec`) marks an edge that learns its delays: its
    range holds its ``base_synapses`` synapses' ``taps`` (docs/design.md, "Learnable delays").
    """

    pre: Any
    post: Any
    target: str
    start: int
    stop: int
    shape: tuple[int, int]
    dense: bool
    kind: str
    param_shape: tuple[int, ...]
    param_start: int
    trainable: bool
    conv: ConvSpec | None = None
    delays: DelaySpec | None = None

    @property
    def n_synapses(self) -> int:
        """Compiled synapses of the edge (every tap of an edge that learns its delays)."""
        return self.stop - self.start

    @property
    def taps(self) -> int:
        """Compiled synapses per synapse of the graph: the kernel's taps when the edge learns its delays, else 1."""
        return 1 if self.delays is None else self.delays.taps

    @property
    def base_synapses(self) -> int:
        """Synapses of the graph's edge (the first tap's block of its range)."""
        return self.n_synapses // self.taps

    @property
    def param_size(self) -> int:
        return math.prod(self.param_shape)

    @property
    def param_slice(self) -> slice:
        return slice(self.param_start, self.param_start + self.param_size)


def gather_index(edges: Sequence[EdgeInfo], index: np.ndarray) -> np.ndarray:
    """Where each synapse of ``edges`` (whose ranges tile ``index``, in this order) finds its weight
    in the concatenation of the edges' flattened parameters: ``index_k`` plus the offset of its
    edge's parameter."""
    offsets = np.cumsum([0] + [e.param_size for e in edges], dtype=np.int64)[:-1]
    return index + np.repeat(offsets, [e.n_synapses for e in edges])


_ARRAYS = (
    "neurons",
    "in_post", "in_pre", "in_delay", "in_index",
    "rec_post", "rec_pre", "rec_delay", "rec_index",
    "values",
)  # fmt: skip
_SCALES = ("in_scale", "rec_scale")  # written only where a synapse has a factor other than 1
_OPTIONAL = (*_SCALES, "delay_values")  # and where an edge learns its delays
_V3_ARRAYS = (
    "neurons",
    "in_post", "in_pre", "in_delay", "in_weight",
    "rec_post", "rec_pre", "rec_delay", "rec_weight",
)  # fmt: skip


class Synapses(NamedTuple):
    """One synapse population (input or recurrent) as flat arrays in edge order."""

    post: np.ndarray
    pre: np.ndarray
    delay: np.ndarray
    weight: np.ndarray


@dataclass(frozen=True, eq=False)
class CompiledNetwork:
    """The single layer view of a graph.

    Per neuron: ``neurons``, the generic neuron table ``[P, N]`` (float64, :mod:`snngraph.neurons`),
    and ``parameters``, the named parameters of the populations (:mod:`snngraph.kinds`), each
    ``[N]`` float64 (zero where a population does not have it).  Per synapse: ``in_*``
    for input synapses (delay ≥ 0) and ``rec_*`` for recurrent ones (delay ≥ 1): ``post``/``pre``
    indices (int64), ``delay`` (int64) and ``index`` (int64, into its edge's parameter).  Per edge:
    its parameter, float64, flat in ``values`` (:meth:`edge_values` gives it in its shape); the
    weights ``in_weight``/``rec_weight`` follow from them, times the synapses' fixed factors
    ``in_scale``/``rec_scale`` (float64, ``None`` where every factor is 1; shared edges may have
    them).  Edges that learn their delays have their real delays in ``delay_values`` (float64,
    aligned with ``values``, NaN on the other edges; ``None`` when no edge learns them), and
    their taps' weights carry the kernel's factors (:mod:`snngraph.delays`).
    """

    populations: tuple[PopulationInfo, ...]
    inputs: tuple[PopulationInfo, ...]
    edges: tuple[EdgeInfo, ...]
    neurons: np.ndarray
    in_post: np.ndarray
    in_pre: np.ndarray
    in_delay: np.ndarray
    in_index: np.ndarray
    rec_post: np.ndarray
    rec_pre: np.ndarray
    rec_delay: np.ndarray
    rec_index: np.ndarray
    values: np.ndarray
    parameters: dict[str, np.ndarray]
    in_scale: np.ndarray | None = None
    rec_scale: np.ndarray | None = None
    delay_values: np.ndarray | None = None

    @property
    def n_neurons(self) -> int:
        return int(self.neurons.shape[1])

    @property
    def n_states(self) -> int:
        """K, the state variables per neuron of the layer (the largest K of its populations)."""
        return n_states_of(self.neurons)

    @property
    def alpha(self) -> np.ndarray:
        """The membrane decay α ``[N]`` of the named kinds (0 for ``neurons`` populations)."""
        return self.parameters["alpha"]

    @property
    def theta(self) -> np.ndarray:
        """θ ``[N]``, a view of the neuron table."""
        return self.neurons[THETA]

    @property
    def spiking(self) -> np.ndarray:
        """Whether each neuron spikes (False for ``li`` readouts), ``[N]`` bool."""
        return self.neurons[SPIKING] > 0

    def synapses(self, target: str) -> Synapses:
        """The ``"input"`` or ``"recurrent"`` synapses."""
        if target == "input":
            return Synapses(self.in_post, self.in_pre, self.in_delay, self.in_weight)
        if target == "recurrent":
            return Synapses(self.rec_post, self.rec_pre, self.rec_delay, self.rec_weight)
        raise ValueError(f"unknown synapse target {target!r}; choose 'input' or 'recurrent'")

    def edges_of(self, target: str) -> tuple[EdgeInfo, ...]:
        """The edges of the ``"input"`` or ``"recurrent"`` synapses, in the order of their ranges."""
        return tuple(sorted((e for e in self.edges if e.target == target), key=lambda e: e.start))

    def synapse_index(self, target: str) -> np.ndarray:
        """Per synapse of ``target``, the index into its edge's parameter (``in_index``/``rec_index``)."""
        return self.in_index if target == "input" else self.rec_index

    def synapse_scale(self, target: str) -> np.ndarray | None:
        """Per synapse of ``target``, its fixed factor (``in_scale``/``rec_scale``; ``None``: all 1)."""
        return self.in_scale if target == "input" else self.rec_scale

    def edge_values(self, edge: EdgeInfo) -> np.ndarray:
        """The parameter of ``edge`` in its natural shape (a view of ``values``)."""
        return self.values[edge.param_slice].reshape(edge.param_shape)

    def edge_delays(self, edge: EdgeInfo) -> np.ndarray:
        """The real delays of an edge that learns them, in its parameter's shape (a view of ``delay_values``)."""
        if edge.delays is None or self.delay_values is None:
            raise ValueError(
                f"edge {edge.pre!r} -> {edge.post!r} does not learn its delays (connect(..., learn_delay=True))"
            )
        return self.delay_values[edge.param_slice].reshape(edge.param_shape)

    def _weights(self, target: str) -> np.ndarray:
        edges = self.edges_of(target)
        flat = np.concatenate([self.values[e.param_slice] for e in edges]) if edges else np.zeros(0)
        weight = flat[gather_index(edges, self.synapse_index(target))]
        scale = self.synapse_scale(target)
        weight = weight if scale is None else weight * scale
        for e in edges:
            if e.delays is not None:
                tau = torch.from_numpy(self.edge_delays(e).reshape(-1))
                index = torch.from_numpy(self.synapse_index(target)[e.start : e.start + e.base_synapses])
                weight[e.start : e.stop] *= edge_tap_factors(tau, index, e.delays, e.delays.sigma).numpy()
        return weight

    @cached_property
    def in_weight(self) -> np.ndarray:
        """The weight of every input synapse, float64 ``[n_in]``: ``w_k = parameter.reshape(-1)[index_k]``."""
        return self._weights("input")

    @cached_property
    def rec_weight(self) -> np.ndarray:
        """The weight of every recurrent synapse, float64 ``[n_rec]``."""
        return self._weights("recurrent")

    @property
    def n_inputs(self) -> int:
        return self.inputs[-1].stop if self.inputs else 0

    def _delay_bound(self, target: str) -> int:
        """The largest delay of ``target``'s synapses, now and (edges that learn their delays: the
        top of their range, lags added) after any training."""
        delays = self.synapses(target).delay
        bound = int(delays.max()) if delays.size else 0
        for e in self.edges_of(target):
            if e.delays is not None:
                lag = self.population(e.post).lag - self.population(e.pre).lag
                bound = max(bound, e.delays.high + lag)
        return bound

    @property
    def max_delay(self) -> int:
        """Steps of spike history the layer reads: max recurrent delay, at least 1 (the reset)."""
        return max(1, self._delay_bound("recurrent"))

    @property
    def max_input_delay(self) -> int:
        return self._delay_bound("input")

    @property
    def max_lag(self) -> int:
        return max((p.lag for p in self.populations), default=0)

    @cached_property
    def _by_name(self) -> dict[Any, PopulationInfo]:
        return {info.name: info for info in self.populations + self.inputs}

    @cached_property
    def _by_edge(self) -> dict[tuple[Any, Any], EdgeInfo]:
        return {(info.pre, info.post): info for info in self.edges}

    def population(self, name: Any) -> PopulationInfo:
        if name not in self._by_name:
            raise KeyError(f"no population {name!r}; the network has {list(self._by_name)}")
        return self._by_name[name]

    def edge(self, pre: Any, post: Any) -> EdgeInfo:
        if (pre, post) not in self._by_edge:
            some = list(self._by_edge)[:20]
            raise KeyError(f"no edge {pre!r} -> {post!r}; the network has {some}{' …' if len(self.edges) > 20 else ''}")
        return self._by_edge[(pre, post)]

    def synapses_per_delay(self, target: str = "recurrent") -> dict[int, int]:
        delays = self.synapses(target).delay
        values, counts = np.unique(delays, return_counts=True)
        return {int(d): int(c) for d, c in zip(values, counts, strict=True)}

    def memory_bytes(self, steps: int, batch: int, bytes_per_value: int = 4) -> dict[str, int]:
        """Memory of one forward + backward pass of ``steps`` graph steps (fused backends).

        The layer runs ``T' = steps + max_lag`` steps with ``K`` state variables per neuron.
        Saved for backward: the states ``K·T'·B·N``, the incoming state ``(K + max_delay)·B·N``
        and the inputs ``(T' + max_input_delay)·B·n_inputs`` values; during backward the adjoint
        of the currents λI (λU for ``K = 1``) adds ``T'·B·N`` and a window of ``max_delay·B·N``
        values of it or of the spike history.  Neurons of ``K > 1`` states also hold their λv,
        which the backends keep differently (docs/cpu_backend.md, docs/triton_backend.md): the cpu
        backend per time chunk, the triton backend ``(K + 1)·T'·B·N`` values when neuron
        parameters train.  Weights and their gradients: ``2·(n_in_synapses + n_rec_synapses)``
        values for the gathered weights and their gradients, ``2·n_values`` for the edges'
        parameters and theirs, and 4 int64 arrays per synapse (post, pre, delay, gather index).
        """
        total_steps = steps + self.max_lag
        k = self.n_states
        saved = (k * total_steps + self.max_delay + k) * batch * self.n_neurons + (
            total_steps + self.max_input_delay
        ) * batch * self.n_inputs
        backward = (total_steps + self.max_delay) * batch * self.n_neurons
        n_syn = self.in_weight.size + self.rec_weight.size
        return {
            "saved_for_backward": saved * bytes_per_value,
            "backward_workspace": backward * bytes_per_value,
            "weights": 2 * (n_syn + self.values.size) * bytes_per_value + 4 * n_syn * 8,
        }

    def summary(self, steps: int = 100, batch: int = 1) -> str:
        """Neurons, inputs, synapses per delay, the first :data:`SUMMARY_EDGES` edges (kind,
        parameter shape, synapses, memory of the gather index), lags and memory for ``steps`` and
        ``batch``."""
        lines = [
            f"CompiledNetwork: {self.n_neurons} neurons, {self.n_inputs} inputs, {self.n_states} state(s) per neuron"
        ]
        for p in self.inputs:
            lines.append(f"  input {p.name!r}: channels {p.start}:{p.stop}")
        for p in self.populations:
            states = ", ".join(p.model.states)
            lines.append(f"  {p.kind} {p.name!r}: neurons {p.start}:{p.stop}, lag {p.lag}, states ({states})")
        lines.append(f"  input synapses: {self.in_weight.size}, per delay {self.synapses_per_delay('input')}")
        lines.append(f"  recurrent synapses: {self.rec_weight.size}, per delay {self.synapses_per_delay()}")
        wide = max(self.n_neurons, self.n_inputs, self.in_post.size, self.rec_post.size) >= 2**31
        index_bytes, index_type = (8, "int64") if wide else (4, "int32")
        for e in self.edges[:SUMMARY_EDGES]:
            trains = "" if e.trainable else ", fixed"
            geometry = "" if e.conv is None else f" {_geometry_text(e.conv)}"
            if e.delays is not None:
                trains += f", learns delays in [{e.delays.low}, {e.delays.high}] ({e.delays.kernel}, {e.taps} taps)"
            lines.append(
                f"  edge {e.pre!r} -> {e.post!r} ({e.target}): {e.kind}{geometry}{trains}, parameter "
                f"{e.param_shape}, {e.n_synapses} synapses, indices {3 * index_bytes * e.n_synapses / 2**10:.1f} "
                f"KiB ({index_type} post, pre, delay)"
            )
        if len(self.edges) > SUMMARY_EDGES:
            lines.append(
                f"  … {len(self.edges) - SUMMARY_EDGES} more edges ({self.values.size} parameter values in all)"
            )
        lines.append(f"  max delay {self.max_delay}, max input delay {self.max_input_delay}, max lag {self.max_lag}")
        for what, n in self.memory_bytes(steps, batch).items():
            lines.append(f"  memory (T={steps}, B={batch}, float32) {what}: {n / 2**20:.2f} MiB")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"CompiledNetwork(neurons={self.n_neurons}, inputs={self.n_inputs}, "
            f"input_synapses={self.in_weight.size}, recurrent_synapses={self.rec_weight.size}, "
            f"max_delay={self.max_delay}, max_lag={self.max_lag})"
        )

    def save(self, path: str | PathLike) -> None:
        """Write to an ``.npz`` file (arrays + JSON metadata, no pickle); see :func:`load`."""
        meta = {
            "format_version": FORMAT_VERSION,
            "populations": [_info_json(p) for p in self.populations],
            "inputs": [_info_json(p) for p in self.inputs],
            "edges": [_info_json(e) for e in self.edges],
        }
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        arrays.update({name: getattr(self, name) for name in _OPTIONAL if getattr(self, name) is not None})
        arrays.update({f"param_{name}": value for name, value in self.parameters.items()})
        with open(path, "wb") as file:
            np.savez(file, meta=np.array(json.dumps(meta)), **arrays)


def _check_name(name: Any) -> Any:
    if isinstance(name, bool) or not isinstance(name, (str, int)):
        raise TypeError(f"cannot save node name {name!r}: only str and int names are saved losslessly")
    return name


def _info_json(info: PopulationInfo | EdgeInfo) -> dict[str, Any]:
    data = {f.name: getattr(info, f.name) for f in fields(info)}
    if isinstance(data.get("model"), NeuronModel):
        data["model"] = data["model"].to_json()
    for key in ("conv", "delays"):
        if data.get(key) is not None:
            data[key] = asdict(data[key])
    for key in ("name", "pre", "post"):
        if key in data:
            data[key] = _check_name(data[key])
    return data


def _geometry_text(spec: ConvSpec) -> str:
    """``kernel 3x3, stride 1, padding 1`` (and dilation, groups where they are not 1)."""

    def dims(values: tuple[Any, ...]) -> str:
        return "x".join(map(str, values))

    parts = [f"{spec.pool + ' ' if spec.pool else ''}kernel {dims(spec.kernel_size)}", f"stride {dims(spec.stride)}"]
    padding = spec.padding_attribute()
    if any(spec.padding_attribute()):
        parts.append(f"padding {padding if isinstance(padding[0], tuple) else dims(padding)}")
    if any(d != 1 for d in spec.dilation):
        parts.append(f"dilation {dims(spec.dilation)}")
    if spec.groups != 1 and spec.pool is None:
        parts.append(f"groups {spec.groups}")
    return f"{dims(spec.in_shape)} -> {dims(spec.out_shape)}, " + ", ".join(parts)


def _shape(value: Any) -> tuple[int, ...] | None:
    return None if value is None else tuple(value)


def _conv_spec(value: dict[str, Any] | None) -> ConvSpec | None:
    """A :class:`ConvSpec` from its JSON form (lists for tuples)."""
    if value is None:
        return None
    tuples = {key: tuple(v) for key, v in value.items() if isinstance(v, list) and key != "padding"}
    return ConvSpec(**{**value, **tuples, "padding": tuple(tuple(pair) for pair in value["padding"])})


def neuron_table(
    populations: tuple[PopulationInfo, ...],
    parameters: dict[str, np.ndarray],
    generic: dict[Any, dict[str, np.ndarray]],
) -> np.ndarray:
    """The float64 table ``[P, N]`` of the populations, from their named ``parameters`` ``[N]``
    (and the blocks of ``neurons`` populations in ``generic``, by name)."""
    k = max(p.model.n_states for p in populations)
    values = {name: torch.from_numpy(value) for name, value in parameters.items()}
    blocks = {name: {block: torch.from_numpy(v) for block, v in value.items()} for name, value in generic.items()}
    return layer_columns(populations, values, k, blocks)[0].numpy()


def _plain_network(
    arrays: dict[str, np.ndarray], meta: dict[str, Any], version: int
) -> tuple[tuple[PopulationInfo, ...], dict[str, np.ndarray]]:
    """The populations and arrays of a version-1 or -2 file (plain LIF and LI neurons) in version 3's terms."""
    if version == 1:
        alpha, theta, reset, _ = (arrays.pop(name) for name in _V1_NEURONS)  # spiking follows from the kind
        resets = [_V1_RESETS[code] for code in reset]
    else:
        old = arrays.pop("neurons")  # rows α, θ, s, z, m
        alpha, theta = old[0], old[1]
        resets = [reset_name(s, z) for s, z in zip(old[2], old[3], strict=True)]
    populations = tuple(
        PopulationInfo(**{**p, "model": NeuronModel.named(p["kind"], resets[p["start"]])}) for p in meta["populations"]
    )
    n = alpha.size
    parameters = {name: np.zeros(n) for name in ("alpha", "theta", "bias", "v_leak")}
    parameters["alpha"], parameters["theta"] = alpha.astype(float), theta.astype(float)
    arrays["neurons"] = neuron_table(populations, parameters, {})
    return populations, parameters


def _free_edges(arrays: dict[str, np.ndarray], edges: list[dict[str, Any]]) -> tuple[EdgeInfo, ...]:
    """The edges of a file before version 4 (one weight per synapse, ``in_weight``/``rec_weight``)
    in version 4's terms: every edge trains, a dense edge's parameter is its ``(post, pre)`` matrix
    (its synapses in row-major order), a sparse edge's the values of its synapses."""
    weights = {"input": arrays.pop("in_weight"), "recurrent": arrays.pop("rec_weight")}
    infos, values, start = [], [], 0
    for e in edges:
        shape, n = tuple(e["shape"]), e["stop"] - e["start"]
        param_shape = shape if e["dense"] else (n,)
        if math.prod(param_shape) != n:
            raise ValueError(f"edge {e['pre']!r} -> {e['post']!r} is dense of shape {shape} but has {n} synapses")
        kind = "dense" if e["dense"] else "sparse"
        infos.append(
            EdgeInfo(**{**e, "shape": shape}, kind=kind, param_shape=param_shape, param_start=start, trainable=True)
        )
        values.append(weights[e["target"]][e["start"] : e["stop"]].astype(float))
        start += n
    arrays["values"] = np.concatenate(values) if values else np.zeros(0)
    for target, prefix in (("input", "in"), ("recurrent", "rec")):
        ranges = sorted((e for e in infos if e.target == target), key=lambda e: e.start)
        local = [np.arange(e.n_synapses, dtype=np.int64) for e in ranges]
        arrays[f"{prefix}_index"] = np.concatenate(local) if local else np.zeros(0, np.int64)
    return tuple(infos)


def load(path: str | PathLike) -> CompiledNetwork:
    """Read a network written by :meth:`CompiledNetwork.save`.

    A file that holds no such network (not an ``.npz`` archive, a truncated or damaged one, one
    without the fields that ``save`` writes) or that a newer snngraph wrote raises ``ValueError``
    naming the file; a missing or unreadable file raises its ``OSError`` as usual.
    """

    def not_a_network(why: str) -> ValueError:
        return ValueError(f"{str(path)!r} is not a snngraph network file (CompiledNetwork.save writes those): {why}")

    with open(path, "rb") as file:  # opened here, so that it is closed however np.load fails
        try:
            data = np.load(file, allow_pickle=False)
        except (ValueError, EOFError, zipfile.BadZipFile) as err:
            raise not_a_network("not an .npz archive, or a truncated one") from err
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise not_a_network("a single .npy array, not an .npz archive")
        with data:
            try:  # every member now, so that a damaged one fails here, whichever it is
                arrays = {name: data[name] for name in data.files}
            except (ValueError, EOFError, zipfile.BadZipFile) as err:
                raise not_a_network(f"a damaged archive ({type(err).__name__}: {err})") from err
    if "meta" not in arrays:
        raise not_a_network("the archive lacks the field 'meta'")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except ValueError as err:
        raise not_a_network(f"its metadata is not JSON ({err})") from err
    if not isinstance(meta, dict):
        raise not_a_network(f"its metadata is a JSON {type(meta).__name__}, not an object")
    version = meta.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise not_a_network(f"its metadata has no valid format_version (got {version!r})")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} was written by a newer snngraph (network file format {version}; this "
            f"version reads formats up to {FORMAT_VERSION}): upgrade snngraph to load it"
        )
    names = _ARRAYS if version >= 4 else _V3_ARRAYS if version >= 2 else (*_V1_NEURONS, *_V3_ARRAYS[1:])
    missing = [name for name in names if name not in arrays]
    if missing:
        raise not_a_network(f"the archive lacks the fields {missing}")
    parameters = {name[len("param_") :]: a for name, a in arrays.items() if name.startswith("param_")}
    scales = {name: arrays[name] for name in _OPTIONAL if name in arrays}
    arrays = {name: arrays[name] for name in names}
    try:
        if version < 3:
            populations, parameters = _plain_network(arrays, meta, version)
        else:
            populations = tuple(
                PopulationInfo(**{**p, "model": NeuronModel(**p["model"]), "shape": _shape(p.get("shape"))})
                for p in meta["populations"]
            )
            n_states_of(arrays["neurons"])
        if version < 4:
            edges = _free_edges(arrays, meta["edges"])
        else:
            edges = tuple(
                EdgeInfo(
                    **{
                        **e,
                        "shape": tuple(e["shape"]),
                        "param_shape": tuple(e["param_shape"]),
                        "conv": _conv_spec(e.get("conv")),
                        "delays": None if e.get("delays") is None else DelaySpec(**e["delays"]),
                    }
                )
                for e in meta["edges"]
            )
        return CompiledNetwork(
            populations=populations,
            inputs=tuple(PopulationInfo(**{**p, "shape": _shape(p.get("shape"))}) for p in meta["inputs"]),
            edges=edges,
            **arrays,
            parameters=parameters,
            **scales,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise not_a_network(f"its metadata is not what save writes ({type(err).__name__}: {err})") from err
