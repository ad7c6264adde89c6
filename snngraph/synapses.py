"""The edges' parameters of an :class:`~snngraph.SNN` and their map to the flat synapse weights
(docs/design.md, "Synapses").

Each edge ``e`` owns one tensor ``P_e`` in its natural shape (``EdgeInfo.param_shape``): a
Parameter when the edge trains, a buffer when it is fixed.  A call gathers the weights of the
``"input"`` and of the ``"recurrent"`` synapses that the backends see, one gather per target:

    w = cat(P_e.reshape(−1) for the target's edges e)[g],    g_k = offset(e_k) + index_k

(``index_k`` from the compiled network, ``offset`` the start of ``P_e`` in the concatenation).
Its gradient is the scatter-add ``∂L/∂P_e.reshape(−1)[j] = Σ_{k: g_k = offset(e) + j} ∂L/∂w_k``,
the sum over the synapses that read an entry (one synapse per entry for a dense or sparse edge,
many for a shared one).  When every synapse reads its own entry in order (``g`` is the
identity, every edge dense or sparse), the gather is the concatenation alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from snngraph.network import CompiledNetwork, EdgeInfo, gather_index

TARGETS = ("input", "recurrent")


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


class EdgeParameters(nn.Module):
    """The tensors of the edges by name (like ``torch.nn.ParameterDict``): ``weights[name]`` is a
    Parameter for an edge that trains and a buffer for a fixed one, so that ``state_dict`` holds
    both and ``parameters()`` only the former."""

    def __init__(self, net: CompiledNetwork, dtype: torch.dtype) -> None:
        super().__init__()
        self.names = edge_names(net.edges)
        self._known = frozenset(self.names)
        for name, edge in zip(self.names, net.edges, strict=True):
            value = torch.as_tensor(net.edge_values(edge).copy(), dtype=dtype)
            if edge.trainable:
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

    def forward(self, names: tuple[str, ...]) -> list[torch.Tensor]:
        """The tensors of ``names``, through the module's call, so that its forward pre-hooks (the
        masks of ``torch.nn.utils.prune``) apply first."""
        return [self[name] for name in names]

    def extra_repr(self) -> str:
        return "\n".join(f"({name}): {type(t).__name__} {tuple(t.shape)}" for name, t in self.items())


class SynapseGather(nn.Module):
    """The gathers of the ``"input"`` and ``"recurrent"`` weights from an :class:`EdgeParameters`:
    per target the names of its edges and the int64 buffer ``g`` (``in_gather``/``rec_gather``),
    or nothing where ``g`` is the identity."""

    def __init__(self, net: CompiledNetwork, names: tuple[str, ...]) -> None:
        super().__init__()
        by_edge = dict(zip(net.edges, names, strict=True))
        self.edge_names: dict[str, tuple[str, ...]] = {}
        self.identity: dict[str, bool] = {}
        for target, prefix in zip(TARGETS, ("in", "rec"), strict=True):
            edges = net.edges_of(target)
            index = gather_index(edges, net.synapse_index(target))
            self.edge_names[target] = tuple(by_edge[e] for e in edges)
            self.identity[target] = index.size == sum(e.param_size for e in edges) and bool(
                np.array_equal(index, np.arange(index.size))
            )
            self.register_buffer(f"{prefix}_gather", torch.as_tensor(index, dtype=torch.long), persistent=False)

    def forward(self, weights: EdgeParameters, target: str, like: torch.Tensor) -> torch.Tensor:
        """The flat weights ``w`` of ``target`` (empty, with the dtype and device of ``like``, when
        it has no synapses)."""
        flats = [tensor.reshape(-1) for tensor in weights(self.edge_names[target])]
        if not flats:
            return like.new_zeros(0)
        flat = flats[0] if len(flats) == 1 else torch.cat(flats)
        if self.identity[target]:
            return flat
        return flat.index_select(0, self.in_gather if target == "input" else self.rec_gather)


__all__ = ["EdgeParameters", "SynapseGather", "edge_names"]
