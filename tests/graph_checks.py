"""The compiled layer against the population-by-population simulation of its graph
(:mod:`graph_simulator`): spikes, every state variable and every gradient, on any backend."""

from __future__ import annotations

import torch
from graph_simulator import simulate_graph

import snngraph
from snngraph import SNN, Graph
from snngraph.backends import BackendChoice
from snngraph.surrogates import ATan, FastSigmoid, Sigmoid, Triangle

SURROGATES = [Sigmoid(25.0), FastSigmoid(10.0), ATan(2.0), Triangle(0.8)]


def _inputs(net: snngraph.CompiledNetwork, steps: int, batch: int, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {p.name: (torch.rand(steps, batch, p.size, generator=generator) < 0.4).double() for p in net.inputs}


def _edge_parameters(model: SNN) -> dict:
    """Each edge's parameter (natural shape) as a fresh leaf."""
    return {(e.pre, e.post): model.weight(e.pre, e.post).detach().clone().requires_grad_(True) for e in model.net.edges}


def _random_loss(tensors: dict, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return sum((t * torch.randn(t.shape, generator=generator, dtype=t.dtype)).sum() for _, t in sorted(tensors.items()))


def assert_layer_equals_graph(
    graph: Graph,
    seed: int,
    zero_delay: str = "retime",
    oracle_graph: Graph | None = None,
    surrogate=SURROGATES[0],
    detach_reset: bool = False,
    steps: int = 17,
    backend: BackendChoice = "reference",
) -> None:
    """Spikes, every state variable and the gradients of the weights, of every named neuron
    parameter and of the input equal the population-by-population simulation of the graph."""
    net = snngraph.compile(graph, zero_delay=zero_delay)
    learn = tuple(net.parameters)
    model = SNN(net, backend=backend, surrogate=surrogate, detach_reset=detach_reset, dtype=torch.float64, learn=learn)
    inputs = {name: x.requires_grad_(True) for name, x in _inputs(net, steps, 2, seed).items()}
    out = model(inputs)
    parameters = _edge_parameters(model)
    neuron_values = {
        (p.name, name): getattr(model, name)[p.slice].detach().clone().requires_grad_(True)
        for p in net.populations
        for name in p.model.parameters
    }
    oracle_inputs = {name: x.detach().clone().requires_grad_(True) for name, x in inputs.items()}
    learning = [e for e in net.edges if e.delays is not None]
    delays = {(e.pre, e.post): model.delays(e.pre, e.post).detach().clone().requires_grad_(True) for e in learning}
    spikes, states = simulate_graph(
        oracle_graph or graph,
        oracle_inputs,
        parameters,
        surrogate,
        detach_reset,
        neuron_values=neuron_values,
        edge_delays=delays,
    )
    names = [p.name for p in net.populations]
    layer_states = {(n, v): out.state_variable(n, v) for n in names for v in states[n]}
    for p in net.populations:
        assert torch.equal(out.spikes(p.name), spikes[p.name]), f"spikes of {p.name!r} differ"
        for variable, want in states[p.name].items():
            torch.testing.assert_close(layer_states[(p.name, variable)], want, rtol=1e-10, atol=1e-10)
    loss_layer = _random_loss({n: out.spikes(n) for n in names}, seed) + _random_loss(layer_states, seed + 1)
    graph_states = {(n, v): states[n][v] for n in names for v in states[n]}
    loss_graph = _random_loss({n: spikes[n] for n in names}, seed) + _random_loss(graph_states, seed + 1)
    loss_layer.backward()
    loss_graph.backward()

    def grad_of(leaf: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(leaf) if leaf.grad is None else leaf.grad  # None: no path to the loss

    for (pre, post), leaf in parameters.items():
        got = model.weight_grad(pre, post)
        if not net.edge(pre, post).trainable:
            assert got is None, f"the fixed edge {pre!r} -> {post!r} has a gradient"
            continue
        torch.testing.assert_close(got, grad_of(leaf), rtol=1e-10, atol=1e-10, msg=f"gradient of {pre!r} -> {post!r}")
    for (pre, post), leaf in delays.items():
        got = model.delay_grad(pre, post)
        torch.testing.assert_close(
            got, grad_of(leaf), rtol=1e-9, atol=1e-10, msg=f"delay gradient of {pre!r} -> {post!r}"
        )
    for (population, name), leaf in neuron_values.items():
        got = getattr(model, name).grad[net.population(population).slice]
        torch.testing.assert_close(got, grad_of(leaf), rtol=1e-9, atol=1e-10, msg=f"d{name} of {population!r}")
    for name, x in inputs.items():
        torch.testing.assert_close(x.grad, grad_of(oracle_inputs[name]), rtol=1e-10, atol=1e-10)


def biased_chain() -> Graph:
    """input → lif → lif → li with zero-delay hops (lags 0, 1, 2), biases and a leak target, a
    recurrent edge and a skip: plain neurons (one state) that start late and have a drive."""
    g = Graph()
    g.add_input("x", 3)
    g.add_lif("a", 4, alpha=0.8, bias=0.15, v_leak=0.2, reset="zero")
    g.add_lif("b", 3, alpha=0.9, theta=0.8, bias=[0.3, -0.1, 0.2])
    g.add_li("out", 2, alpha=0.7, bias=0.05)
    generator = torch.Generator().manual_seed(5)
    for pre, post, delay in (("x", "a", 0), ("a", "b", 0), ("b", "out", 0), ("b", "b", 2), ("x", "b", 1)):
        shape = (g.population_size(post), g.population_size(pre))
        g.connect(pre, post, weight=torch.rand(shape, generator=generator, dtype=torch.float64), delay=delay)
    return g
