"""Describe a spiking network as a directed graph of populations and projections.

A node is a population: ``input`` (a vector of external signals), ``lif`` (leaky
integrate-and-fire neurons) or ``li`` (a non-spiking leaky readout).  An edge ``pre → post``
is a projection: a weight matrix of shape ``(post, pre)`` whose entries are synapses, each
with an integer delay in timesteps, or a convolution or pooling between shaped populations
(:meth:`Graph.connect_conv`, :meth:`Graph.connect_pool`).  See docs/design.md, "The model"
and "Convolutions and pooling".

:class:`Graph` is a thin, validating layer over :class:`networkx.DiGraph` (``g.nx``).  A plain
``networkx.DiGraph`` whose nodes carry ``kind``/``size``/``alpha``/``theta``/``reset`` (and
optionally ``shape``) and whose edges carry ``weight``/``delay`` (and optionally
``shared``/``scale``/``trainable``, see :meth:`Graph.connect`; or ``kind="conv"`` with
``kernel_size``/``stride``/``padding``/``dilation``/``groups`` and the kernel as ``weight``, or
``kind="pool"`` with ``pool``/``kernel_size``/``stride``/``padding``) is accepted everywhere a
:class:`Graph` is, through
:func:`population_spec` and :func:`projection_spec`, which turn node and edge attributes into
validated specs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp
import torch

from snngraph.convolution import POOLS, ConvSpec, conv_spec, default_kernel
from snngraph.delays import DelaySpec, delay_spec, initial_delays
from snngraph.kinds import DECAYS, DEFAULTS, NAMED, NEURON_KINDS, PARAMETERS, NeuronModel, check_states
from snngraph.neurons import BLOCKS, RESETS

KINDS = ("input", *NEURON_KINDS)


@dataclass(frozen=True, eq=False)
class PopulationSpec:
    """A validated population: its :class:`~snngraph.kinds.NeuronModel` (``None`` for inputs), its
    named parameters as float64 arrays ``[size]`` and, for a ``neurons`` population, its generic
    blocks (``A`` ``[K, K, size]``, the others ``[K, size]``).  ``shape`` (``(C, L)``, ``(C, H, W)``,
    …; ``None`` for a flat population) is how the ``size`` neurons are laid out, in C order."""

    name: Any
    kind: str
    size: int
    model: NeuronModel | None = None
    params: dict[str, np.ndarray] = field(default_factory=dict)
    generic: dict[str, np.ndarray] | None = None
    shape: tuple[int, ...] | None = None

    @property
    def is_neuron(self) -> bool:
        return self.kind != "input"

    @property
    def reset(self) -> str:
        return "none" if self.model is None else self.model.reset

    @property
    def alpha(self) -> np.ndarray:
        return self.params["alpha"]

    @property
    def theta(self) -> np.ndarray:
        return self.params["theta"]


EDGE_KINDS = ("dense", "sparse", "shared", "conv", "pool")
"""How an edge's synapses take their values from its parameter (docs/design.md, "Synapses")."""


@dataclass(frozen=True, eq=False)
class ProjectionSpec:
    """A validated projection ``pre → post`` as synapse arrays and the parameter they read.

    ``post``/``pre`` are local neuron indices and ``delay`` int64, all ``[n_synapses]``.  The
    edge's parameter ``values`` has its natural shape: the ``(post, pre)`` matrix of a ``"dense"``
    edge, the stored values ``[nnz]`` of a ``"sparse"`` one (order of ``weight.tocoo()``), the
    1-D shared values of a ``"shared"`` one, the kernel ``(C_out, C_in/groups, k…)`` of a
    ``"conv"`` one and the one fixed value of a ``"pool"`` one (their geometry in ``conv``);
    synapse ``k`` has the weight ``values.reshape(-1)[index[k]]``.  ``dense`` records that the
    synapse pattern was given as a dense matrix (the weight, or for a shared edge its index
    pattern), so that trained values can be written back in the same form; ``trainable=False``
    marks a fixed edge.  A shared edge may give each synapse a fixed factor ``scale``
    (``None``: all ones).  An edge that learns its delays has their :class:`DelaySpec` in
    ``delays`` and the real delays in ``delay_values``, shaped like ``values`` (one per entry of
    the parameter); its ``delay`` is then theirs rounded (:mod:`snngraph.delays`).
    """

    pre: Any
    post: Any
    post_index: np.ndarray
    pre_index: np.ndarray
    delay: np.ndarray
    values: np.ndarray
    index: np.ndarray
    shape: tuple[int, int]
    dense: bool
    kind: str
    trainable: bool = True
    conv: ConvSpec | None = None
    scale: np.ndarray | None = None
    delays: DelaySpec | None = None
    delay_values: np.ndarray | None = None

    @property
    def weight(self) -> np.ndarray:
        """The weight of every synapse, float64 ``[n_synapses]``: ``scale_k·values.reshape(-1)[index_k]``."""
        weight = self.values.reshape(-1)[self.index]
        return weight if self.scale is None else weight * self.scale

    @property
    def n_synapses(self) -> int:
        return int(self.index.size)

    @property
    def taps(self) -> int:
        """Compiled synapses per synapse: the kernel's taps when the edge learns its delays, else 1."""
        return 1 if self.delays is None else self.delays.taps

    @property
    def min_delay(self) -> int:
        """The smallest delay a synapse may have: the range's low end when the edge learns its delays."""
        if self.delays is not None:
            return self.delays.low
        return int(self.delay.min()) if self.delay.size else 1

    def attributes(self) -> dict[str, Any]:
        """The edge attributes that :meth:`Graph.connect` takes and ``networkx`` edges carry:
        ``weight`` and ``delay`` in the user's layout, ``shared`` for a shared edge,
        ``trainable`` for a fixed one and, for an edge that learns its delays, its
        :class:`DelaySpec`'s attributes and the real delays ``delay_real`` (``delay`` rounded)."""
        rows, cols = self.post_index, self.pre_index
        attrs: dict[str, Any] = {"delay": self.delay_attribute()}
        if self.delays is not None:
            attrs.update(self.delays.attributes(), delay_real=self.delay_values.copy())
        if self.conv is not None:
            attrs.update(self.conv.attributes())
            if self.kind == "conv":
                attrs["weight"] = self.values.copy()
            if not self.trainable and self.kind == "conv":
                attrs["trainable"] = False
            return attrs
        if self.kind == "sparse":
            attrs["weight"] = sp.coo_array((self.values.copy(), (rows, cols)), shape=self.shape)
        else:
            attrs["weight"] = self.values.copy()
        if self.kind == "shared":
            if self.dense:
                pattern = np.full(self.shape, -1, dtype=np.int64)
                pattern[rows, cols] = self.index
                attrs["shared"] = pattern
            else:
                attrs["shared"] = sp.coo_array((self.index.copy(), (rows, cols)), shape=self.shape)
            if self.scale is not None:
                attrs["scale"] = self.scale.copy()
        if not self.trainable:
            attrs["trainable"] = False
        return attrs

    def delay_attribute(self) -> int | np.ndarray:
        """Delays in the layout :meth:`Graph.connect` accepts: an int when all are equal (and for a
        convolution otherwise one per kernel tap)."""
        delay = self.delay
        if delay.size and np.all(delay == delay[0]):
            return int(delay[0])
        if self.kind == "conv":
            taps = np.full(self.values.size, int(delay.min()), dtype=np.int64)  # a tap no synapse reads: any
            taps[self.index] = delay
            return taps.reshape(self.values.shape)
        if self.dense:
            matrix = np.zeros(self.shape, dtype=np.int64)
            matrix[self.post_index, self.pre_index] = delay
            return matrix
        return delay.copy()


