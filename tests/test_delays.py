"""Learnable synaptic delays (docs/design.md, "Learnable delays"): the interpolated layer against a
layered oracle that applies the kernels explicitly, the gradients of the real delays and weights
against finite differences, every backend against the reference, the rebuild of the taps against
a network compiled from scratch, and errors that name the edge."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from graph_checks import assert_layer_equals_graph
from layer_checks import assert_matches_reference, assert_rebuild_matches_reference
from random_cnns import random_cnn
from random_graphs import random_graph

import snngraph
from snngraph import SNN, Graph
from snngraph.backends import CpuOptions
from snngraph.delays import DelaySpec, SigmaSchedule, tap_factors, window_starts


def _learning_cnn(seed: int) -> Graph:
    """A random CNN whose first convolution and readout learn their delays (one per kernel tap)."""
    g = random_cnn(seed)
    for pre, post, kernel in (("x", "c1", "linear"), ("c2", "out", "gaussian")):
        attrs = g.nx.edges[pre, post]
        shape = np.shape(attrs["weight"])
        rng = np.random.default_rng(seed)
        attrs.update(
            learn_delay=True,
            delay_range=(1, 4),
            delay_real=rng.uniform(1.1, 3.9, shape),
            delay_kernel=kernel,
            **({"delay_window": 3, "delay_sigma": 0.8} if kernel == "gaussian" else {}),
        )
    return g


@pytest.mark.parametrize("seed", range(8))
def test_layer_equals_the_oracle_that_applies_the_kernels(seed: int) -> None:
    """Random graphs whose edges mostly learn their delays (linear and Gaussian kernels, feedback,
    zero-delay hops elsewhere): float64 spikes identical, states to 1e-10, and the gradients of
    the weights, the real delays, the neuron parameters and the input equal the oracle's."""
    graph = random_graph(seed, learn_delays=0.8, max_delay=6)
    assert any(attrs.get("learn_delay") for *_, attrs in graph.nx.edges(data=True))
    assert_layer_equals_graph(graph, seed=seed, backend=("reference", "cpu")[seed % 2])


