"""Bad input gets a clear error that names the node or edge and what to change."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch

import snngraph
from snngraph import SNN, Graph


def _pair() -> Graph:
    g = Graph()
    g.add_input("x", 2)
    g.add_lif("h", 3)
    return g


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda g: g.add_lif("h", 2), ValueError, "node 'h' exists already"),
        (lambda g: g.add_lif("a", 0), ValueError, "node 'a': size must be a positive int"),
        (lambda g: g.add_lif("a", 2.5), ValueError, "node 'a': size must be a positive int"),
        (lambda g: g.add_lif("a", 2, reset="hard"), ValueError, r"node 'a': unknown reset 'hard'; choose one of"),
        (
            lambda g: g.add_lif("a", 2, alpha=[0.5, 0.6, 0.7]),
            ValueError,
            r"node 'a': alpha must be a scalar or have one value per neuron \(shape \(2,\)\)",
        ),
        (
            lambda g: g.add_lif("a", 2, alpha=1.5),
            ValueError,
            r"node 'a': alpha \(decay per step\) must lie in \[0, 1\]",
        ),
        (lambda g: g.add_lif("a", 2, theta=0.0), ValueError, r"node 'a': theta \(threshold\) must be positive"),
        (lambda g: g.add_lif("a", 2, theta=float("nan")), ValueError, "node 'a': theta contains NaN or inf"),
        (lambda g: g.connect("x", "nope"), ValueError, "unknown node 'nope'; add it first"),
        (
            lambda g: g.connect("x", "h", weight=np.ones((2, 3))),
            ValueError,
            r"edge 'x' -> 'h': weight must have shape \(post, pre\) = \(3, 2\), got \(2, 3\)",
        ),
        (
            lambda g: g.connect("x", "h", weight=np.full((3, 2), np.nan)),
            ValueError,
            "edge 'x' -> 'h': weight contains NaN or inf",
        ),
        (lambda g: g.connect("x", "h", delay=-1), ValueError, r"edge 'x' -> 'h': delays must be >= 0"),
        (lambda g: g.connect("x", "h", delay=1.5), ValueError, r"edge 'x' -> 'h': delays must be integers"),
        (
            lambda g: g.connect("x", "h", weight=np.ones((3, 2)), delay=np.ones((2, 2), int)),
            ValueError,
            r"edge 'x' -> 'h': delay must be an int or an int array of shape \(3, 2\)",
        ),
        (
            lambda g: g.connect("x", "h", weight=np.ones((3, 2)), density=0.5),
            ValueError,
            "give either weight or density",
        ),
        (lambda g: g.connect("x", "h", density=1.5), ValueError, r"density must lie in \(0, 1\]"),
        (lambda g: g.connect("h", "x"), ValueError, "edge 'h' -> 'x' enters input 'x'"),
    ],
)
def test_graph_building_errors(build, error, message) -> None:
    g = _pair()
    with pytest.raises(error, match=message):
        build(g)


def test_edge_exists_already() -> None:
    g = _pair()
    g.connect("x", "h")
    with pytest.raises(ValueError, match="edge 'x' -> 'h' exists already"):
        g.connect("x", "h")


def test_sparse_delay_must_align_with_stored_entries() -> None:
    g = _pair()
    weight = sp.random(3, 2, density=1.0, random_state=0)
    with pytest.raises(ValueError, match=r"\(6,\) aligned with weight.tocoo\(\)"):
        g.connect("x", "h", weight=weight, delay=np.ones(4, int))


@pytest.mark.parametrize(
    ("node", "edge", "message"),
    [
        ({"kind": "neuron"}, None, r"node 'a': unknown kind 'neuron'; set the node attribute 'kind' to one of"),
        ({}, None, "node 'a': unknown kind None"),
        (
            {"kind": "li", "reset": "subtract"},
            None,
            "node 'a': a 'li' node does not spike, so its reset must be 'none'",
        ),
        ({"kind": "li"}, ("a", "b", {"weight": 1.0}), "edge 'a' -> 'b' leaves readout 'a'.*cannot be presynaptic"),
        ({"kind": "lif"}, ("a", "b", {"delay": 1}), "edge 'a' -> 'b': no weight"),
        ({"kind": "lif"}, ("a", "b", {"weight": 1.0, "delay": np.int64(-2)}), "edge 'a' -> 'b': delays must be >= 0"),
    ],
)
def test_networkx_graph_errors(node, edge, message) -> None:
    g = nx.DiGraph()
    g.add_node("a", **node)
    g.add_node("b", kind="lif")
    if edge:
        g.add_edge(edge[0], edge[1], **edge[2])
    with pytest.raises(ValueError, match=message):
        snngraph.compile(g)


def test_graph_without_neurons() -> None:
    g = Graph()
    g.add_input("x", 1)
    with pytest.raises(ValueError, match="the graph has no neurons"):
        snngraph.compile(g)


def test_compile_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match=r"expected a snngraph\.Graph or networkx\.DiGraph, got dict"):
        snngraph.compile({})
    with pytest.raises(TypeError, match=r"expected a networkx\.DiGraph, got MultiDiGraph"):
        Graph.from_networkx(nx.MultiDiGraph())


def test_zero_delay_cycle_is_named_with_the_delay_it_needs() -> None:
    g = _pair()
    g.add_lif("k", 2)
    g.connect("h", "k", delay=0)
    g.connect("k", "h", delay=1)
    with pytest.raises(
        ValueError, match=r"cycle '(h' -> 'k' -> 'h|k' -> 'h' -> 'k)' has total delay 1 over 2 hops.*add 1 step"
    ):
        snngraph.compile(g)
    net = snngraph.compile(g, zero_delay="promote")
    assert net.rec_delay.min() == 1


def test_zero_delay_self_loop_is_a_cycle() -> None:
    g = _pair()
    g.connect("h", "h", delay=0)
    with pytest.raises(ValueError, match=r"cycle 'h' -> 'h' has total delay 0 over 1 hops.*add 1 step"):
        snngraph.compile(g)


def test_zero_delay_error_mode_names_the_edge() -> None:
    g = _pair()
    g.add_lif("k", 2)
    g.connect("x", "h", delay=0)  # from an input: always fine
    g.connect("h", "k", delay=0)
    with pytest.raises(ValueError, match="edge 'h' -> 'k' has zero-delay synapses between neurons"):
        snngraph.compile(g, zero_delay="error")
    with pytest.raises(ValueError, match="unknown zero_delay 'maybe'; choose one of"):
        snngraph.compile(g, zero_delay="maybe")


def _model(**kwargs) -> SNN:
    g = _pair()
    g.connect("x", "h")
    return SNN(snngraph.compile(g), **{"backend": "reference", **kwargs})


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (torch.zeros(5, 2, 3), ValueError, r"x must have shape \[T, B, n_inputs\] = \[T >= 1, B, 2\], got \(5, 2, 3\)"),
        (torch.zeros(5, 2), ValueError, r"x must have shape \[T, B, n_inputs\]"),
        (torch.zeros(0, 2, 2), ValueError, r"\[T >= 1, B, 2\], got \(0, 2, 2\)"),
        (
            torch.zeros(5, 2, 2, dtype=torch.float64),
            TypeError,
            r"x has dtype torch.float64 but the model is torch.float32",
        ),
        (np.zeros((5, 2, 2)), TypeError, "x must be a torch.Tensor"),
        ({"y": torch.zeros(5, 2, 2)}, ValueError, r"input dict: unknown names \['y'\], missing names \['x'\]"),
        ({"x": torch.zeros(5, 2, 3)}, ValueError, r"input 'x': expected a tensor \[T, B, 2\], got \(5, 2, 3\)"),
    ],
)
def test_module_input_errors(x, error, message) -> None:
    with pytest.raises(error, match=message):
        _model()(x)


def test_module_option_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown backend 'gpu'; choose one of \['auto', 'reference'"):
        _model(backend="gpu")
    with pytest.raises(TypeError, match=r"surrogate must be a snngraph\.surrogates\.Surrogate"):
        _model(surrogate=lambda x: x)
    with pytest.raises(TypeError, match="SNN takes a CompiledNetwork"):
        SNN(_pair())
    with pytest.raises(ValueError, match="Sigmoid: slope must be a positive finite number"):
        snngraph.surrogates.Sigmoid(-1.0)


def test_state_with_wrong_batch_is_refused() -> None:
    model = _model()
    state = model(torch.zeros(4, 3, 2)).state
    with pytest.raises(ValueError, match=r"state.u must be \(2, 3\) torch.float32 on cpu \(batch 2\), got \(3, 3\)"):
        model(torch.zeros(4, 2, 2), state)


def test_unknown_population_and_edge_are_named() -> None:
    model = _model()
    out = model(torch.zeros(4, 1, 2))
    with pytest.raises(KeyError, match="no population 'z'"):
        out.spikes("z")
    with pytest.raises(ValueError, match="'x' is an input"):
        out.spikes("x")
    with pytest.raises(KeyError, match="no edge 'h' -> 'x'"):
        model.weight("h", "x")