def _per_neuron(value: Any, size: int, what: str, node: Any) -> np.ndarray:
    array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, float)
    if array.ndim == 0:
        array = np.full(size, float(array))
    if array.shape != (size,):
        raise ValueError(
            f"node {node!r}: {what} must be a scalar or have one value per neuron "
            f"(shape ({size},)), got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"node {node!r}: {what} contains NaN or inf")
    return array


def _generic_blocks(attrs: dict[str, Any], size: int, name: Any) -> dict[str, np.ndarray]:
    """The blocks of a ``neurons`` node, each broadcast to one value per neuron."""
    if "A" not in attrs or "e" not in attrs:
        raise ValueError(f"node {name!r}: a 'neurons' node needs its state matrix A (K×K) and input vector e (K)")
    a = np.asarray(attrs["A"], float)
    k = a.shape[0] if a.ndim >= 2 else 0
    check_states(k, name)
    blocks = {}
    for block in BLOCKS:
        default = np.eye(k)[0] if block == "r" else 0.0
        value = np.asarray(attrs.get(block, default), float)
        shape = (k, k) if block == "A" else (k,)
        if value.ndim == 0 and block != "A":
            value = np.full(shape, float(value))
        if value.shape == shape:
            value = np.repeat(value[..., None], size, axis=-1)
        if value.shape != (*shape, size):
            raise ValueError(
                f"node {name!r}: {block} must have shape {shape} or {(*shape, size)} (K = {k} states), "
                f"got {value.shape}"
            )
        if not np.all(np.isfinite(value)):
            raise ValueError(f"node {name!r}: {block} contains NaN or inf")
        blocks[block] = value
    return blocks


def _neuron_model(name: Any, kind: str, attrs: dict[str, Any]) -> NeuronModel:
    reset = attrs.get("reset", "none" if kind == "li" else "subtract")
    if reset not in RESETS:
        raise ValueError(f"node {name!r}: unknown reset {reset!r}; choose one of {RESETS}")
    if kind == "li" and reset != "none":
        raise ValueError(f"node {name!r}: a 'li' node does not spike, so its reset must be 'none'")
    if kind == "neurons":
        return NeuronModel(kind, reset, n_states=np.asarray(attrs["A"]).shape[0])
    return NeuronModel.named(
        kind, reset, synaptic=attrs.get("alpha_syn") is not None, symplectic=bool(attrs.get("symplectic", False))
    )


def population_spec(name: Any, attrs: dict[str, Any]) -> PopulationSpec:
    """Validate a node's attributes and return its :class:`PopulationSpec`."""
    kind = attrs.get("kind")
    if kind not in KINDS:
        raise ValueError(f"node {name!r}: unknown kind {kind!r}; set the node attribute 'kind' to one of {KINDS}")
    size, shape = _size_and_shape(name, attrs)
    model = None if kind == "input" else _neuron_model(name, kind, attrs)
    own = () if model is None else model.parameters
    generic_keys = BLOCKS if kind == "neurons" else ()  # a 'neurons' node's b is its block b
    foreign = [key for key in NAMED if key not in (*own, *generic_keys) and attrs.get(key) is not None]
    if foreign:
        owners = {key: [k for k, names in PARAMETERS.items() if key in names] for key in foreign}
        raise ValueError(
            f"node {name!r}: {', '.join(map(repr, foreign))} is not a parameter of kind {kind!r} "
            f"(the kinds that have it: {owners})"
        )
    params = {}
    for key in own:
        if attrs.get(key) is None and key not in DEFAULTS:
            raise ValueError(f"node {name!r}: kind {kind!r} needs {key!r} (a scalar or one value per neuron)")
        params[key] = _per_neuron(attrs.get(key, DEFAULTS.get(key)), size, key, name)
    for key in DECAYS:
        if key in params and np.any((params[key] < 0) | (params[key] > 1)):
            raise ValueError(f"node {name!r}: {key} (a decay per step) must lie in [0, 1]")
    if "adapt" in params and np.any(params["adapt"] < 0):
        raise ValueError(f"node {name!r}: adapt (the threshold's rise per spike) must be >= 0")
    if model is not None and model.spiking and np.any(params["theta"] <= 0):
        raise ValueError(f"node {name!r}: theta (threshold) must be positive")
    generic = _generic_blocks(attrs, size, name) if kind == "neurons" else None
    return PopulationSpec(name, kind, size, model, params, generic, shape)


def _size_and_shape(name: Any, attrs: dict[str, Any]) -> tuple[int, tuple[int, ...] | None]:
    """A node's ``size`` (default 1) and ``shape`` (optional; its product is the size)."""
    shape = attrs.get("shape")
    if shape is not None:
        shape = tuple(shape) if isinstance(shape, (tuple, list, np.ndarray)) else shape
        if (
            not isinstance(shape, tuple)
            or not shape
            or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in shape)
        ):
            raise ValueError(f"node {name!r}: shape must be a tuple of positive ints such as (C, H, W), got {shape!r}")
        shape = tuple(int(n) for n in shape)
    size = attrs.get("size", 1 if shape is None else math.prod(shape))
    if size is None:
        raise ValueError(
            f"node {name!r} has no size: give it one (an int or a shape such as (C, H, W)), or connect a "
            "convolution or pooling into it (Graph.connect_conv/connect_pool), whose output shape it takes"
        )
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"node {name!r}: size must be a positive int, got {size!r}")
    if shape is not None and math.prod(shape) != size:
        raise ValueError(f"node {name!r}: shape {shape} holds {math.prod(shape)} neurons but size is {size}")
    return int(size), shape