@pytest.mark.parametrize("seed", range(2))
def test_convolutions_learn_a_delay_per_kernel_tap(seed: int) -> None:
    """Conv edges with learned delays, run as convolutions by the cpu backend, against the oracle."""
    backend = ("reference", CpuOptions(conv_min_synapses=0))[seed % 2]
    assert_layer_equals_graph(_learning_cnn(seed), seed=seed, backend=backend, steps=12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cpu_backend_matches_the_reference(seed: int, dtype: torch.dtype) -> None:
    net = snngraph.compile(random_graph(40 + seed, learn_delays=0.7, max_delay=6))
    assert_matches_reference(net, "cpu", dtype=dtype, seed=seed)


@pytest.mark.parametrize("seed", range(2))
def test_cpu_backend_matches_the_reference_after_a_rebuild(seed: int) -> None:
    net = snngraph.compile(random_graph(50 + seed, learn_delays=1.0, max_delay=6))
    assert_rebuild_matches_reference(net, "cpu", dtype=(torch.float64, torch.float32)[seed], seed=seed)


def test_cpu_convolution_blocks_match_the_reference() -> None:
    net = snngraph.compile(_learning_cnn(3))
    assert_matches_reference(net, CpuOptions(conv_min_synapses=0), seed=1)


def _readout_graph(kernel: str) -> Graph:
    """input → lif → li, where the readout's edges (from the input and from the lif) learn their
    delays: the loss on the readout's membrane is smooth in them (no spike depends on them)."""
    rng = np.random.default_rng(0)
    g = Graph()
    g.add_input("x", 3)
    g.add_lif("h", 4, alpha=0.8, theta=0.5)
    g.add_li("o", 2, alpha=0.9)
    g.connect("x", "h", weight=rng.uniform(0.2, 1.0, (4, 3)), delay=1)
    gaussian = {"delay_kernel": "gaussian", "delay_window": 4, "delay_sigma": 1.1} if kernel == "gaussian" else {}
    for pre, size, low in (("x", 3, 0), ("h", 4, 1)):
        tau = rng.integers(low, low + 4, (2, size)) + rng.uniform(0.15, 0.85, (2, size))
        weight = rng.uniform(-1.0, 1.0, (2, size))
        g.connect(pre, "o", weight=weight, delay=tau, learn_delay=True, delay_range=(low, low + 5), **gaussian)
    return g


@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
def test_gradients_equal_finite_differences(kernel: str) -> None:
    """∂L/∂τ and ∂L/∂w of the readout's edges against central differences, float64, on the
    reference (τ away from whole steps, where the linear kernel is smooth)."""
    model = SNN(snngraph.compile(_readout_graph(kernel)), backend="reference", dtype=torch.float64)
    x = (torch.rand(25, 2, 3, generator=torch.Generator().manual_seed(1)) < 0.4).double()
    probe = torch.randn(25, 2, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def loss() -> torch.Tensor:
        return (model(x).membrane("o") * probe).sum()

    loss().backward()
    checked = 0
    for pre in ("x", "h"):
        for tensor, grad in ((model.delays(pre, "o"), model.delay_grad(pre, "o")), (model.weight(pre, "o"), None)):
            grad = model.weight_grad(pre, "o") if grad is None else grad
            assert grad.abs().max() > 1e-3  # the loss depends on every tensor checked
            for i in range(tensor.numel()):
                flat = tensor.data.view(-1)
                eps, kept = 1e-6, flat[i].item()
                with torch.no_grad():
                    flat[i] = kept + eps
                    up = loss().item()
                    flat[i] = kept - eps
                    down = loss().item()
                    flat[i] = kept
                assert (up - down) / (2 * eps) == pytest.approx(grad.view(-1)[i].item(), rel=1e-6, abs=1e-8)
                checked += 1
    assert checked == 2 * (6 + 8)


def test_one_synapse_follows_the_linear_kernel() -> None:
    """A spike at t = 0 through weight w and delay τ = 2.3 lands on an α = 0 readout as 0.7·w at
    t = 2 and 0.3·w at t = 3 (the unit triangle), and nowhere else."""
    g = Graph()
    g.add_input("x", 1)
    g.add_li("o", 1, alpha=0.0)
    g.connect("x", "o", weight=np.array([[2.0]]), delay=2.3, learn_delay=True, delay_range=(0, 6))
    model = SNN(snngraph.compile(g), dtype=torch.float64)
    x = torch.zeros(8, 1, 1, dtype=torch.float64)
    x[0] = 1.0
    got = model(x).membrane("o")[:, 0, 0]
    want = torch.tensor([0, 0, 1.4, 0.6, 0, 0, 0, 0], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_gaussian_kernel_is_normalised_and_collapses_to_the_linear_one() -> None:
    spec = DelaySpec(1, 9, "gaussian", 5, 1.0)
    tau = torch.tensor([1.0, 2.4, 5.5, 8.7, 9.0], dtype=torch.float64)
    starts = window_starts(tau, spec)
    assert starts.tolist() == [1, 1, 3, 5, 5]  # the window [start, start + 5) holds τ, inside [1, 9]
    h = tap_factors(tau, starts, spec, 1.0)
    torch.testing.assert_close(h.sum(1), torch.ones(5, dtype=torch.float64))
    centre = (h * torch.arange(5)).sum(1) + starts
    assert torch.all((centre - tau).abs() < 1.0)  # the kernel's mean sits near τ (pulled in at the range's ends)
    linear = tap_factors(tau, starts, spec, 0.0)
    triangle = torch.clamp(1 - (starts[:, None] + torch.arange(5) - tau[:, None]).abs(), min=0)
    torch.testing.assert_close(linear, triangle)


def test_a_gaussian_kernel_of_width_zero_runs_as_the_linear_kernel() -> None:
    """σ = 0 on a window of 4 taps gives the same layer as the linear kernel's 2 taps."""
    gaussian = SNN(snngraph.compile(_readout_graph("gaussian")), dtype=torch.float64)
    gaussian.set_delay_sigma(0.0)
    linear_graph = gaussian.to_graph()
    for pre in ("x", "h"):
        attrs = linear_graph.nx.edges[pre, "o"]
        for key in ("delay_kernel", "delay_window", "delay_sigma"):
            attrs.pop(key)
    linear = SNN(snngraph.compile(linear_graph), dtype=torch.float64)
    assert linear.rec_post.numel() < gaussian.rec_post.numel()
    x = (torch.rand(30, 2, 3, generator=torch.Generator().manual_seed(6)) < 0.4).double()
    torch.testing.assert_close(gaussian(x).layer_states, linear(x).layer_states, rtol=0, atol=1e-13)


def test_sigma_schedule_anneals_then_collapses() -> None:
    model = SNN(snngraph.compile(_readout_graph("gaussian")))
    schedule = SigmaSchedule(model, start=2.0, end=0.5, steps=3)
    widths = [schedule.sigma]
    for _ in range(3):
        schedule.step()
        widths.append(schedule.sigma)
    assert widths == [2.0, 1.5, 1.0, 0.0]
    assert set(model.delay_taps.sigma.values()) == {0.0}


def _moved(model: SNN, amount: float) -> None:
    with torch.no_grad():
        for pre in ("x", "h"):
            model.delays(pre, "o").add_(amount)


def test_a_pooling_learns_one_delay() -> None:
    """A sum pooling whose one delay trains: against the oracle, and its gradient is the sum over
    its synapses (the pooling's value is fixed, its delay is not)."""
    g = Graph()
    g.add_input("x", (2, 4, 4))
    g.add_lif("p", alpha=0.8, theta=0.5)
    g.connect_pool("x", "p", kernel_size=2, delay=1.4, learn_delay=True, delay_range=(0, 3))
    g.add_li("o", 2)
    g.connect("p", "o", weight=np.random.default_rng(0).uniform(0, 1, (2, 8)), delay=1)
    assert_layer_equals_graph(g, seed=3)
    model = SNN(snngraph.compile(g))
    assert model.delays("x", "p").shape == (1,)
    assert model.weight("x", "p").requires_grad is False


@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
def test_rebuilt_taps_equal_a_network_compiled_with_those_delays(kernel: str) -> None:
    """Move every delay across a whole step: the model rebuilds its taps' delays and equals a model
    compiled from scratch from its ``to_graph()`` (same real delays, same weights)."""
    model = SNN(snngraph.compile(_readout_graph(kernel)), dtype=torch.float64)
    x = (torch.rand(30, 2, 3, generator=torch.Generator().manual_seed(3)) < 0.4).double()
    model(x)
    before = model.rec_delay.clone()
    _moved(model, 1.0)
    moved = model(x)
    assert not torch.equal(model.rec_delay, before)
    fresh = SNN(snngraph.compile(model.to_graph()), dtype=torch.float64)
    assert torch.equal(fresh.rec_delay, model.rec_delay)
    assert torch.equal(fresh.in_delay, model.in_delay)
    torch.testing.assert_close(fresh(x).layer_states, moved.layer_states, rtol=0, atol=1e-13)


def test_a_rebuild_keeps_the_plan_of_the_synapses_that_did_not_move() -> None:
    """Only the recurrent edge learns: after its delays move, the cpu plan keeps the input
    synapses' structures (the same objects) and the recurrent synapses' order, and the run
    equals a model compiled from scratch."""
    g = _readout_graph("linear")
    g.nx.edges["x", "o"]["learn_delay"] = False
    g.nx.edges["x", "o"]["delay"] = 2
    model = SNN(snngraph.compile(g), backend="cpu", dtype=torch.float64)
    x = (torch.rand(30, 2, 3, generator=torch.Generator().manual_seed(5)) < 0.4).double()
    model(x)
    before = model.plan
    with torch.no_grad():
        model.delays("h", "o").add_(1.0)
    moved = model(x)
    assert model.plan is not before
    assert model.plan.structures.inputs is before.structures.inputs
    assert model.plan.structures.recurrent is not before.structures.recurrent
    assert model.plan.structures.recurrent.sparse.synapses is before.structures.recurrent.sparse.synapses
    fresh = SNN(snngraph.compile(model.to_graph()), backend="cpu", dtype=torch.float64)
    torch.testing.assert_close(fresh(x).layer_states, moved.layer_states, rtol=0, atol=1e-13)


def test_training_moves_the_taps_and_clamps_the_delays() -> None:
    """An optimizer step that moves integer parts: the next call runs the new taps; delays pushed out
    of their range are clamped into it."""
    model = SNN(snngraph.compile(_readout_graph("linear")), dtype=torch.float64)
    x = (torch.rand(30, 2, 3, generator=torch.Generator().manual_seed(3)) < 0.4).double()
    optimizer = torch.optim.SGD(model.synapse_delays.parameters(), lr=10.0)
    model(x).membrane("o").sum().backward()
    optimizer.step()
    model(x)
    for pre, low in (("x", 0), ("h", 1)):
        tau = model.delays(pre, "o")
        assert tau.min() >= low
        assert tau.max() <= low + 5
    fresh = SNN(snngraph.compile(model.to_graph()), dtype=torch.float64)
    torch.testing.assert_close(fresh(x).layer_states, model(x).layer_states, rtol=0, atol=1e-13)


def test_chunked_runs_equal_one_run() -> None:
    model = SNN(snngraph.compile(_readout_graph("gaussian")), dtype=torch.float64)
    x = (torch.rand(24, 2, 3, generator=torch.Generator().manual_seed(4)) < 0.4).double()
    whole = model(x)
    first = model(x[:10])
    second = model(x[10:], first.state)
    joined = snngraph.SNNOutput.concat([first, second])
    torch.testing.assert_close(joined.membrane("o"), whole.membrane("o"), rtol=0, atol=1e-13)


def test_delays_are_parameters_in_the_edges_shape() -> None:
    model = SNN(snngraph.compile(_readout_graph("linear")))
    names = {name for name, _ in model.named_parameters()}
    assert {"synapse_delays.x->o", "synapse_delays.h->o"} <= names
    assert model.delays("x", "o").shape == model.weight("x", "o").shape == (2, 3)
    assert model.delay_grad("x", "o") is None
    flat = SNN(snngraph.compile(_readout_graph("linear")), flat_weights=True)
    assert flat.delays("h", "o").shape == (2, 4)
    assert {name for name, _ in flat.synapse_delays.named_parameters()} == {"input", "recurrent"}
    x = torch.rand(10, 1, 3)
    torch.testing.assert_close(flat(x).layer_states, model(x).layer_states)


def test_to_graph_save_load_and_state_dict_keep_the_delays(tmp_path: Path) -> None:
    model = SNN(snngraph.compile(_readout_graph("gaussian")), dtype=torch.float64)
    with torch.no_grad():
        model.delays("h", "o").add_(0.37)
    model.set_delay_sigma(0.6)
    graph = model.to_graph()
    attrs = graph.nx.edges["h", "o"]
    tau = model.delays("h", "o").detach().numpy()
    np.testing.assert_array_equal(attrs["delay_real"], tau)
    assert attrs["delay"].dtype.kind == "i"
    assert np.array_equal(attrs["delay"], np.round(tau))
    assert attrs["delay_sigma"] == 0.6
    assert attrs["delay_window"] == 4
    net = snngraph.compile(graph)
    path = tmp_path / "net.npz"
    net.save(path)
    loaded = snngraph.load(path)
    assert loaded.edge("h", "o").delays == net.edge("h", "o").delays
    np.testing.assert_array_equal(loaded.edge_delays(loaded.edge("h", "o")), tau)
    np.testing.assert_array_equal(loaded.rec_weight, net.rec_weight)
    x = torch.rand(12, 2, 3, dtype=torch.float64)
    want = model(x).layer_states
    torch.testing.assert_close(SNN(loaded, dtype=torch.float64)(x).layer_states, want, rtol=0, atol=1e-13)
    other = SNN(snngraph.compile(_readout_graph("gaussian")), dtype=torch.float64)
    other.load_state_dict(model.state_dict())
    assert other.delay_taps.sigma == model.delay_taps.sigma
    torch.testing.assert_close(other(x).layer_states, want, rtol=0, atol=1e-13)


def test_a_fixed_network_takes_the_rounded_delays() -> None:
    """``learn_delay=False`` on a trained graph's edge compiles the rounded delays as fixed ones."""
    model = SNN(snngraph.compile(_readout_graph("linear")))
    graph = model.to_graph()
    graph.nx.edges["x", "o"]["learn_delay"] = False
    net = snngraph.compile(graph)
    assert net.edge("x", "o").delays is None
    rounded = np.round(model.delays("x", "o").detach().numpy()).astype(np.int64)
    compiled = net.synapses("input").delay[net.edge("x", "o").start : net.edge("x", "o").stop]
    assert np.array_equal(np.sort(compiled), np.sort(rounded.reshape(-1)))


def test_summary_names_the_learning_edges() -> None:
    text = snngraph.compile(_readout_graph("gaussian")).summary()
    assert "learns delays in [1, 6] (gaussian, 4 taps)" in text


def _error(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def _graph() -> Graph:
    g = Graph()
    g.add_input("x", 3)
    g.add_lif("h", 2)
    return g


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, r"edge 'h' -> 'h': learn_delay needs delay_range"),
        ({"delay_range": (3, 3)}, r"edge 'h' -> 'h': delay_range \(3, 3\) is empty"),
        ({"delay_range": (5, 2)}, r"delay_range \(5, 2\) is empty"),
        ({"delay_range": (0, 4)}, r"delay_range starts at 0, below the smallest delay between neurons \(1\)"),
        ({"delay_range": (1.5, 4)}, r"delay_range must be two ints"),
        ({"delay_range": 4}, r"delay_range must be a pair"),
        ({"delay_range": (1, 4), "delay": np.ones((3, 2))}, r"shape \(2, 2\).*got shape \(3, 2\)"),
        ({"delay_range": (1, 4), "delay": 4.5}, r"the initial delays must lie in delay_range \[1, 4\]"),
        ({"delay_range": (1, 4), "delay_kernel": "box"}, r"delay_kernel must be one of"),
        ({"delay_range": (1, 4), "delay_window": 3}, r"delay_window and delay_sigma belong to delay_kernel='gaussian'"),
        ({"delay_range": (1, 4), "delay_kernel": "gaussian", "delay_window": 5}, r"delay_window must be an int in"),
        ({"delay_range": (1, 4), "delay_kernel": "gaussian", "delay_sigma": -1.0}, r"delay_sigma must be a number"),
        ({"delay_range": (1, 4), "learn_delay": "yes"}, r"learn_delay must be True or False"),
    ],
)
def test_bad_delay_learning_is_named(arguments: dict, message: str) -> None:
    g = _graph()
    arguments = {"learn_delay": True, "delay": 2, **arguments}
    _error(lambda: g.connect("h", "h", weight=np.ones((2, 2)), **arguments), message)


def test_an_input_edge_may_start_at_zero_and_networkx_edges_are_checked_at_compile() -> None:
    g = _graph()
    g.connect("x", "h", weight=np.ones((2, 3)), delay=0.5, learn_delay=True, delay_range=(0, 2))
    g.nx.add_edge("h", "h", weight=np.ones((2, 2)), delay=1, learn_delay=True, delay_range=(0, 3))
    _error(lambda: snngraph.compile(g), r"edge 'h' -> 'h': delay_range starts at 0")


def test_model_methods_name_an_edge_without_learned_delays() -> None:
    g = _graph()
    g.connect("x", "h", weight=np.ones((2, 3)))
    model = SNN(snngraph.compile(g))
    _error(lambda: model.delays("x", "h"), r"edge 'x' -> 'h' does not learn its delays")
    _error(lambda: model.set_delay_sigma(1.0), r"no edge of this network learns its delays")
    linear = SNN(snngraph.compile(_readout_graph("linear")))
    _error(lambda: linear.set_delay_sigma(1.0), r"no edge learns its delays with delay_kernel='gaussian'")
    gaussian = SNN(snngraph.compile(_readout_graph("gaussian")))
    _error(lambda: gaussian.set_delay_sigma(math.nan), r"sigma")
    gaussian.set_delay_sigma(np.float32(0.5))  # any real number
    assert set(gaussian.delay_taps.sigma.values()) == {0.5}
