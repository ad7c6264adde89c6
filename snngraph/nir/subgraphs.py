"""Nested NIR graphs flattened into one graph with names ``"G.node"``.

A ``nir.NIRGraph`` may hold other graphs as nodes (snnTorch's ``RLeaky``, Rockpool's recurrent
blocks).  Their nodes are named ``"<graph>.<node>"``; their ``Input``/``Output`` nodes become
``Identity`` nodes, which pass values through, and an edge that names a subgraph ends at its
single ``Input`` (as a target) or ``Output`` (as a source).
"""

from __future__ import annotations

from typing import Any

FlatNodes = dict[str, tuple[Any, str]]
FlatEdges = list[tuple[str, str, str]]


def flatten(graph: Any, nir_module: Any, prefix: str = "") -> tuple[FlatNodes, FlatEdges]:
    """Nodes of ``graph`` and its subgraphs under flat names ``"G.node"``, and edges between them.

    Returns ``{flat name: (node, role)}`` (role is the NIR type name, ``"Identity"`` for the
    Input/Output nodes of subgraphs) and the edges as ``(flat source, flat target, as written)``.
    """
    nodes: FlatNodes = {}
    edges: FlatEdges = []
    for name, node in graph.nodes.items():
        flat = prefix + str(name)
        if isinstance(node, nir_module.NIRGraph):
            inner, inner_edges = flatten(node, nir_module, flat + ".")
            clashes = sorted(set(inner) & set(nodes))
            if clashes:
                raise ValueError(f"subgraph {flat!r}: flat names {clashes} clash with other nodes; rename them")
            nodes.update(inner)
            edges.extend(inner_edges)
            continue
        if flat in nodes:
            raise ValueError(f"node {flat!r} clashes with a node of a subgraph; rename one of them")
        role = type(node).__name__
        nodes[flat] = (node, "Identity" if prefix and role in ("Input", "Output") else role)
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


__all__ = ["FlatEdges", "FlatNodes", "flatten"]