def _as_sparse_or_dense(weight: Any, edge: str) -> np.ndarray | sp.coo_array:
    """The weight as a float64 array or a COO matrix; complex weights are refused, not cast."""
    if isinstance(weight, torch.Tensor):
        is_complex = weight.is_complex()
    else:
        weight = weight if sp.issparse(weight) else np.asarray(weight)
        is_complex = np.issubdtype(weight.dtype, np.complexfloating)
    if is_complex:
        raise ValueError(
            f"edge {edge}: weight has the complex dtype {weight.dtype}; synaptic weights are real "
            "(pass weight.real to drop the imaginary part)"
        )
    if sp.issparse(weight):
        return sp.coo_array(weight)
    if isinstance(weight, torch.Tensor):
        return weight.detach().cpu().double().numpy()
    return weight.astype(float)


def _delay_array(delay: Any, layout: Any, rows: np.ndarray, cols: np.ndarray, edge: str) -> np.ndarray:
    """One delay per synapse from ``delay``: an int, an array shaped like ``layout`` (the weight, or
    a shared edge's pattern) or, for a sparse ``layout``, one per stored entry."""
    raw = _integer_delays(delay, edge)
    if raw.ndim == 0:
        values = np.full(rows.size, int(raw), dtype=np.int64)
    elif raw.shape == layout.shape:
        values = raw[rows, cols]
    elif sp.issparse(layout) and raw.shape == (rows.size,):
        values = raw
    else:
        expected = f"{layout.shape}" + (
            f" or ({rows.size},) aligned with weight.tocoo()" if sp.issparse(layout) else ""
        )
        raise ValueError(
            f"edge {edge}: delay must be an int or an int array of shape {expected}, got shape {raw.shape}"
        )
    return values


def _integer_delays(delay: Any, edge: str) -> np.ndarray:
    """``delay`` as an int64 array of whole non-negative steps (floats that are whole are taken)."""
    raw = np.asarray(delay.detach().cpu() if isinstance(delay, torch.Tensor) else delay)
    if raw.dtype.kind == "b":
        raise ValueError(
            f"edge {edge}: delays must be integers (timesteps), got booleans; "
            "give the number of steps (delay=1, or an int array), not True/False"
        )
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
            raise ValueError(f"edge {edge}: delays must be integers (timesteps), got {raw.dtype} values")
    elif raw.dtype.kind not in "iu":
        raise ValueError(f"edge {edge}: delays must be integers (timesteps), got dtype {raw.dtype}")
    raw = raw.astype(np.int64)
    if raw.size and raw.min() < 0:
        raise ValueError(f"edge {edge}: delays must be >= 0, got min {raw.min()}")
    return raw


def check_endpoints(pre: Any, post: Any, pre_kind: str, post_kind: str) -> None:
    """Inputs receive no synapses; ``li`` readouts send none."""
    if post_kind == "input":
        raise ValueError(f"edge {pre!r} -> {post!r} enters input {post!r}; inputs cannot receive synapses")
    if pre_kind == "li":
        raise ValueError(
            f"edge {pre!r} -> {post!r} leaves readout {pre!r}; an 'li' node does not spike, "
            "so it cannot be presynaptic (make it 'lif' or remove the edge)"
        )


_SINGLE_SYNAPSE = np.zeros(1, dtype=np.int64)
_SINGLE_SYNAPSE.setflags(write=False)


def _single_synapse(pre: Any, post: Any, weight: Any, delay: Any, trainable: bool) -> ProjectionSpec | None:
    """The fast path of a neuron-level edge (scalar weight and delay); ``None`` if it does not apply."""
    real, integer = (int, float, np.floating, np.integer), (int, np.integer)
    if (
        isinstance(weight, real)
        and not isinstance(weight, bool)
        and isinstance(delay, integer)
        and not isinstance(delay, bool)
        and math.isfinite(weight)
        and delay >= 0
    ):
        values = np.array([[float(weight)]])
        delays = np.array([delay], np.int64)
        return ProjectionSpec(
            pre,
            post,
            _SINGLE_SYNAPSE,
            _SINGLE_SYNAPSE,
            delays,
            values,
            _SINGLE_SYNAPSE,
            (1, 1),
            True,
            "dense",
            trainable,
        )
    return None


def _trainable(value: Any, edge: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"edge {edge}: trainable must be True or False, got {value!r}")
    return bool(value)


