"""The edges' parameters of an :class:`~snngraph.SNN` and their map to the flat synapse weights
(docs/design.md, "Synapses").

Each edge ``e`` owns one tensor ``P_e`` in its natural shape (``EdgeInfo.param_shape``): a
Parameter when the edge trains, a buffer when it is fixed.  A call gathers the weights of the
``"input"`` and of the ``"recurrent"`` synapses that the backends see, one gather per target:

    w = cat(P_e.reshape(−1) for the target's edges e)[g] · c,    g_k = offset(e_k) + index_k

(``index_k`` and the fixed factors ``c_k`` from the compiled network, 1 except on shared edges
that give them; ``offset`` the start of ``P_e`` in the concatenation).  Its gradient is the
scatter-add ``∂L/∂P_e.reshape(−1)[j] = Σ_{k: g_k = offset(e) + j} c_k·∂L/∂w_k``,
the sum over the synapses that read an entry (one synapse per entry for a dense or sparse edge,
many for a shared one).  When every synapse reads its own entry in order (``g`` is the
identity, every edge dense or sparse), the gather is the concatenation alone.

With ``flat`` the edges' values are stored concatenated instead, one tensor per target for the
edges that train and one for the fixed ones (:func:`edge_slots`), and each ``P_e`` is a view of
its range: the same gather, with two autograd leaves instead of one per edge, for networks of
many small edges (a neuron-level graph with a scalar weight per edge).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from snngraph.network import CompiledNetwork, EdgeInfo

TARGETS = ("input", "recurrent")

MANY_EDGES = 1000
"""More edges that train than this, each its own Parameter, cost more per step (autograd leaves,
optimizer entries) than a small layer's forward and backward; ``SNN`` then suggests
``flat_weights=True``."""


def edge_names(edges: tuple[EdgeInfo, ...]) -> tuple[str, ...]:
    """A name per edge, ``"pre->post"`` with ``.`` (which torch refuses in names) as ``_``; a name
    taken by an earlier edge gets ``#2``, ``#3``, … so that the names are unique and follow from
    the edge order alone."""
    names: list[str] = []
    taken: set[str] = set()
    for e in edges:
        base = f"{e.pre}->{e.post}".replace(".", "_")
        name, copy = base, 1
        while name in taken:
            copy += 1
            name = f"{base}#{copy}"
        names.append(name)
        taken.add(name)
    return tuple(names)


@dataclass(frozen=True)
class Slot:
    """Where an edge's tensor lives: ``size`` entries from ``start`` of the flattened stored
    tensor ``tensor``, viewed in the edge's natural ``shape``."""

    tensor: str
    start: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def edge_slots(net: CompiledNetwork, flat: bool, delays: bool = False) -> dict[EdgeInfo, Slot]:
    """Each edge's :class:`Slot`: a tensor of its own named by :func:`edge_names`, or with ``flat``
    a range of one tensor per target and role: ``"input"``/``"recurrent"`` for the edges that
    train, ``"input_fixed"``/``"recurrent_fixed"`` for the fixed ones, in edge order.  With
    ``delays``, the slots of the real delays of the edges that learn them (all trained)."""
    names = dict(zip(net.edges, edge_names(net.edges), strict=True))
    edges = [e for e in net.edges if e.delays is not None] if delays else net.edges
    if not flat:
        return {e: Slot(names[e], 0, e.param_shape) for e in edges}
    slots: dict[EdgeInfo, Slot] = {}
    filled: dict[str, int] = {}
    for edge in edges:
        tensor = edge.target if edge.trainable or delays else f"{edge.target}_fixed"
        start = filled.get(tensor, 0)
        slots[edge] = Slot(tensor, start, edge.param_shape)
        filled[tensor] = start + math.prod(edge.param_shape)
    return slots


