"""The SNN module: inputs, per-population views, state across chunks, weights per edge."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from random_graphs import random_graph

import snngraph
from snngraph import SNN


@pytest.mark.parametrize("seed", range(6))
def test_chunked_run_equals_whole_run(seed: int) -> None:
    """Chunks passing ``out.state`` give every population's whole-sequence spikes and membranes,
    lags and input delays included."""
    net = snngraph.compile(random_graph(seed))
    model = SNN(net, backend="reference", dtype=torch.float64)
    x = (torch.rand(30, 2, net.n_inputs, generator=torch.Generator().manual_seed(seed)) < 0.4).double()
    whole = model(x)
    state, chunks = None, []
    for part in x.split([7, 1, 13, 9]):
        out = model(part, state)
        state = out.state
        chunks.append(out)
    for p in net.populations:
        torch.testing.assert_close(torch.cat([c.spikes(p.name) for c in chunks]), whole.spikes(p.name), rtol=0, atol=0)
        torch.testing.assert_close(
            torch.cat([c.membrane(p.name) for c in chunks]), whole.membrane(p.name), rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("as_dict", [False, True], ids=["tensor", "dict"])
def test_batch_first_is_the_transposed_time_major_run(as_dict: bool) -> None:
    """``batch_first=True`` takes ``[B, T, C]`` and gives ``[B, T, size]`` views: the same numbers,
    losses and gradients as the time-major model on the transposed input."""
    net = snngraph.compile(random_graph(3))
    x = (torch.rand(17, 3, net.n_inputs, generator=torch.Generator().manual_seed(3)) < 0.4).double()
    runs = []
    for batch_first in (False, True):
        model = SNN(net, backend="reference", dtype=torch.float64, batch_first=batch_first)
        given = x.transpose(0, 1) if batch_first else x
        if as_dict:
            given = {p.name: given[..., p.start : p.stop] for p in net.inputs}
        out = model(given)
        readout = net.populations[-1].name
        loss = snngraph.losses.MembraneLoss(readout, over="last")(out, torch.zeros(3, dtype=torch.long))
        loss.backward()
        views = {p.name: out.membrane(p.name) for p in net.populations}
        runs.append((views, loss, {n: p.grad for n, p in model.named_parameters()}, out.time_dim))
    (views, loss, grad, time_dim), (views_bf, loss_bf, grad_bf, time_dim_bf) = runs
    assert (time_dim, time_dim_bf) == (0, 1)
    for name, view in views.items():
        assert views_bf[name].shape == (3, 17, view.shape[2])
        torch.testing.assert_close(views_bf[name], view.transpose(0, 1), rtol=0, atol=0)
    torch.testing.assert_close(loss_bf, loss, rtol=0, atol=0)
    torch.testing.assert_close(grad_bf, grad, rtol=0, atol=0)


def test_batch_first_input_shape_is_checked() -> None:
    net = snngraph.compile(random_graph(0))
    model = SNN(net, batch_first=True)
    with pytest.raises(ValueError, match=r"\[B, T, n_inputs\]"):
        model(torch.zeros(2, 5, net.n_inputs + 1))


def test_truncated_bptt_cuts_the_graph_between_chunks() -> None:
    net = snngraph.compile(random_graph(1))
    model = SNN(net, backend="reference", dtype=torch.float64)
    x = (torch.rand(20, 2, net.n_inputs) < 0.5).double()
    first = model(x[:10])
    second = model(x[10:], first.state.detach())
    second.layer_membranes.sum().backward()
    grad_two_chunks = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    model(x[10:], first.state.detach()).layer_membranes.sum().backward()
    grad_last_chunk = {name: p.grad for name, p in model.named_parameters()}
    torch.testing.assert_close(grad_last_chunk, grad_two_chunks, rtol=0, atol=0)


def test_dict_input_equals_concatenated_input() -> None:
    net = snngraph.compile(random_graph(4))
    assert len(net.inputs) == 2
    model = SNN(net, backend="reference", dtype=torch.float64)
    parts = {p.name: (torch.rand(9, 3, p.size) < 0.5).double() for p in net.inputs}
    a = model(parts)
    b = model(torch.cat([parts[p.name] for p in net.inputs], dim=2))
    assert torch.equal(a.layer_membranes, b.layer_membranes)


def test_views_undo_the_lags() -> None:
    g = snngraph.Graph()
    g.add_input("x", 1)
    g.add_lif("a", 1, theta=0.5, reset="zero")
    g.add_lif("b", 1, theta=0.5, reset="zero")
    g.connect("x", "a", weight=np.ones((1, 1)), delay=0)
    g.connect("a", "b", weight=np.ones((1, 1)), delay=0)
    model = SNN(snngraph.compile(g), backend="reference")
    x = torch.zeros(6, 1, 1)
    x[2] = 1.0
    out = model(x)
    assert out.layer_spikes.shape == (7, 1, 2)
    expected = torch.zeros(6, 1, 1)
    expected[2] = 1.0  # a zero-delay chain: both fire in the input's own step
    assert torch.equal(out.spikes("a"), expected)
    assert torch.equal(out.spikes("b"), expected)


def test_weight_and_weight_grad_have_the_natural_shape_of_the_edge() -> None:
    """A dense edge's parameter is its (post, pre) matrix, a sparse edge's its stored values; the
    gathered w_in/w_rec are no Parameters but read them."""
    g = snngraph.Graph()
    g.add_input("x", 3)
    g.add_lif("h", 4)
    weight = np.arange(12, dtype=float).reshape(4, 3) / 10
    g.connect("x", "h", weight=weight, delay=0)
    recurrent = snngraph.random_weight(4, 4, density=0.5, seed=0)
    g.connect("h", "h", weight=recurrent)
    model = SNN(snngraph.compile(g), backend="reference", dtype=torch.float64)
    assert model.weight("x", "h") is model.weights["x->h"]
    assert isinstance(model.weight("x", "h"), torch.nn.Parameter)
    torch.testing.assert_close(model.weight("x", "h"), torch.tensor(weight), rtol=0, atol=0)
    torch.testing.assert_close(model.weight("h", "h"), torch.tensor(recurrent.tocoo().data), rtol=0, atol=0)
    assert model.weight_grad("x", "h") is None
    assert not isinstance(model.w_in, torch.nn.Parameter)
    model(torch.ones(5, 2, 3, dtype=torch.float64)).layer_membranes.sum().backward()
    grad = model.weight_grad("x", "h")
    assert grad.shape == (4, 3)
    assert model.weight_grad("h", "h").shape == (recurrent.nnz,)
    torch.testing.assert_close(model.w_in, model.weight("x", "h").flatten(), rtol=0, atol=0)


def test_module_moves_and_casts_like_any_module() -> None:
    net = snngraph.compile(random_graph(2))
    model = SNN(net, backend="reference", learn_alpha=True, learn_theta=True)
    names = {name for name, _ in model.named_parameters()}
    assert names == {"alpha", "theta"} | {f"weights.{e.pre}->{e.post}" for e in net.edges}
    model = model.double()
    assert model.w_rec.dtype == model.alpha.dtype == model.table.dtype == torch.float64
    assert model.rec_delay.dtype == torch.long
    out = model(torch.zeros(3, 1, net.n_inputs, dtype=torch.float64))
    assert out.layer_membranes.dtype == torch.float64
    assert "neurons=" in repr(model)
