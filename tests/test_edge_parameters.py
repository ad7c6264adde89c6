"""One parameter per edge in its natural shape (docs/design.md, "Synapses"): dense, sparse,
shared and fixed edges, as optimizers, freezing, ``state_dict``, ``to_graph``, ``save``/``load``
and the gradient of tied weights see them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from graph_checks import assert_layer_equals_graph
from old_formats import before_version_4
from torch.nn.utils import prune

import snngraph
from snngraph import SNN, Graph
from snngraph.network import SUMMARY_EDGES
from snngraph.synapses import MANY_EDGES

SHARED_VALUES = np.array([0.9, -0.4, 7.0])  # 7.0: a value that no synapse reads


def _pattern() -> np.ndarray:
    """Readout ``o`` (3) reads neurons 2o and 2o + 1 of ``h`` (6) with the tied values 0 and 1."""
    pattern = np.full((3, 6), -1)
    for o in range(3):
        pattern[o, 2 * o], pattern[o, 2 * o + 1] = 0, 1
    return pattern


def _graph(tied: bool = True) -> Graph:
    """Every kind of edge: dense ``x → h``, sparse ``h → h`` (per-synapse delays), shared
    ``h → out`` and fixed sparse ``x → out``.  ``tied=False``: ``h → out`` holds the same synapses
    (same order) as a sparse edge with one free value each."""
    g = Graph()
    g.add_input("x", 4)
    g.add_lif("h", 6, alpha=0.8, theta=0.7)
    g.add_li("out", 3, alpha=0.9)
    rng = np.random.default_rng(0)
    g.connect("x", "h", weight=rng.uniform(0.2, 1.0, (6, 4)), delay=0)
    recurrent = snngraph.random_weight(6, 6, density=0.4, seed=1)
    g.connect("h", "h", weight=recurrent, delay=snngraph.random_delays(recurrent, 1, 3, seed=2))
    pattern = _pattern()
    if tied:
        g.connect("h", "out", weight=SHARED_VALUES, shared=pattern, delay=0)
    else:
        rows, cols = np.nonzero(pattern >= 0)
        untied = sp.coo_array((SHARED_VALUES[pattern[rows, cols]], (rows, cols)), shape=pattern.shape)
        g.connect("h", "out", weight=untied, delay=0)
    fixed = sp.coo_array(([0.3, -0.2], ([0, 2], [1, 3])), shape=(3, 4))
    g.connect("x", "out", weight=fixed, delay=1, trainable=False)
    return g


def _model(graph: Graph | None = None, backend: str = "reference") -> SNN:
    return SNN(snngraph.compile(_graph() if graph is None else graph), backend=backend, dtype=torch.float64)


def _inputs(seed: int = 0) -> torch.Tensor:
    return (torch.rand(15, 2, 4, generator=torch.Generator().manual_seed(seed)) < 0.5).double()


def _loss(model: SNN, seed: int = 0) -> torch.Tensor:
    out = model(_inputs(seed))
    return out.membrane("out").square().sum() + out.spikes("h").sum()


def _snapshot(model: SNN) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.weights.items()}


def test_each_edge_has_its_tensor_in_its_natural_shape() -> None:
    model = _model()
    net = model.net
    assert list(model.weights) == ["x->h", "x->out", "h->h", "h->out"]  # input edges first
    assert [e.kind for e in net.edges] == ["dense", "sparse", "sparse", "shared"]
    assert model.weight("x", "h").shape == (6, 4)
    assert model.weight("h", "h").shape == (net.edge("h", "h").n_synapses,)
    torch.testing.assert_close(model.weight("h", "out"), torch.tensor(SHARED_VALUES), rtol=0, atol=0)
    assert [n for n, _ in model.named_parameters()] == ["weights.x->h", "weights.h->h", "weights.h->out"]
    assert not isinstance(model.weight("x", "out"), torch.nn.Parameter)
    assert model.edge_name("h", "out") == "h->out"
    torch.testing.assert_close(model.w_in.double(), torch.tensor(net.in_weight), rtol=0, atol=0)
    torch.testing.assert_close(model.w_rec.double(), torch.tensor(net.rec_weight), rtol=0, atol=0)
    assert "edge 'h' -> 'out' (recurrent): shared, parameter (3,), 6 synapses" in net.summary()
    assert "edge 'x' -> 'out' (input): sparse, fixed, parameter (2,), 2 synapses" in net.summary()


def test_names_are_sanitised_unique_and_follow_the_edge_order() -> None:
    g = Graph()
    for name in ("a.b", "a_b", 1, "1"):
        g.add_input(name, 1)
    g.add_lif("h", 1)
    for name in ("a.b", "a_b", 1, "1"):
        g.connect(name, "h")
    model = SNN(snngraph.compile(g))
    assert list(model.weights) == ["a_b->h", "a_b->h#2", "1->h", "1->h#2"]
    assert model.edge_name("1", "h") == "1->h#2"
    assert set(model.state_dict()) >= {f"weights.{name}" for name in model.weights}


def test_param_groups_with_different_learning_rates_change_only_their_edges() -> None:
    model = _model()
    before = _snapshot(model)
    optimizer = torch.optim.SGD(
        [{"params": [model.weight("x", "h")], "lr": 0.1}, {"params": [model.weight("h", "out")], "lr": 0.01}]
    )
    _loss(model).backward()
    grads = {name: model.weights[name].grad.clone() for name in ("x->h", "h->out")}
    optimizer.step()
    after = _snapshot(model)
    for name, lr in (("x->h", 0.1), ("h->out", 0.01)):
        assert grads[name].abs().max() > 0
        torch.testing.assert_close(after[name], before[name] - lr * grads[name], rtol=1e-12, atol=1e-15)
    for name in ("h->h", "x->out"):  # not in the optimizer, or fixed
        assert torch.equal(after[name], before[name])


@pytest.mark.parametrize("how", ["requires_grad", "trainable"])
def test_a_frozen_edge_gets_no_gradient_and_does_not_change(how: str) -> None:
    if how == "requires_grad":
        model = _model()
        model.weight("h", "h").requires_grad_(False)
        frozen = "h->h"
    else:
        model, frozen = _model(), "x->out"
    before = _snapshot(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1)
    for seed in range(2):
        optimizer.zero_grad()
        _loss(model, seed).backward()
        optimizer.step()
    assert model.weights[frozen].grad is None
    assert torch.equal(model.weights[frozen], before[frozen])
    for name in ("x->h", "h->out"):
        assert not torch.equal(model.weights[name], before[name])


def test_state_dict_round_trip() -> None:
    trained = _model()
    optimizer = torch.optim.SGD(trained.parameters(), lr=0.1)
    _loss(trained).backward()
    optimizer.step()
    with torch.no_grad():
        trained.weight("x", "out").mul_(2.0)  # a buffer changes with the state too
    state = trained.state_dict()
    assert {f"weights.{name}" for name in trained.weights} <= set(state)
    fresh = _model()
    fresh.load_state_dict(state)
    for name, value in trained.weights.items():
        assert torch.equal(fresh.weights[name], value)
    x = _inputs(3)
    assert torch.equal(fresh(x).layer_states, trained(x).layer_states)


def test_to_graph_round_trips_every_kind_of_edge() -> None:
    model = _model()
    with torch.no_grad():
        for value in model.weights.values():
            value.mul_(1.25)
    graph = model.to_graph().nx
    edges = graph.edges
    np.testing.assert_array_equal(edges["x", "h"]["weight"], 1.25 * _graph().nx.edges["x", "h"]["weight"])
    assert sp.issparse(edges["h", "h"]["weight"])
    assert edges["h", "h"]["delay"].shape == (edges["h", "h"]["weight"].nnz,)
    np.testing.assert_allclose(edges["h", "out"]["weight"], 1.25 * SHARED_VALUES, rtol=1e-15)
    np.testing.assert_array_equal(edges["h", "out"]["shared"], _pattern())
    assert edges["x", "out"]["trainable"] is False
    assert "trainable" not in edges["x", "h"]
    again = SNN(snngraph.compile(model.to_graph()), backend="reference", dtype=torch.float64)
    assert again.net.edges == model.net.edges
    for name, value in model.weights.items():
        assert torch.equal(again.weights[name], value)
    x = _inputs(1)
    assert torch.equal(again(x).layer_states, model(x).layer_states)


def test_to_graph_keeps_a_sparse_shared_pattern_and_its_delays() -> None:
    g = Graph()
    g.add_input("x", 3)
    g.add_lif("h", 2)
    pattern = sp.coo_array(([0, 1, 0], ([0, 1, 1], [0, 2, 0])), shape=(2, 3))
    g.connect("x", "h", weight=[0.5, -0.25], shared=pattern, delay=np.array([0, 2, 1]))
    net = snngraph.compile(g)
    np.testing.assert_array_equal(net.in_weight, [0.5, -0.25, 0.5])
    np.testing.assert_array_equal(net.in_delay, [0, 2, 1])
    attrs = SNN(net).to_graph().nx.edges["x", "h"]
    assert sp.issparse(attrs["shared"])
    np.testing.assert_array_equal(attrs["shared"].toarray(), pattern.toarray())
    np.testing.assert_array_equal(attrs["delay"], [0, 2, 1])


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_a_shared_value_gets_the_sum_of_its_synapses_gradients(backend: str) -> None:
    """∂L/∂values[j] = Σ_{k: index_k = j} ∂L/∂w_k: the tied network against its untied twin."""
    tied, untied = _model(backend=backend), _model(_graph(tied=False), backend=backend)
    out_tied, out_untied = tied(_inputs()), untied(_inputs())
    assert torch.equal(out_tied.layer_spikes, out_untied.layer_spikes)
    _loss(tied).backward()
    _loss(untied).backward()
    index = torch.as_tensor(_pattern()[_pattern() >= 0])  # the synapses in row-major order
    want = torch.zeros(3, dtype=torch.float64).index_add_(0, index, untied.weight_grad("h", "out"))
    assert want[:2].abs().min() > 0
    assert want[2] == 0
    torch.testing.assert_close(tied.weight_grad("h", "out"), want, rtol=1e-12, atol=1e-14)
    for pre, post in (("x", "h"), ("h", "h")):
        torch.testing.assert_close(tied.weight_grad(pre, post), untied.weight_grad(pre, post), rtol=1e-12, atol=0)


def test_shared_and_fixed_edges_equal_the_graph_simulation() -> None:
    assert_layer_equals_graph(_graph(), seed=4)


def test_networkx_edges_carry_shared_and_trainable() -> None:
    g = nx.DiGraph()
    g.add_node("x", kind="input", size=2)
    g.add_node("h", kind="lif", size=2)
    g.add_edge("x", "h", weight=np.array([1.5]), shared=np.array([[0, -1], [-1, 0]]), delay=0, trainable=False)
    net = snngraph.compile(g)
    edge = net.edge("x", "h")
    assert (edge.kind, edge.param_shape, edge.trainable, edge.n_synapses) == ("shared", (1,), False, 2)
    model = SNN(net)
    assert list(model.parameters()) == []
    np.testing.assert_array_equal(net.in_weight, [1.5, 1.5])


def _connect_error(**kwargs: object) -> None:
    g = Graph()
    g.add_input("x", 3)
    g.add_lif("h", 2)
    g.connect("x", "h", **kwargs)


ZEROS = np.zeros((2, 3), int)  # every synapse of x (3) -> h (2) reads value 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight": [1.0, 2.0], "shared": [[0, 2, -1], [1, 0, 0]]}, r"shared index 2 is out of range for 2 shared"),
        ({"weight": [1.0, 2.0], "shared": [[0, -2, -1], [1, 0, 0]]}, r"shared index -2 is out of range"),
        ({"weight": [1.0], "shared": sp.coo_array(([-1], ([0], [0])), shape=(2, 3))}, r"shared index -1 is out of"),
        ({"weight": [1.0], "shared": [[0, 0], [0, 0]]}, r"shared must have shape \(post, pre\) = \(2, 3\)"),
        ({"weight": [1.0], "shared": np.zeros((2, 3))}, r"shared must hold integer indices .*, got dtype float64"),
        ({"weight": [1.0], "shared": np.zeros((2, 3), bool)}, r"shared must hold integer indices .*, got dtype bool"),
        ({"weight": np.ones((1, 2)), "shared": np.full((2, 3), 2)}, r"shared index 2 is out of range for 2 shared"),
        ({"weight": sp.coo_array(np.ones((1, 2))), "shared": ZEROS}, r"array of shared values, not a sparse"),
        ({"weight": [1.0], "shared": ZEROS, "scale": np.ones(5)}, r"one factor per synapse, shape \(6,\)"),
        ({"weight": [1.0], "shared": ZEROS, "scale": np.full(6, np.nan)}, r"scale contains NaN"),
        ({"weight": np.ones((2, 3)), "scale": np.ones(6)}, r"scale= applies to a shared edge"),
        ({"shared": ZEROS}, r"shared= needs weight"),
        ({"weight": [1.0], "shared": ZEROS, "delay": np.ones(3, int)}, r"delay must be an int or an int array of sh"),
        ({"trainable": 1}, r"trainable must be True or False, got 1"),
    ],
)
def test_bad_edge_parameters_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape("edge 'x' -> 'h'") + ".*" + message):
        _connect_error(**kwargs)


def test_save_and_load_keep_every_kind(tmp_path: Path) -> None:
    net = snngraph.compile(_graph())
    net.save(tmp_path / "net.npz")
    loaded = snngraph.load(tmp_path / "net.npz")
    assert loaded.edges == net.edges
    for name in ("values", "in_index", "rec_index", "in_weight", "rec_weight"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(net, name))
    np.testing.assert_array_equal(loaded.edge_values(loaded.edge("h", "out")), SHARED_VALUES)  # 7.0 kept
    x = _inputs(2)
    model, again = SNN(net, dtype=torch.float64), SNN(loaded, dtype=torch.float64)
    assert torch.equal(again(x).layer_states, model(x).layer_states)
    assert [n for n, _ in again.named_parameters()] == [n for n, _ in model.named_parameters()]


def test_load_converts_a_version_3_file(tmp_path: Path) -> None:
    """Version 3 stores one weight per synapse: every edge loads as a free dense or sparse edge."""
    g = _graph(tied=False)
    g.nx.edges["x", "out"].pop("trainable")  # version 3 knows no fixed edges
    net = snngraph.compile(g)
    net.save(tmp_path / "net.npz")
    arrays, meta = before_version_4(tmp_path / "net.npz")
    meta["format_version"] = 3
    np.savez(tmp_path / "v3.npz", meta=np.array(json.dumps(meta)), **arrays)
    loaded = snngraph.load(tmp_path / "v3.npz")
    assert loaded.edges == net.edges
    for name in ("values", "in_index", "rec_index", "in_weight", "rec_weight", "rec_delay"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(net, name))


def test_a_pruning_mask_holds_through_training() -> None:
    """``torch.nn.utils.prune`` on an edge: the masked synapses stay zero and get no update."""
    model = _model()
    prune.l1_unstructured(model.weights, "x->h", amount=0.5)
    mask = model.weights.get_buffer("x->h_mask").bool()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for seed in range(2):
        optimizer.zero_grad()
        _loss(model, seed).backward()
        optimizer.step()
    w_in = model.w_in.detach()
    index = slice(model.net.edge("x", "h").start, model.net.edge("x", "h").stop)
    assert torch.all(w_in[index][~mask.flatten()] == 0)
    assert torch.all(w_in[index][mask.flatten()] != 0)


def test_cast_and_load_keep_the_gather_of_a_shared_edge() -> None:
    single, double = SNN(snngraph.compile(_graph()), backend="reference"), _model()
    single = single.double()
    single.load_state_dict(double.state_dict())
    x = _inputs(5)
    assert torch.equal(single(x).layer_states, double(x).layer_states)


def test_summary_lists_the_first_edges_and_counts_the_rest() -> None:
    g = Graph()
    g.add_input("x", 1)
    for i in range(SUMMARY_EDGES + 3):
        g.add_lif(i, 1)
        g.connect("x", i, weight=0.5, delay=0)
    text = snngraph.compile(g).summary()
    assert f"edge 'x' -> {SUMMARY_EDGES - 1} (input): dense, parameter (1, 1), 1 synapses" in text
    assert f"edge 'x' -> {SUMMARY_EDGES} " not in text
    assert f"… 3 more edges ({SUMMARY_EDGES + 3} parameter values in all)" in text


def test_flat_weights_give_the_same_run_gradients_and_graph() -> None:
    """``flat_weights=True``: two stored tensors per target and role, each edge a view of its
    range; the same spikes, the same gradient per edge, and ``to_graph`` writes back the same."""
    net = snngraph.compile(_graph())
    per_edge = SNN(net, backend="reference", dtype=torch.float64)
    flat = SNN(net, backend="reference", dtype=torch.float64, flat_weights=True)
    assert list(flat.weights) == ["input", "input_fixed", "recurrent"]
    assert [name for name, _ in flat.named_parameters()] == ["weights.input", "weights.recurrent"]
    assert flat.edge_name("x", "out") == "input_fixed"
    out_edge, out_flat = per_edge(_inputs()), flat(_inputs())
    assert torch.equal(out_edge.layer_spikes, out_flat.layer_spikes)
    _loss(per_edge).backward()
    _loss(flat).backward()
    for edge in net.edges:
        assert flat.weight(edge.pre, edge.post).shape == per_edge.weight(edge.pre, edge.post).shape
        if edge.trainable:
            torch.testing.assert_close(
                flat.weight_grad(edge.pre, edge.post), per_edge.weight_grad(edge.pre, edge.post), rtol=1e-12, atol=0
            )
        else:
            assert flat.weight_grad(edge.pre, edge.post) is None
    with torch.no_grad():
        flat.weight("h", "out")[1] = 0.25  # a view: the model changes
    assert flat.weights["recurrent"][-2] == 0.25
    rebuilt = snngraph.compile(flat.to_graph())
    np.testing.assert_array_equal(rebuilt.edge_values(rebuilt.edge("h", "out")), [0.9, 0.25, 7.0])
    state = SNN(net, backend="reference", dtype=torch.float64, flat_weights=True)
    state.load_state_dict(flat.state_dict())
    assert torch.equal(state.weights["recurrent"], flat.weights["recurrent"])


def test_many_trained_edges_suggest_flat_weights() -> None:
    g = nx.DiGraph()
    g.add_node("x", kind="input", size=1)
    for i in range(MANY_EDGES + 1):
        g.add_node(i, kind="lif", size=1, alpha=0.9, theta=1.0)
        g.add_edge("x", i, weight=0.5, delay=1)
    net = snngraph.compile(g)
    with pytest.warns(UserWarning, match=r"1001 edges train.*flat_weights=True"):
        SNN(net)
    assert len(list(SNN(net, flat_weights=True).parameters())) == 1
    g.add_edge("x", 0, weight=0.5, delay=1, trainable=False)  # one fewer edge that trains
    SNN(snngraph.compile(g))  # no warning (warnings are errors in this suite)


def test_a_scaled_shared_edge_with_repeated_pairs_equals_its_sum() -> None:
    """Shared synapses with fixed factors, two of them on one (post, pre) pair: the layer sees
    ``Σ scale_k·values[index_k]`` per pair, the gradient of a value is ``Σ scale_k·∂L/∂w_k``, and
    ``to_graph``/``save`` keep the factors."""
    values = np.array([[0.8, -0.5], [0.3, 1.1]])  # a parameter of any shape; index into its 4 entries
    rows, cols = np.array([0, 0, 1, 2, 2]), np.array([0, 0, 1, 3, 2])
    index, scale = np.array([0, 3, 1, 2, 0]), np.array([1.0, 0.25, -2.0, 0.5, 3.0])

    def graph(shared: bool) -> Graph:
        g = Graph()
        g.add_input("x", 4)
        g.add_lif("h", 3, alpha=0.8, theta=0.4)
        if shared:
            pattern = sp.coo_array((index, (rows, cols)), shape=(3, 4))
            g.connect("x", "h", weight=values, shared=pattern, scale=scale, delay=0)
        else:
            summed = np.zeros((3, 4))
            np.add.at(summed, (rows, cols), scale * values.reshape(-1)[index])
            g.connect("x", "h", weight=summed, delay=0)
        return g

    net = snngraph.compile(graph(True))
    assert net.edge("x", "h").param_shape == (2, 2)
    np.testing.assert_allclose(net.in_weight, scale * values.reshape(-1)[index], rtol=0, atol=0)
    assert_layer_equals_graph(graph(True), seed=3)
    tied, dense = (SNN(snngraph.compile(graph(s)), backend="reference", dtype=torch.float64) for s in (True, False))
    x = _inputs()
    assert torch.equal(tied(x).layer_spikes, dense(x).layer_spikes)
    tied(x).layer_membranes.square().sum().backward()
    dense(x).layer_membranes.square().sum().backward()
    per_pair = dense.weight_grad("x", "h")[torch.as_tensor(rows), torch.as_tensor(cols)]
    want = torch.zeros(4, dtype=torch.float64).index_add_(0, torch.as_tensor(index), torch.as_tensor(scale) * per_pair)
    torch.testing.assert_close(tied.weight_grad("x", "h").reshape(-1), want, rtol=1e-12, atol=1e-14)
    rebuilt = snngraph.compile(tied.to_graph())
    np.testing.assert_array_equal(rebuilt.in_scale, scale)


def test_save_keeps_the_synapse_factors(tmp_path: Path) -> None:
    g = Graph()
    g.add_input("x", 2)
    g.add_lif("h", 2)
    g.connect("x", "h", weight=[0.5, 2.0], shared=[[0, 1], [1, -1]], scale=[1.0, -1.0, 0.5])
    g.connect("h", "h", weight=np.eye(2))
    net = snngraph.compile(g)
    net.save(tmp_path / "net.npz")
    loaded = snngraph.load(tmp_path / "net.npz")
    np.testing.assert_array_equal(loaded.in_scale, [1.0, -1.0, 0.5])
    assert loaded.rec_scale is None
    np.testing.assert_array_equal(loaded.in_weight, [0.5, -2.0, 1.0])


def test_a_float64_model_keeps_every_digit_of_the_factors() -> None:
    g = Graph()
    g.add_input("x", 2)
    g.add_lif("h", 2)
    g.connect("x", "h", weight=[0.3, 0.7], shared=[[0, 1], [1, -1]], scale=[1 / 9, 1 / 3, 0.1])
    net = snngraph.compile(g)
    model = SNN(net, dtype=torch.float64)
    np.testing.assert_array_equal(model.w_in.detach().numpy(), net.in_weight)
