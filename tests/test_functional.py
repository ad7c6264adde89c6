"""The layer op and its plan: ``prepare``/``lif_layer``, backends chosen by value, the plan's lifetime."""

from __future__ import annotations

import pytest
import torch
from random_graphs import random_graph

import snngraph
from snngraph import SNN
from snngraph.backends import CpuOptions, TritonOptions, make_backend
from snngraph.backends.cpu import CpuBackend
from snngraph.functional import lif_layer, neuron_params, prepare


def _layer_inputs(net: snngraph.CompiledNetwork, steps: int, batch: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(net.max_input_delay + steps, batch, net.n_inputs, generator=generator) < 0.4).double()
    w_in = torch.as_tensor(net.in_weight).requires_grad_(True)
    w_rec = torch.as_tensor(net.rec_weight).requires_grad_(True)
    u0 = torch.zeros(net.n_states, batch, net.n_neurons, dtype=torch.float64)
    s_hist = torch.zeros(net.max_delay, batch, net.n_neurons, dtype=torch.float64)
    return x, w_in, w_rec, u0, s_hist


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_lif_layer_is_what_the_module_runs(backend: str) -> None:
    """``lif_layer`` on a plan from ``prepare``, with the network's own tensors, gives the module's
    layer membranes and the same weight gradients."""
    net = snngraph.compile(random_graph(2))
    steps, batch = 11, 3
    x, w_in, w_rec, u0, s_hist = _layer_inputs(net, steps + net.max_lag, batch)
    x[: net.max_input_delay] = 0  # the module's resting state: no past input
    x[net.max_input_delay + steps :] = 0  # and zero input while the lags run out
    plan = prepare(net, backend=backend, dtype=torch.float64)
    alpha = torch.as_tensor(net.alpha).requires_grad_(True)
    neurons = neuron_params(net, parameters={"alpha": alpha})
    assert neurons.trainable == frozenset({"A"})
    u, s = lif_layer(x, w_in, w_rec, neurons, u0, s_hist, plan)
    (u.sum() + s.sum()).backward()
    model = SNN(net, backend=backend, dtype=torch.float64, learn_alpha=True)
    out = model(x[net.max_input_delay : net.max_input_delay + steps])
    (out.layer_membranes.sum() + out.layer_spikes.sum()).backward()
    torch.testing.assert_close(u, out.layer_states, rtol=0, atol=0)
    module_grad = torch.cat([model.weight_grad(e.pre, e.post).reshape(-1) for e in net.edges_of("recurrent")])
    torch.testing.assert_close(w_rec.grad, module_grad, rtol=0, atol=0)
    torch.testing.assert_close(alpha.grad, model.alpha.grad, rtol=0, atol=0)


def test_lif_layer_names_a_wrong_shape_or_dtype() -> None:
    net = snngraph.compile(random_graph(0))
    x, w_in, w_rec, u0, s_hist = _layer_inputs(net, 5, 2)
    plan = prepare(net, backend="cpu", dtype=torch.float64)
    neurons = neuron_params(net)
    wrong = torch.zeros(1, 3, net.n_neurons, dtype=torch.float64)
    with pytest.raises(
        ValueError, match=rf"v0 must have shape \[1, 2, {net.n_neurons}\], got \[1, 3, {net.n_neurons}\]"
    ):
        lif_layer(x, w_in, w_rec, neurons, wrong, s_hist, plan)
    with pytest.raises(ValueError, match=r"w_rec is torch.float32 on cpu; the plan runs torch.float64"):
        lif_layer(x, w_in, w_rec.float(), neurons, u0, s_hist, plan)
    with pytest.raises(TypeError, match="NeuronParams"):
        lif_layer(x, w_in, w_rec, neurons.table, u0, s_hist, plan)


def test_backends_are_chosen_and_configured_by_value() -> None:
    cpu = torch.device("cpu")
    assert make_backend("auto", cpu) == CpuBackend()
    assert make_backend(CpuOptions(chunks=3), cpu).options.chunks == 3
    with pytest.raises(ValueError, match=r"unknown backend 'scipy'; choose one of \['auto', 'reference', 'cpu'"):
        SNN(snngraph.compile(random_graph(0)), backend="scipy")
    with pytest.raises(TypeError, match="CpuOptions/TritonOptions"):
        SNN(snngraph.compile(random_graph(0)), backend=CpuBackend())
    with pytest.raises(RuntimeError, match="backend 'triton' cannot run on cpu"):
        make_backend(TritonOptions(), cpu)  # without TRITON_INTERPRET=1
    with pytest.raises(ValueError, match=r"CpuOptions\.event_fraction must be a number >= 0"):
        CpuOptions(event_fraction=-1.0)
    with pytest.raises(ValueError, match=r"CpuOptions\.chunks must be >= 1"):
        CpuOptions(chunks=0)


def test_module_owns_its_plan() -> None:
    """Built once, kept across calls and no-op moves; new after a cast and after load_state_dict."""
    net = snngraph.compile(random_graph(1))
    model = SNN(net, backend=CpuOptions(dense_density=0.0, min_dense_area=0))
    x = torch.zeros(4, 2, net.n_inputs)
    model(x)
    plan = model.plan
    model(x)
    model.to("cpu")
    assert model.plan is plan
    assert plan.backend.options.dense_density == 0.0
    model.double()
    assert model.plan is not plan
    assert model.plan.dtype == torch.float64
    plan = model.plan
    model.load_state_dict(model.state_dict())
    assert model.plan is not plan
