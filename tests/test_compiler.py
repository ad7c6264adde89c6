"""The compiled single layer reproduces the graph simulated population by population."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from graph_checks import SURROGATES, assert_layer_equals_graph, biased_chain
from random_graphs import NEURON_KINDS, random_graph

import snngraph
from snngraph import SNN, Graph


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_biases_of_populations_that_start_late(backend: str) -> None:
    """A bias acts from a population's own graph time 0: a population that retiming delays by a
    lag is inert before it (no drive, no spikes, no surrogate gradient), in every chunk split."""
    graph = biased_chain()
    assert [p.lag for p in snngraph.compile(graph).populations] == [0, 1, 2]
    assert_layer_equals_graph(graph, 3, backend=backend, steps=12)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("seed", range(12))
def test_layer_equals_graph_with_mixed_neuron_kinds(seed: int, backend: str) -> None:
    """CubaLIF, ALIF, adLIF (both updates), generic neurons and CubaLI readouts, with delays,
    resets and zero-delay hops: the oracle writes each kind's own equations out (the Triton
    backend's run is in tests/triton_states_cases.py)."""
    graph = random_graph(seed, kinds=NEURON_KINDS)
    surrogate, detach = SURROGATES[seed % 4], seed % 3 == 0
    assert_layer_equals_graph(graph, seed, surrogate=surrogate, detach_reset=detach, backend=backend)


@pytest.mark.parametrize("seed", range(16))
def test_layer_equals_graph_on_random_graphs(seed: int) -> None:
    """Random populations, sizes, densities, delays 0..8, resets, readouts, skips, recurrence."""
    assert_layer_equals_graph(random_graph(seed), seed, surrogate=SURROGATES[seed % 4], detach_reset=seed % 3 == 0)