def _shared_pattern(
    shared: Any, values: np.ndarray, shape: tuple[int, int], edge: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """The synapses of a shared edge: ``(rows, cols, index, layout)`` from its index pattern.

    ``shared`` is a ``(post, pre)`` integer array (−1: no synapse; the synapses are the other
    entries in row-major order) or a scipy.sparse integer matrix (every stored entry a synapse, in
    the order of ``tocoo()``); each entry is a position in ``values.reshape(-1)``.  ``layout`` is
    the pattern itself, which a per-synapse ``delay`` follows.
    """
    if sp.issparse(shared):
        layout = sp.coo_array(shared)
        if layout.dtype.kind not in "iu":
            raise ValueError(f"edge {edge}: shared must hold integer indices into weight, got dtype {layout.dtype}")
        rows, cols, index = layout.row.astype(np.int64), layout.col.astype(np.int64), layout.data.astype(np.int64)
        lowest = 0
    else:
        layout = np.asarray(shared.detach().cpu() if isinstance(shared, torch.Tensor) else shared)
        if layout.dtype.kind not in "iu" or layout.dtype.kind == "b":
            raise ValueError(f"edge {edge}: shared must hold integer indices into weight, got dtype {layout.dtype}")
        layout = layout.astype(np.int64)
        if layout.shape == shape:
            rows, cols = (a.astype(np.int64) for a in np.nonzero(layout >= 0))
            index = layout[rows, cols]
        lowest = -1
    if layout.shape != shape:
        raise ValueError(
            f"edge {edge}: shared must have shape (post, pre) = {shape} (an int array with -1 for no "
            f"synapse, or a scipy.sparse int matrix), got {layout.shape}"
        )
    stored = index if sp.issparse(layout) else layout
    if stored.size and (stored.min() < lowest or stored.max() >= values.size):
        bad = stored.min() if stored.min() < lowest else stored.max()
        raise ValueError(
            f"edge {edge}: shared index {int(bad)} is out of range for {values.size} shared values "
            f"(valid: 0 … {values.size - 1}{', or -1 for no synapse' if lowest < 0 else ''})"
        )
    return rows, cols, index, layout


def _geometry(pre: Any, attrs: dict[str, Any], pre_shape: tuple[int, ...] | None, edge: str) -> ProjectionSpec:
    """The parameter and geometry (``conv``) of a ``kind="conv"`` or ``kind="pool"`` edge, as a
    :class:`ProjectionSpec` without synapses yet (:func:`_convolution` adds them)."""
    kind = attrs["kind"]
    if pre_shape is None:
        raise ValueError(
            f"edge {edge}: a {kind} edge needs a shaped pre population; give {pre!r} a shape such as "
            "(C, H, W) (add_input(name, (C, H, W)), add_lif(name, (C, H, W)), or the node attribute shape)"
        )
    geometry = {key: attrs[key] for key in ("stride", "padding", "dilation") if attrs.get(key) is not None}
    trainable = _trainable(attrs.get("trainable", kind == "conv"), edge)
    if kind == "pool":
        pool = attrs.get("pool", "sum")
        if pool not in POOLS:
            raise ValueError(f"edge {edge}: pool must be one of {POOLS}, got {pool!r}")
        if trainable or attrs.get("weight") is not None or "dilation" in geometry:
            raise ValueError(f"edge {edge}: a pooling has fixed weights and no dilation; give no weight or trainable")
        if attrs.get("kernel_size") is None:
            raise ValueError(f"edge {edge}: a pooling needs kernel_size")
        geometry.setdefault("stride", attrs["kernel_size"])  # PyTorch's default stride
        spec = conv_spec(
            pre_shape, edge=edge, out_channels=pre_shape[0], kernel_size=attrs["kernel_size"],
            groups=pre_shape[0], pool=pool, **geometry,
        )  # fmt: skip
        values = np.array([spec.value])
    else:
        if attrs.get("weight") is None:
            raise ValueError(f"edge {edge}: a conv edge needs weight, its kernel (C_out, C_in/groups, k…)")
        values = _as_sparse_or_dense(attrs["weight"], edge)
        if sp.issparse(values) or values.ndim != len(pre_shape) + 1:
            raise ValueError(
                f"edge {edge}: the kernel must be an array (C_out, C_in/groups, k…) with "
                f"{len(pre_shape) + 1} dimensions for the input shape {pre_shape}, got shape {np.shape(values)}"
            )
        kernel_size = attrs.get("kernel_size", values.shape[2:])
        spec = conv_spec(
            pre_shape, edge=edge, out_channels=values.shape[0], kernel_size=kernel_size,
            groups=attrs.get("groups", 1), **geometry,
        )  # fmt: skip
        if values.shape != spec.kernel_shape:
            raise ValueError(
                f"edge {edge}: the kernel has shape {values.shape}, but {pre!r} of shape {pre_shape} with "
                f"groups={spec.groups} and kernel_size={spec.kernel_size} needs {spec.kernel_shape}"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError(f"edge {edge}: the kernel contains NaN or inf")
    empty = np.zeros(0, dtype=np.int64)
    shape = (math.prod(spec.out_shape), math.prod(pre_shape))
    return ProjectionSpec(pre, None, empty, empty, empty, values, empty, shape, False, kind, trainable, spec)


def _convolution(
    pre: Any,
    post: Any,
    attrs: dict[str, Any],
    shapes: tuple[tuple[int, ...] | None, tuple[int, ...] | None],
    post_size: int,
    edge: str,
) -> ProjectionSpec:
    """The synapses of a ``kind="conv"`` or ``kind="pool"`` edge between shaped populations."""
    (pre_shape, post_shape), kind = shapes, attrs["kind"]
    geometry = _geometry(pre, attrs, pre_shape, edge)
    spec = geometry.conv
    flat_match = post_shape is None and post_size == math.prod(spec.out_shape)  # a flat post of that size
    if post_shape != spec.out_shape and not flat_match:
        have = f"shape {post_shape}" if post_shape is not None else f"size {post_size} and no shape"
        raise ValueError(
            f"edge {edge}: the {kind} of {pre!r} (shape {pre_shape}) gives the shape {spec.out_shape}, but "
            f"{post!r} has {have}; give {post!r} the shape {spec.out_shape}"
        )
    post_index, pre_index, tap = spec.synapses()
    delay = _tap_delays(attrs.get("delay", 1), spec, tap, edge)
    return dataclasses.replace(geometry, post=post, post_index=post_index, pre_index=pre_index, delay=delay, index=tap)


def _tap_delays(delay: Any, spec: ConvSpec, tap: np.ndarray, edge: str) -> np.ndarray:
    """One delay per synapse of a convolution or pooling: an int, or (convolution) an int array
    of the kernel's shape, one delay per tap."""
    raw = _integer_delays(delay, edge)
    per_tap = spec.pool is None and raw.shape == spec.kernel_shape
    if raw.ndim and not per_tap:
        taps = f", or an int array of the kernel's shape {spec.kernel_shape}" if spec.pool is None else ""
        raise ValueError(f"edge {edge}: delay must be an int{taps}, got an array of shape {raw.shape}")
    return raw.reshape(-1)[tap] if per_tap else np.full(tap.size, int(raw), dtype=np.int64)


def projection_spec(
    pre: Any,
    post: Any,
    attrs: dict[str, Any],
    pre_size: int,
    post_size: int,
    shapes: tuple[tuple[int, ...] | None, tuple[int, ...] | None] = (None, None),
    from_input: bool = False,
) -> ProjectionSpec:
    """Validate an edge's ``weight``/``delay``/``shared``/``trainable`` attributes (and for a
    ``kind="conv"``/``"pool"`` edge its geometry, given the ``shapes`` of pre and post; for an
    edge that learns its delays their range, ``from_input`` saying that ``pre`` is an input) and
    return its :class:`ProjectionSpec`."""
    learn = attrs.get("learn_delay", False)
    if not isinstance(learn, (bool, np.bool_)):
        raise ValueError(f"edge {pre!r} -> {post!r}: learn_delay must be True or False, got {learn!r}")
    if learn:
        return _learning_delays(pre, post, attrs, pre_size, post_size, shapes, from_input)
    if attrs.get("kind") in ("conv", "pool"):
        return _convolution(pre, post, attrs, shapes, post_size, f"{pre!r} -> {post!r}")
    if attrs.get("kind") is not None:
        raise ValueError(
            f"edge {pre!r} -> {post!r}: unknown edge kind {attrs['kind']!r}; an edge's kind is 'conv', "
            "'pool', or left out (a weight matrix)"
        )
    trainable, shared = attrs.get("trainable", True), attrs.get("shared")
    if attrs.get("scale") is not None and shared is None:
        raise ValueError(f"edge {pre!r} -> {post!r}: scale= applies to a shared edge (give shared= too)")
    if pre_size == post_size == 1 and shared is None and (trainable is True or trainable is False):
        single = _single_synapse(pre, post, attrs.get("weight"), attrs.get("delay", 1), trainable)
        if single is not None:
            return single
    edge = f"{pre!r} -> {post!r}"
    trainable = _trainable(trainable, edge)
    if "weight" not in attrs or attrs["weight"] is None:
        raise ValueError(f"edge {edge}: no weight; give a (post, pre) matrix (Graph.connect generates one)")
    weight = _as_sparse_or_dense(attrs["weight"], edge)
    shape = (post_size, pre_size)
    if shared is not None:
        if sp.issparse(weight):
            raise ValueError(f"edge {edge}: with shared=, weight is the array of shared values, not a sparse matrix")
        rows, cols, index, layout = _shared_pattern(shared, weight, shape, edge)
        values, kind = weight, "shared"
        scale = _synapse_scale(attrs.get("scale"), rows.size, edge)
    else:
        if weight.ndim == 0 and pre_size == post_size == 1:
            weight = weight.reshape(1, 1)
        if weight.shape != shape:
            raise ValueError(
                f"edge {edge}: weight must have shape (post, pre) = ({post_size}, {pre_size}), got {weight.shape}"
            )
        if sp.issparse(weight):  # every stored entry is a synapse; duplicates may carry other delays
            rows, cols, values = weight.row.astype(np.int64), weight.col.astype(np.int64), weight.data.astype(float)
        else:
            rows, cols = (a.ravel().astype(np.int64) for a in np.indices(weight.shape))
            values = weight
        index, layout, kind = np.arange(rows.size, dtype=np.int64), weight, "sparse" if sp.issparse(weight) else "dense"
        scale = None
    if not np.all(np.isfinite(values)):
        raise ValueError(f"edge {edge}: weight contains NaN or inf")
    delay = _delay_array(attrs.get("delay", 1), layout, rows, cols, edge)
    dense = not sp.issparse(layout)
    return ProjectionSpec(pre, post, rows, cols, delay, values, index, shape, dense, kind, trainable, scale=scale)


def _learning_delays(
    pre: Any,
    post: Any,
    attrs: dict[str, Any],
    pre_size: int,
    post_size: int,
    shapes: tuple[tuple[int, ...] | None, tuple[int, ...] | None],
    from_input: bool,
) -> ProjectionSpec:
    """The :class:`ProjectionSpec` of an edge with ``learn_delay``: its synapses as without, and
    one real delay per entry of its parameter (``delay_real`` when given, as ``to_graph`` writes
    it, else ``delay``), in its ``delay_range``."""
    edge = f"{pre!r} -> {post!r}"
    spec = delay_spec(attrs, edge, lowest=0 if from_input else 1)
    plain = {key: value for key, value in attrs.items() if not key.startswith(("delay", "learn_delay"))}
    base = projection_spec(pre, post, {**plain, "delay": 0}, pre_size, post_size, shapes, from_input)
    given = attrs.get("delay_real")
    given = attrs.get("delay", 1) if given is None else given
    if base.kind == "sparse" and np.shape(given) == base.shape:  # a (post, pre) matrix: its stored entries
        given = np.asarray(given.detach().cpu() if isinstance(given, torch.Tensor) else given)[
            base.post_index, base.pre_index
        ]
    tau = initial_delays(given, base.values.shape, spec, edge)
    rounded = np.round(tau).astype(np.int64).reshape(-1)[base.index]
    return dataclasses.replace(base, delay=rounded, delays=spec, delay_values=tau)


def _synapse_scale(scale: Any, n_synapses: int, edge: str) -> np.ndarray | None:
    """A shared edge's fixed factor per synapse, float64 ``[n_synapses]`` (``None``: all ones)."""
    if scale is None:
        return None
    array = np.asarray(scale.detach().cpu() if isinstance(scale, torch.Tensor) else scale)
    if array.dtype.kind not in "iuf" or array.shape != (n_synapses,):
        raise ValueError(
            f"edge {edge}: scale must be a real array with one factor per synapse, shape ({n_synapses},) "
            f"(aligned with the shared pattern's synapses), got {array.dtype} of shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"edge {edge}: scale contains NaN or inf")
    return array.astype(np.float64)


def _delay_learning(
    learn: bool, delay_range: Any, kernel: str, window: int | None, sigma: float | None
) -> dict[str, Any]:
    """The edge attributes of :meth:`Graph.connect`'s delay learning arguments (none without it)."""
    if not learn:
        return {}
    return {
        "learn_delay": learn,
        "delay_range": delay_range,
        "delay_kernel": kernel,
        "delay_window": window,
        "delay_sigma": sigma,
    }


def random_weight(post: int, pre: int, density: float = 1.0, seed: int | None = None) -> sp.coo_array:
    """A random ``(post, pre)`` weight: pattern of the given density, values uniform in ±1/sqrt(fan-in)."""
    if not 0 < density <= 1:
        raise ValueError(f"density must lie in (0, 1], got {density}")
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(max(1.0, density * pre))
    n = post * pre
    count = round(density * n)
    flat = np.sort(rng.choice(n, size=count, replace=False)) if count < n else np.arange(n)
    values = rng.uniform(-bound, bound, size=flat.size)
    return sp.coo_array((values, np.unravel_index(flat, (post, pre))), shape=(post, pre))


def random_delays(weight: Any, low: int, high: int, seed: int | None = None) -> np.ndarray:
    """One integer delay per synapse of ``weight``, uniform in ``[low, high]``.

    For a scipy.sparse weight the result is aligned with ``weight.tocoo()``; for a dense one it
    has the weight's shape.  Pass it as ``delay=`` to :meth:`Graph.connect`.
    """
    if low < 0 or high < low:
        raise ValueError(f"need 0 <= low <= high, got low={low}, high={high}")
    rng = np.random.default_rng(seed)
    shape = (sp.coo_array(weight).nnz,) if sp.issparse(weight) else np.shape(weight)
    return rng.integers(low, high + 1, size=shape, dtype=np.int64)


class Graph:
    """A spiking network as populations (nodes) and projections (edges).

    >>> g = Graph()
    >>> g.add_input("x", 4)
    >>> g.add_lif("h", 8, alpha=0.9)
    >>> g.add_li("out", 2)
    >>> g.connect("x", "h", delay=0)
    >>> g.connect("h", "h", density=0.5, seed=0)
    >>> g.connect("h", "out")
    """

    def __init__(self) -> None:
        self.nx = nx.DiGraph()

    def _add(self, name: Any, attrs: dict[str, Any]) -> None:
        if name in self.nx:
            raise ValueError(f"node {name!r} exists already; population names must be unique")
        size = attrs.pop("size")
        if isinstance(size, (tuple, list)):
            attrs["shape"] = tuple(size)
            attrs["size"] = math.prod(size) if all(isinstance(n, (int, np.integer)) for n in size) else size
        elif size is not None:
            attrs["size"] = size
        if size is None:  # sized later by the convolution or pooling into it
            per_neuron = [key for key in NAMED if np.ndim(attrs.get(key, 0)) > 0]
            if per_neuron:
                raise ValueError(
                    f"node {name!r}: {per_neuron} hold one value per neuron but the node has no size yet; "
                    "give its size (or shape), or scalars"
                )
            population_spec(name, {**attrs, "size": 1})  # validates all but the size
            attrs["size"] = None
        else:
            population_spec(name, attrs)  # validates
        self.nx.add_node(name, **attrs)

    def add_input(self, name: Any, size: int | tuple[int, ...]) -> None:
        """Add ``size`` input channels, fed by the ``x`` given to the model; a tuple such as
        ``(C, H, W)`` gives them a shape (flattened in C order)."""
        self._add(name, {"kind": "input", "size": size})

    def _add_neurons(self, name: Any, kind: str, size: Any, params: dict[str, Any]) -> None:
        self._add(name, {"kind": kind, "size": size, **{k: v for k, v in params.items() if v is not None}})

    def add_lif(
        self,
        name: Any,
        size: int | tuple[int, ...] | None = None,
        *,
        alpha: Any = 0.9,
        theta: Any = 1.0,
        reset: str = "subtract",
        bias: Any = 0.0,
        alpha_syn: Any = None,
        v_leak: Any = 0.0,
    ) -> None:
        """Add ``size`` LIF neurons: ``U[t] = α·U[t−1] + (1 − α)·v_leak + I[t] + bias − reset``,
        ``S[t] = H(U[t] − θ)``.

        ``alpha_syn = β`` adds a current-based synapse (CubaLIF; snnTorch ``Synaptic(alpha=β,
        beta=α)``): ``J[t] = β·J[t−1] + I[t] + bias`` and ``J[t]`` takes the place of
        ``I[t] + bias`` in U.  Every parameter is a scalar or one value per neuron; decays lie in
        [0, 1].  See :mod:`snngraph.kinds` for the resets.

        ``size`` is an int, or a shape such as ``(C, H, W)`` (flattened in C order, as PyTorch and
        NIR do); left out, the population takes the output shape of the first convolution or
        pooling into it (:meth:`connect_conv`, :meth:`connect_pool`).  The same holds for every
        ``add_*`` method.
        """
        params = {"alpha": alpha, "theta": theta, "bias": bias, "alpha_syn": alpha_syn, "v_leak": v_leak}
        self._add_neurons(name, "lif", size, {**params, "reset": reset})

    def add_alif(
        self,
        name: Any,
        size: int | tuple[int, ...] | None = None,
        *,
        alpha_adapt: Any,
        adapt: Any,
        alpha: Any = 0.9,
        theta: Any = 1.0,
        reset: str = "subtract",
        bias: Any = 0.0,
        alpha_syn: Any = None,
        v_leak: Any = 0.0,
    ) -> None:
        """Add ``size`` adaptive-threshold LIF neurons (Bellec et al. 2018): ``add_lif``'s membrane,
        ``a[t] = alpha_adapt·a[t−1] + S[t−1]`` and ``S[t] = H(U[t] − θ − adapt·a[t])``; the
        subtract reset removes the threshold that was crossed."""
        params = {"alpha": alpha, "theta": theta, "bias": bias, "alpha_syn": alpha_syn, "v_leak": v_leak}
        self._add_neurons(name, "alif", size, {**params, "alpha_adapt": alpha_adapt, "adapt": adapt, "reset": reset})

    def add_adlif(
        self,
        name: Any,
        size: int | tuple[int, ...] | None = None,
        *,
        alpha_adapt: Any,
        a: Any,
        b: Any,
        alpha: Any = 0.9,
        theta: Any = 1.0,
        reset: str = "subtract",
        bias: Any = 0.0,
        symplectic: bool = True,
    ) -> None:
        """Add ``size`` adaptive LIF neurons with an adaptation current W (Bittar & Garner 2022):
        ``U[t] = α·U[t−1] + (1 − α)·(I[t] + bias − W[t−1]) − reset`` and
        ``W[t] = β·W[t−1] + (1 − β)·(a·U + b·S[t−1])`` with ``β = alpha_adapt``; ``U`` is
        ``U[t]`` when ``symplectic`` (SE-adLIF, Baronig et al. 2024), else ``U[t−1]``."""
        params = {"alpha": alpha, "theta": theta, "bias": bias, "alpha_adapt": alpha_adapt, "a": a, "b": b}
        self._add_neurons(name, "adlif", size, {**params, "reset": reset, "symplectic": bool(symplectic)})

    def add_li(
        self,
        name: Any,
        size: int | tuple[int, ...] | None = None,
        *,
        alpha: Any = 0.9,
        bias: Any = 0.0,
        alpha_syn: Any = None,
        v_leak: Any = 0.0,
    ) -> None:
        """Add ``size`` leaky-integrator readouts: ``U[t] = α·U[t−1] + (1 − α)·v_leak + I[t] + bias``,
        no spikes; ``alpha_syn`` adds a synaptic current as in :meth:`add_lif` (CubaLI)."""
        params = {"alpha": alpha, "bias": bias, "alpha_syn": alpha_syn, "v_leak": v_leak}
        self._add_neurons(name, "li", size, {**params, "reset": "none"})

    def add_neurons(
        self,
        name: Any,
        size: int | tuple[int, ...] | None = None,
        *,
        A: Any,
        e: Any,
        b: Any = 0.0,
        c: Any = 0.0,
        r: Any = None,
        g: Any = 0.0,
        theta: Any = 1.0,
        reset: str = "subtract",
    ) -> None:
        """Add ``size`` generic neurons given by their linear state update (docs/design.md,
        "Neurons"): ``v[t] = A·m(v[t−1]) + e·I[t] + b + (c − s·θ_eff[t−1]·r)·S[t−1]``,
        ``θ_eff = θ + g·v``, ``S[t] = H(v₀[t] − θ_eff[t])``.  ``A`` is ``(K, K)`` (or
        ``(K, K, size)``), the vectors ``(K,)`` (or ``(K, size)``); ``r`` defaults to ``(1, 0, …)``."""
        params = {"A": A, "e": e, "b": b, "c": c, "r": r, "g": g, "theta": theta}
        self._add_neurons(name, "neurons", size, {**params, "reset": reset})

    def connect(
        self,
        pre: Any,
        post: Any,
        *,
        weight: Any = None,
        delay: Any = 1,
        density: float | None = None,
        seed: int | None = None,
        shared: Any = None,
        trainable: bool = True,
        scale: Any = None,
        learn_delay: bool = False,
        delay_range: tuple[int, int] | None = None,
        delay_kernel: str = "linear",
        delay_window: int | None = None,
        delay_sigma: float | None = None,
    ) -> None:
        """Project ``pre`` onto ``post``.

        ``weight`` has shape ``(post, pre)``: a numpy array or torch tensor (every entry is a
        synapse) or a scipy.sparse matrix (its stored entries are the synapses).  ``None``
        draws one with :func:`random_weight` (``density`` defaults to 1).  ``delay`` is an int,
        an int array of shape ``(post, pre)``, or for a sparse weight a 1-D array aligned with
        ``weight.tocoo()`` (see :func:`random_delays`).

        Tied weights: with ``shared``, ``weight`` is an array of values (the edge's parameter, in
        any shape) and ``shared`` says which entry of ``weight.reshape(-1)`` each synapse takes, as
        a ``(post, pre)`` int array (−1: no synapse) or as a scipy.sparse int matrix (every stored
        entry a synapse, explicit zeros and repeated ``(post, pre)`` pairs included; ``delay`` may
        then be aligned with ``shared.tocoo()``).  Synapse ``post ← pre`` has the weight
        ``weight.reshape(-1)[shared[post, pre]]``, times its fixed factor ``scale`` if given (one
        per synapse, in the same order), and the gradient of a value is the sum over its synapses
        (times their factors).

        ``trainable=False`` fixes the edge: its values are constants of the model (a buffer, no
        gradient).

        ``learn_delay=True`` makes the delays real and trained (docs/design.md, "Learnable
        delays"): one per entry of the edge's parameter (per synapse of a dense or sparse edge,
        per shared value), each in ``delay_range=(low, high)`` (whole steps, ``low >= 1``
        between neurons, ``>= 0`` from an input), ``delay`` then the initial ones (a number or an
        array of the parameter's shape).  ``delay_kernel`` spreads a delay over integer taps:
        ``"linear"`` (two) or ``"gaussian"`` (``delay_window`` taps, default the whole range, of
        width ``delay_sigma``, default a quarter of the window, annealed with
        ``SNN.set_delay_sigma``).
        """
        self._check_new_edge(pre, post)
        if weight is None:
            if shared is not None:
                raise ValueError(f"edge {pre!r} -> {post!r}: shared= needs weight, the array of shared values")
            weight = random_weight(
                self.population_size(post), self.population_size(pre), 1.0 if density is None else density, seed
            )
        elif density is not None:
            raise ValueError(f"edge {pre!r} -> {post!r}: give either weight or density, not both")
        attrs = {"weight": weight, "delay": delay, "shared": shared, "trainable": trainable, "scale": scale}
        attrs.update(_delay_learning(learn_delay, delay_range, delay_kernel, delay_window, delay_sigma))
        shapes = (self.population_shape(pre), self.population_shape(post))
        sizes = self.population_size(pre), self.population_size(post)
        spec = projection_spec(pre, post, attrs, *sizes, shapes, self.nx.nodes[pre]["kind"] == "input")
        self.nx.add_edge(pre, post, **spec.attributes())

    def _check_new_edge(self, pre: Any, post: Any) -> None:
        for node in (pre, post):
            if node not in self.nx:
                raise ValueError(f"unknown node {node!r}; add it first (add_input, add_lif, add_li)")
        check_endpoints(pre, post, self.nx.nodes[pre]["kind"], self.nx.nodes[post]["kind"])
        if self.nx.has_edge(pre, post):
            raise ValueError(f"edge {pre!r} -> {post!r} exists already; give one weight per pair of nodes")

    def connect_conv(
        self,
        pre: Any,
        post: Any,
        *,
        kernel: Any = None,
        out_channels: int | None = None,
        kernel_size: Any = None,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        delay: Any = 1,
        seed: int | None = None,
        trainable: bool = True,
        learn_delay: bool = False,
        delay_range: tuple[int, int] | None = None,
        delay_kernel: str = "linear",
        delay_window: int | None = None,
        delay_sigma: float | None = None,
    ) -> None:
        """Project ``pre`` (shape ``(C_in, L)`` or ``(C_in, H, W)``) onto ``post`` by a 1-D or 2-D
        convolution with PyTorch's semantics (``torch.nn.Conv1d/Conv2d`` without bias; a bias is
        the post neurons' ``bias``): synapses that share the kernel (docs/design.md,
        "Convolutions and pooling").

        ``kernel`` is the weight ``(C_out, C_in/groups, k…)`` (numpy or torch); left out, it is
        drawn as PyTorch initialises a convolution (uniform on ``±1/√(C_in/groups·∏k)``, from
        ``seed``) with ``out_channels`` (default: the channels of ``post``'s shape) and
        ``kernel_size``.  ``stride``, ``dilation`` are ints or one per dimension; ``padding`` an
        int, one per dimension, ``(before, after)`` pairs per dimension, ``"valid"`` or ``"same"``.
        ``delay`` is an int or an int array of the kernel's shape (one delay per tap).  ``post``
        takes the output shape if it has no size, and must have it otherwise.  The edge trains
        one parameter, the kernel, unless ``trainable=False``; ``learn_delay`` and the other
        ``delay_*`` arguments (as in :meth:`connect`) train one real delay per kernel tap.
        """
        edge = f"{pre!r} -> {post!r}"
        self._check_new_edge(pre, post)
        in_shape, out_shape = self.population_shape(pre), self.population_shape(post)
        if kernel is not None:
            kernel = np.asarray(_as_sparse_or_dense(kernel, edge), dtype=float)
            given = {"out_channels": out_channels, "kernel_size": kernel_size}
            if kernel.ndim < 3:
                raise ValueError(f"edge {edge}: kernel must be (C_out, C_in/groups, k…), got shape {kernel.shape}")
            implied = {"out_channels": kernel.shape[0], "kernel_size": kernel.shape[2:]}
            if isinstance(kernel_size, (int, np.integer)):  # one size for every dimension, as in PyTorch
                given["kernel_size"] = (int(kernel_size),) * (kernel.ndim - 2)
            for key, value in given.items():
                if value is not None and np.atleast_1d(value).tolist() != np.atleast_1d(implied[key]).tolist():
                    raise ValueError(f"edge {edge}: {key}={value!r} does not match the kernel's shape {kernel.shape}")
            out_channels, kernel_size = implied["out_channels"], implied["kernel_size"]
        if kernel_size is None:
            raise ValueError(f"edge {edge}: give kernel_size (or the kernel itself)")
        if out_channels is None:
            if out_shape is None:
                raise ValueError(f"edge {edge}: give out_channels (or the kernel, or a shape for {post!r})")
            out_channels = out_shape[0]
        if in_shape is None:
            raise ValueError(f"edge {edge}: {pre!r} has no shape; give it one such as (C, H, W) to convolve it")
        spec = conv_spec(
            in_shape, edge=edge, out_channels=out_channels, kernel_size=kernel_size,
            stride=stride, padding=padding, dilation=dilation, groups=groups,
        )  # fmt: skip
        if kernel is None:
            kernel = default_kernel(spec.kernel_shape, seed)
        attrs = {**spec.attributes(), "weight": kernel, "delay": delay, "trainable": trainable}
        learning = _delay_learning(learn_delay, delay_range, delay_kernel, delay_window, delay_sigma)
        self._add_structured_edge(pre, post, {**attrs, **learning})

    def connect_pool(
        self,
        pre: Any,
        post: Any,
        *,
        kind: str = "sum",
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        delay: Any = 1,
        learn_delay: bool = False,
        delay_range: tuple[int, int] | None = None,
        delay_kernel: str = "linear",
        delay_window: int | None = None,
        delay_sigma: float | None = None,
    ) -> None:
        """Project ``pre`` (shape ``(C, L)`` or ``(C, H, W)``) onto ``post`` by a sum or average
        pooling per channel (``kind``; ``"avg"`` divides by ``∏kernel_size``, as ``avg_pool2d``
        with ``count_include_pad=True`` does), with fixed weights.  ``stride`` defaults to
        ``kernel_size``, as in PyTorch; ``padding`` and the shape of ``post`` as in
        :meth:`connect_conv`; ``delay`` is an int, or with ``learn_delay`` (the other ``delay_*``
        arguments as in :meth:`connect`) the initial real delay of the whole pooling, which
        trains (a pooling's synapses share its one value, so they share its delay)."""
        self._check_new_edge(pre, post)
        attrs = {"kind": "pool", "pool": kind, "kernel_size": kernel_size, "stride": stride, "padding": padding}
        learning = _delay_learning(learn_delay, delay_range, delay_kernel, delay_window, delay_sigma)
        self._add_structured_edge(pre, post, {**attrs, "delay": delay, "trainable": False, **learning})

    def add_projection(self, spec: ProjectionSpec) -> None:
        """Add the edge of a :class:`ProjectionSpec` (one read from a graph or a compiled network),
        through :meth:`connect`, :meth:`connect_conv` or :meth:`connect_pool`."""
        attrs = spec.attributes()
        if spec.delays is not None:  # the real delays, not their rounding
            attrs["delay"] = attrs.pop("delay_real")
        if spec.kind == "pool":
            self._check_new_edge(spec.pre, spec.post)
            self._add_structured_edge(spec.pre, spec.post, attrs)
        elif spec.kind == "conv":
            attrs.pop("kind")
            self.connect_conv(spec.pre, spec.post, kernel=attrs.pop("weight"), **attrs)
        else:
            self.connect(spec.pre, spec.post, **attrs)

    def _add_structured_edge(self, pre: Any, post: Any, attrs: dict[str, Any]) -> None:
        """Add a convolution or pooling edge; ``post`` without a size takes its output shape (and
        is validated again with it)."""
        node, pre_shape = self.nx.nodes[post], self.population_shape(pre)
        unsized = node.get("size", 1) is None
        if unsized:
            out_shape = _geometry(pre, attrs, pre_shape, f"{pre!r} -> {post!r}").conv.out_shape
            shapes, post_size = (pre_shape, out_shape), math.prod(out_shape)
        else:
            shapes, post_size = (pre_shape, self.population_shape(post)), self.population_size(post)
        from_input = self.nx.nodes[pre]["kind"] == "input"
        spec = projection_spec(pre, post, attrs, self.population_size(pre), post_size, shapes, from_input)
        if unsized:
            node.update(size=post_size, shape=shapes[1])
            population_spec(post, node)
        self.nx.add_edge(pre, post, **spec.attributes())

    def population_size(self, name: Any) -> int:
        """The number of neurons (or input channels) of node ``name``.  (Not ``size``: networkx's
        ``size()`` counts edges.)"""
        if name not in self.nx:
            raise KeyError(f"no node {name!r}; the graph has {list(self.nx.nodes)[:20]}")
        size = self.nx.nodes[name].get("size", 1)
        if size is None:
            raise ValueError(
                f"node {name!r} has no size yet; connect a convolution or pooling into it first "
                "(connect_conv/connect_pool), or give it a size"
            )
        return int(size)

    def population_shape(self, name: Any) -> tuple[int, ...] | None:
        """The shape of node ``name`` (``None`` for a flat population or one without a size yet)."""
        if name not in self.nx:
            raise KeyError(f"no node {name!r}; the graph has {list(self.nx.nodes)[:20]}")
        shape = self.nx.nodes[name].get("shape")
        return None if shape is None else tuple(shape)

    @classmethod
    def from_networkx(cls, graph: nx.DiGraph) -> Graph:
        """Wrap a copy of a networkx graph (nodes and edges as described in the module doc)."""
        if not isinstance(graph, nx.DiGraph) or graph.is_multigraph():
            raise TypeError(f"expected a networkx.DiGraph, got {type(graph).__name__}")
        result = cls()
        result.nx = graph.copy()
        return result

    def to_networkx(self) -> nx.DiGraph:
        """A copy of the underlying networkx graph."""
        return self.nx.copy()

    def __repr__(self) -> str:
        nodes = ", ".join(f"{n!r}:{d.get('kind')}[{d.get('size', 1)}]" for n, d in self.nx.nodes(data=True))
        return f"Graph({nodes}; {self.nx.number_of_edges()} edges)"
