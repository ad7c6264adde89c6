"""Neurons with several state variables: closed forms, finite differences, the module's state API,
save/load and to_graph round trips, and the errors of bad parameters."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from random_graphs import NEURON_KINDS, random_graph

import snngraph
from snngraph import SNN, Graph
from snngraph.backends.base import round_states
from snngraph.neurons import spikes, threshold
from snngraph.surrogates import Sigmoid


def _one_neuron(add: str, **params: object) -> Graph:
    g = Graph()
    g.add_input("x", 1)
    getattr(g, add)("n", 1, **params)
    g.connect("x", "n", weight=np.ones((1, 1)), delay=0)
    return g


def test_cuba_lif_response_to_one_spike_is_a_difference_of_exponentials() -> None:
    """J[t] = β^t, U[t] = Σ_k α^(t−k) β^k = (α^(t+1) − β^(t+1)) / (α − β) for one input spike at 0."""
    alpha, beta, steps = 0.9, 0.6, 30
    net = snngraph.compile(_one_neuron("add_lif", alpha=alpha, alpha_syn=beta, theta=100.0))
    x = torch.zeros(steps, 1, 1, dtype=torch.float64)
    x[0] = 1.0
    out = SNN(net, dtype=torch.float64)(x)
    t = torch.arange(steps, dtype=torch.float64)
    torch.testing.assert_close(out.state_variable("n", "J")[:, 0, 0], beta**t, rtol=1e-13, atol=0)
    want = (alpha ** (t + 1) - beta ** (t + 1)) / (alpha - beta)
    torch.testing.assert_close(out.membrane("n")[:, 0, 0], want, rtol=1e-13, atol=1e-15)


def test_alif_threshold_after_n_spikes_is_a_geometric_sum() -> None:
    """A neuron that fires every step: a[n] = Σ_{k<n} ρ^k = (1 − ρ^n)/(1 − ρ), θ_eff = θ + γ·a[n],
    and with the subtract reset each spike removes the threshold it crossed."""
    rho, gamma, theta, drive, steps = 0.8, 0.3, 1.0, 10.0, 25
    net = snngraph.compile(_one_neuron("add_alif", alpha=0.0, theta=theta, alpha_adapt=rho, adapt=gamma))
    out = SNN(net, dtype=torch.float64)(torch.full((steps, 1, 1), drive, dtype=torch.float64))
    n = torch.arange(steps, dtype=torch.float64)
    adaptation = (1 - rho**n) / (1 - rho)
    torch.testing.assert_close(out.state_variable("n", "a")[:, 0, 0], adaptation, rtol=1e-13, atol=1e-15)
    assert torch.equal(out.spikes("n")[:, 0, 0], torch.ones(steps, dtype=torch.float64))
    threshold_before = theta + gamma * torch.cat([torch.zeros(1, dtype=torch.float64), adaptation[:-1]])
    want_u = drive - torch.cat([torch.zeros(1, dtype=torch.float64), threshold_before[1:]])  # α = 0
    torch.testing.assert_close(out.membrane("n")[:, 0, 0], want_u, rtol=1e-13, atol=1e-13)


KIND_PARAMS = {
    "cuba": ("add_lif", {"alpha": 0.85, "theta": 1.0, "alpha_syn": 0.7, "bias": 0.05, "v_leak": 0.1}),
    "alif": ("add_alif", {"alpha": 0.8, "theta": 0.9, "alpha_adapt": 0.9, "adapt": 0.2, "bias": 0.02}),
    "adlif": ("add_adlif", {"alpha": 0.7, "theta": 0.6, "alpha_adapt": 0.85, "a": 0.4, "b": 0.5, "bias": 0.1}),
    "se-adlif": (
        "add_adlif",
        {"alpha": 0.7, "theta": 0.6, "alpha_adapt": 0.85, "a": 0.4, "b": 0.5, "bias": 0.1, "symplectic": True},
    ),
    "cuba-li": ("add_li", {"alpha": 0.9, "alpha_syn": 0.5, "bias": 0.1, "v_leak": -0.2}),
}


def _kind_network(kind: str, reset: str) -> snngraph.CompiledNetwork:
    add, params = KIND_PARAMS[kind]
    if add != "add_li":
        params = {**params, "reset": reset}
    g = Graph()
    g.add_input("x", 3)
    getattr(g, add)("h", 4, **params)
    g.add_li("out", 2, alpha=0.8)
    rng = np.random.default_rng(3)
    g.connect("x", "h", weight=rng.uniform(0.2, 1.2, (4, 3)), delay=0)
    if add != "add_li":
        g.connect("h", "h", weight=rng.uniform(-0.4, 0.4, (4, 4)), delay=2)
        g.connect("h", "out", weight=rng.uniform(-1, 1, (2, 4)))
    else:
        g.nx.remove_node("out")
    return snngraph.compile(g)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("kind", list(KIND_PARAMS))
def test_parameter_gradients_equal_finite_differences(kind: str, reset: str) -> None:
    """∂L/∂(every named parameter) by autograd through the named → generic map equals central
    differences of L (float64, reference backend).  A steep surrogate and membranes kept away from
    the thresholds make L smooth there, so the surrogate's gradient is the true one."""
    net = _kind_network(kind, reset)
    steep = Sigmoid(40000.0)  # σ'(x) < 1e-13 for |x| > 0.001
    model = SNN(net, backend="reference", dtype=torch.float64, learn=tuple(net.parameters), surrogate=steep)
    generator = torch.Generator().manual_seed(1)
    x = (torch.rand(25, 2, 3, generator=generator) < 0.5).double()
    weights = torch.randn(25 + net.max_lag, net.n_states, 2, net.n_neurons, generator=generator, dtype=torch.float64)

    def loss() -> torch.Tensor:
        return (model(x).layer_states * weights).sum()

    with torch.no_grad():
        out = model(x)
        spiking = torch.as_tensor(net.spiking)
        gap = out.layer_membranes - threshold(model.neuron_params().table, out.layer_states)
        if spiking.any():
            margin = gap[..., spiking].abs().min()
            assert out.layer_spikes.sum() > 0, "the test network must spike"
            assert margin > 0.001, "and stay away from the thresholds"
    model.zero_grad()
    loss().backward()
    eps = 1e-6
    for name in net.parameters:
        param = getattr(model, name)
        for i in range(net.n_neurons):
            with torch.no_grad():
                param[i] += eps
                up = loss()
                param[i] -= 2 * eps
                down = loss()
                param[i] += eps
            numeric = (up - down) / (2 * eps)
            assert abs(param.grad[i] - numeric) <= 1e-6 * (1 + abs(numeric)), f"d{name}[{i}] of {kind}"