class EdgeParameters(nn.Module):
    """The stored tensors of the edges by name (like ``torch.nn.ParameterDict``): ``weights[name]``
    is a Parameter when it trains and a buffer when it is fixed, so that ``state_dict`` holds both
    and ``parameters()`` only the former.  One tensor per edge, or with ``flat`` one per target and
    role (:func:`edge_slots`).  With ``delays``, the real delays of the edges that learn them
    (Parameters of the edges' parameter shapes, :mod:`snngraph.delays`)."""

    def __init__(self, net: CompiledNetwork, dtype: torch.dtype, flat: bool = False, delays: bool = False) -> None:
        super().__init__()
        self.flat = flat
        self.slots = edge_slots(net, flat, delays)
        parts: dict[str, list[np.ndarray]] = {}
        trains: dict[str, bool] = {}
        for edge, slot in self.slots.items():
            parts.setdefault(slot.tensor, []).append(net.edge_delays(edge) if delays else net.edge_values(edge))
            trains[slot.tensor] = edge.trainable or delays
        self.names = tuple(parts)
        self._known = frozenset(self.names)
        for name, values in parts.items():
            stored = np.concatenate([v.reshape(-1) for v in values]) if flat else values[0]
            value = torch.as_tensor(stored.copy(), dtype=dtype)
            if trains[name]:
                self.register_parameter(name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self._known:
            raise KeyError(f"no edge parameter {name!r}; the model has {list(self.names)[:20]}")
        tensor = self._parameters.get(name)
        if tensor is None:
            tensor = self._buffers.get(name)
        return getattr(self, name) if tensor is None else tensor  # getattr: one that pruning recomputes

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._known

    def keys(self) -> tuple[str, ...]:
        return self.names

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        return ((name, self[name]) for name in self.names)

    def values(self) -> Iterator[torch.Tensor]:
        return (self[name] for name in self.names)

    def edge(self, edge: EdgeInfo, tensor: torch.Tensor | None = None) -> torch.Tensor:
        """The tensor of ``edge`` in its natural shape: the stored tensor itself when the edge has
        one of its own, else a view of its range (of ``tensor``, e.g. a ``.grad``, when given)."""
        slot = self.slots[edge]
        stored = self[slot.tensor] if tensor is None else tensor
        if not self.flat:
            return stored
        return stored[slot.start : slot.start + slot.size].view(slot.shape)

    def forward(self, names: tuple[str, ...]) -> list[torch.Tensor]:
        """The tensors of ``names``, through the module's call, so that its forward pre-hooks (the
        masks of ``torch.nn.utils.prune``) apply first."""
        return [self[name] for name in names]

    def extra_repr(self) -> str:
        return "\n".join(f"({name}): {type(t).__name__} {tuple(t.shape)}" for name, t in self.items())


class SynapseGather(nn.Module):
    """The gathers of the ``"input"`` and ``"recurrent"`` weights from an :class:`EdgeParameters`:
    per target the names of the stored tensors that its edges read and the int64 buffer ``g``
    (``in_gather``/``rec_gather``) into their concatenation, or nothing where ``g`` is the
    identity, and the synapses' fixed factors ``in_scale``/``rec_scale`` where there are any."""

    def __init__(self, net: CompiledNetwork, slots: dict[EdgeInfo, Slot], dtype: torch.dtype) -> None:
        super().__init__()
        self.tensor_names: dict[str, tuple[str, ...]] = {}
        self.identity: dict[str, bool] = {}
        for target, prefix in zip(TARGETS, ("in", "rec"), strict=True):
            edges = net.edges_of(target)
            sizes: dict[str, int] = {}
            for edge in edges:
                slot = slots[edge]
                sizes[slot.tensor] = max(sizes.get(slot.tensor, 0), slot.start + slot.size)
            offsets = dict(zip(sizes, np.cumsum([0, *sizes.values()])[:-1].tolist(), strict=True))
            starts = [offsets[slots[e].tensor] + slots[e].start for e in edges]
            index = net.synapse_index(target) + np.repeat(
                np.asarray(starts, dtype=np.int64), [e.n_synapses for e in edges]
            )
            self.tensor_names[target] = tuple(sizes)
            self.identity[target] = index.size == sum(sizes.values()) and bool(
                np.array_equal(index, np.arange(index.size))
            )
            self.register_buffer(f"{prefix}_gather", torch.as_tensor(index, dtype=torch.long), persistent=False)
            scale = net.synapse_scale(target)
            scale = None if scale is None else torch.as_tensor(scale, dtype=dtype)
            self.register_buffer(f"{prefix}_scale", scale, persistent=False)

    def forward(self, weights: EdgeParameters, target: str, like: torch.Tensor) -> torch.Tensor:
        """The flat weights ``w`` of ``target`` (empty, with the dtype and device of ``like``, when
        it has no synapses)."""
        flats = [tensor.reshape(-1) for tensor in weights(self.tensor_names[target])]
        if not flats:
            return like.new_zeros(0)
        flat = flats[0] if len(flats) == 1 else torch.cat(flats)
        prefix = "in" if target == "input" else "rec"
        weights = flat if self.identity[target] else flat.index_select(0, getattr(self, f"{prefix}_gather"))
        scale = getattr(self, f"{prefix}_scale")
        return weights if scale is None else weights * scale


__all__ = ["MANY_EDGES", "EdgeParameters", "Slot", "SynapseGather", "edge_names", "edge_slots"]