@pytest.mark.parametrize("seed", range(4))
def test_feedforward_chain_of_zero_delay_hops_gets_its_depth_as_lag(seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = Graph()
    g.add_input("x", 3)
    previous = "x"
    depth = 4
    for i in range(depth):
        g.add_lif(f"h{i}", int(rng.integers(2, 6)), reset=["subtract", "zero", "none"][i % 3])
        g.connect(
            previous,
            f"h{i}",
            weight=rng.uniform(0, 2, (g.population_size(f"h{i}"), g.population_size(previous))),
            delay=0,
        )
        previous = f"h{i}"
    g.add_li("out", 2)
    g.connect("h3", "out", delay=0, seed=seed)
    g.connect("h0", "out", delay=0, seed=seed + 1)  # a skip: it gets the extra delay that keeps it in step
    net = snngraph.compile(g)
    assert [p.lag for p in net.populations] == [0, 1, 2, 3, 4]
    skip = net.edge("h0", "out")
    assert set(net.rec_delay[skip.start : skip.stop]) == {4}
    assert_layer_equals_graph(g, seed)


@pytest.mark.parametrize("seed", range(6))
def test_promote_matches_graph_with_zero_delay_hops_set_to_one(seed: int) -> None:
    graph = random_graph(seed + 100)
    promoted = graph.to_networkx()
    kinds = nx.get_node_attributes(promoted, "kind")
    for u, _, attrs in promoted.edges(data=True):
        if kinds[u] != "input":
            delay = attrs["delay"]
            attrs["delay"] = max(delay, 1) if np.ndim(delay) == 0 else np.maximum(delay, 1)
    net = snngraph.compile(graph, zero_delay="promote")
    assert net.max_lag == 0
    assert_layer_equals_graph(graph, seed, zero_delay="promote", oracle_graph=Graph.from_networkx(promoted))


def test_graph_without_zero_delay_hops_needs_no_lag() -> None:
    net = snngraph.compile(random_graph(3, zero_delay=False))
    assert net.max_lag == 0


def test_compile_accepts_a_plain_networkx_graph_of_single_neurons() -> None:
    g = nx.DiGraph()
    g.add_node("in", kind="input")
    g.add_node("a", kind="lif", alpha=0.8, theta=0.5)
    g.add_node("b", kind="lif", reset="zero")
    g.add_node("out", kind="li")
    g.add_edge("in", "a", weight=1.2, delay=0)
    g.add_edge("a", "b", weight=0.9, delay=0)
    g.add_edge("b", "a", weight=-0.3, delay=3)
    g.add_edge("b", "out", weight=0.5, delay=2)
    net = snngraph.compile(g)
    assert net.n_neurons == 3
    assert [p.lag for p in net.populations] == [0, 1, 0]
    assert_layer_equals_graph(Graph.from_networkx(g), 0, steps=25)


def test_neuron_level_graph_with_many_synapses_compiles_vectorised() -> None:
    rng = np.random.default_rng(0)
    n, fan_in = 2000, 50
    g = nx.DiGraph()
    g.add_nodes_from(range(n), kind="lif")
    g.add_node("x", kind="input")
    pre = rng.integers(0, n, n * fan_in)
    post = np.repeat(np.arange(n), fan_in)
    g.add_edges_from(
        (int(i), int(j), {"weight": float(w), "delay": int(d)})
        for i, j, w, d in zip(pre, post, rng.normal(size=pre.size), rng.integers(1, 5, pre.size), strict=True)
        if i != j
    )
    g.add_edges_from(("x", i, {"weight": 1.0, "delay": 0}) for i in range(n))
    net = snngraph.compile(g)
    assert net.rec_weight.size == g.number_of_edges() - n
    edge = net.edge(int(pre[0]), int(post[0]))
    assert net.rec_post[edge.start] == post[0]
    assert net.rec_weight[edge.start] == g.edges[int(pre[0]), int(post[0])]["weight"]


def test_sparse_weight_with_per_synapse_delays_and_repeated_pairs() -> None:
    """Every stored entry is a synapse: one pair may connect twice with two delays."""
    g = Graph()
    g.add_input("x", 2)
    g.add_lif("h", 2)
    weight = sp.coo_array(([0.7, 0.5, 0.6], ([0, 0, 1], [1, 1, 0])), shape=(2, 2))
    g.connect("x", "h", weight=weight, delay=np.array([0, 3, 1]))
    g.connect("h", "h", weight=np.array([[0.0, 0.4], [0.3, 0.0]]), delay=2)
    net = snngraph.compile(g)
    assert sorted(net.in_delay.tolist()) == [0, 1, 3]
    assert_layer_equals_graph(g, 1)


def test_save_load_round_trip_is_lossless(tmp_path) -> None:
    net = snngraph.compile(random_graph(5))
    path = tmp_path / "net.npz"
    net.save(path)
    loaded = snngraph.load(path)
    assert loaded.populations == net.populations
    assert loaded.inputs == net.inputs
    assert loaded.edges == net.edges
    for name in (
        "neurons",
        "in_post",
        "in_pre",
        "in_delay",
        "in_weight",
        "in_index",
        "rec_post",
        "rec_pre",
        "rec_delay",
        "rec_weight",
        "rec_index",
        "values",
    ):
        got, want = getattr(loaded, name), getattr(net, name)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_save_refuses_names_it_cannot_store(tmp_path) -> None:
    g = Graph()
    g.add_input(("x", 1), 1)
    g.add_lif("h", 1)
    g.connect(("x", 1), "h")
    with pytest.raises(TypeError, match=r"node name \('x', 1\)"):
        snngraph.compile(g).save(tmp_path / "n.npz")


def test_to_graph_round_trip_gives_the_same_network() -> None:
    graph = random_graph(7)
    model = SNN(snngraph.compile(graph), backend="reference", dtype=torch.float64)
    with torch.no_grad():
        for weight in model.weights.values():
            weight.mul_(1.1)
    again = SNN(snngraph.compile(model.to_graph()), backend="reference", dtype=torch.float64)
    torch.testing.assert_close(again.w_rec, model.w_rec, rtol=0, atol=0)
    torch.testing.assert_close(again.w_in, model.w_in, rtol=0, atol=0)
    assert torch.equal(again.rec_delay, model.rec_delay)
    x = (torch.rand(20, 2, model.net.n_inputs) < 0.4).double()
    assert torch.equal(again(x).layer_spikes, model(x).layer_spikes)


def test_summary_reports_layout_and_memory() -> None:
    net = snngraph.compile(random_graph(2))
    text = net.summary(steps=100, batch=8)
    for p in net.populations:
        assert f"{p.name!r}: neurons {p.start}:{p.stop}, lag {p.lag}" in text
    assert f"recurrent synapses: {net.rec_weight.size}" in text
    memory = net.memory_bytes(100, 8)
    steps = 100 + net.max_lag
    assert memory["saved_for_backward"] == 4 * (
        (steps + net.max_delay + 1) * 8 * net.n_neurons + (steps + net.max_input_delay) * 8 * net.n_inputs
    )
    assert repr(net).startswith("CompiledNetwork(neurons=")