@pytest.mark.parametrize("seed", range(3))
def test_chunked_run_equals_one_run_with_every_state(seed: int) -> None:
    """A run in chunks (the state carries every state variable and the steps run) gives the states
    and spikes of one whole run, lags and biases included."""
    net = snngraph.compile(random_graph(seed, kinds=NEURON_KINDS))
    model = SNN(net, backend="reference", dtype=torch.float64)
    x = (torch.rand(23, 2, net.n_inputs, generator=torch.Generator().manual_seed(seed)) < 0.4).double()
    whole = model(x)
    first = model(x[:2])  # shorter than the lags: the onsets carry over
    second = model(x[2:9], first.state)
    third = model(x[9:], second.state)
    joined = snngraph.SNNOutput.concat([first, second, third])
    assert third.state.elapsed == 23
    assert torch.equal(joined.layer_spikes, whole.layer_spikes)
    torch.testing.assert_close(joined.layer_states, whole.layer_states, rtol=1e-12, atol=1e-12)


def test_save_load_and_to_graph_round_trip_every_kind(tmp_path) -> None:
    net = snngraph.compile(random_graph(4, kinds=NEURON_KINDS))
    path = tmp_path / "net.npz"
    net.save(path)
    loaded = snngraph.load(path)
    assert np.array_equal(loaded.neurons, net.neurons)
    assert loaded.populations == net.populations
    assert {k: list(v) for k, v in loaded.parameters.items()} == {k: list(v) for k, v in net.parameters.items()}
    model = SNN(net, dtype=torch.float64, learn=("alpha",))
    with torch.no_grad():
        model.alpha.mul_(0.9)
    again = snngraph.compile(model.to_graph())
    np.testing.assert_array_equal(again.parameters["alpha"], model.alpha.detach().numpy())
    built = model.neuron_params(elapsed=net.max_lag).table  # onsets 0, as compiled
    np.testing.assert_allclose(again.neurons, built.detach().numpy(), rtol=0, atol=0)


def test_state_variables_are_named_per_population() -> None:
    g = Graph()
    g.add_input("x", 2)
    g.add_lif("cuba", 3, alpha_syn=0.5)
    g.add_alif("alif", 3, alpha_adapt=0.9, adapt=0.1, alpha_syn=0.6)
    g.add_adlif("ad", 2, alpha_adapt=0.9, a=0.1, b=0.2)
    g.add_li("out", 1)
    for name in ("cuba", "alif", "ad"):
        g.connect("x", name)
        g.connect(name, "out")
    net = snngraph.compile(g)
    assert net.n_states == 3
    assert [p.model.states for p in net.populations] == [("U", "J"), ("U", "J", "a"), ("U", "W"), ("U",)]
    out = SNN(net)(torch.ones(4, 2, 2))
    assert out.state_variable("alif", "a").shape == (4, 2, 3)
    assert out.state.v.shape == (3, 2, net.n_neurons)
    torch.testing.assert_close(out.state_variable("ad", "U"), out.membrane("ad"))
    with pytest.raises(ValueError, match=r"population 'cuba' has the state variables \('U', 'J'\), not 'a'"):
        out.state_variable("cuba", "a")
    assert "3 state(s) per neuron" in net.summary()
    steps = 10 + net.max_lag  # saved: the 3 states of every step, v0 and the spike history, the inputs
    saved = (3 * steps + 3 + net.max_delay) * 2 * net.n_neurons + (steps + net.max_input_delay) * 2 * net.n_inputs
    assert net.memory_bytes(10, 2)["saved_for_backward"] == 4 * saved
    assert "alif 'alif': neurons 3:6, lag 0, states (U, J, a)" in net.summary()


def test_learn_names_parameters_the_network_has() -> None:
    net = snngraph.compile(_one_neuron("add_lif"))
    with pytest.raises(ValueError, match=r"learn: \['adapt'\] are not parameters of this network's neurons"):
        SNN(net, learn=("adapt",))
    with pytest.raises(TypeError, match=r"learn takes a sequence of parameter names, e.g. learn=\('bias',\)"):
        SNN(net, learn="bias")
    model = SNN(net, learn=("bias",), learn_theta=True)
    assert sorted(name for name, _ in model.named_parameters()) == ["bias", "theta", "weights.x->n"]


def _networkx_node(**attrs: object) -> None:
    """Compile a plain networkx graph of one node ``n`` (with a LIF population it could feed)."""
    graph = nx.DiGraph()
    graph.add_node("n", **attrs)
    graph.add_node("h", kind="lif", size=1)
    snngraph.compile(graph)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda g: g.add_lif("n", 2, alpha_syn=1.5), r"node 'n': alpha_syn \(a decay per step\) must lie in \[0, 1\]"),
        (lambda g: g.add_alif("n", 2, alpha_adapt=-0.1, adapt=0.1), r"node 'n': alpha_adapt \(a decay"),
        (lambda g: g.add_alif("n", 2, alpha_adapt=0.9, adapt=-1.0), r"node 'n': adapt \(the threshold's rise"),
        (lambda g: g.add_adlif("n", 2, alpha_adapt=0.9, a=[1, 2, 3], b=0.0), r"node 'n': a must be a scalar or"),
        (lambda g: _networkx_node(kind="input", size=2, alpha_syn=0.5),
         r"node 'n': 'alpha_syn' is not a parameter of kind 'input' \(the kinds that have it: "),
        (lambda g: _networkx_node(kind="lif", size=2, adapt=0.1), r"'adapt' is not a parameter of kind 'lif'"),
        (lambda g: _networkx_node(kind="adlif", size=2, alpha_adapt=0.5, a=0.1), r"node 'n': kind 'adlif' needs 'b'"),
        (lambda g: g.add_neurons("n", 2, A=np.eye(2), e=[1.0, 0.0, 0.0]), r"node 'n': e must have shape \(2,\)"),
        (lambda g: g.add_neurons("n", 2, A=np.eye(5), e=np.ones(5)), r"node 'n': a neuron has 1 to 4 state"),
    ],
)  # fmt: skip
def test_bad_neuron_parameters_name_the_node(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(Graph())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16_bit_states_keep_the_spikes_of_an_adaptive_threshold(dtype: torch.dtype) -> None:
    """With θ_eff = θ + γ·a, rounding U and a separately could move a state across the threshold;
    round_states keeps every spike exact (recomputed from the rounded states)."""
    net = snngraph.compile(_one_neuron("add_alif", alpha_adapt=0.9, adapt=0.7))
    table = torch.as_tensor(net.neurons).repeat(1, 500)
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(40, 1, 3, 500, generator=generator, dtype=torch.float64) * 3
    theta_eff = 1.0 + 0.7 * a
    u = theta_eff * (1 + torch.randn(a.shape, generator=generator, dtype=torch.float64) * 1e-3)
    v = torch.cat([u, a], dim=1)
    low = round_states(v, table, dtype)
    assert low.dtype == dtype
    assert torch.equal(spikes(low.double(), table), spikes(v, table))
    assert 0 < spikes(v, table).mean() < 1
    unit = torch.finfo(dtype).eps * v.abs()
    assert torch.all((low.double() - v).abs() <= 4 * unit)
