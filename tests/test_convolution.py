"""Convolutions and pooling compiled into the one sparse layer (docs/design.md, "Convolutions and
pooling"): the synapses against ``torch.nn.functional``, the layer against a layered oracle that
applies ``conv1d/conv2d/avg_pool*`` (spikes, every state, the kernel's gradient equal to the
oracle's conv weight gradient), per-edge parameters of a CNN, and errors that name the edge."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from graph_checks import assert_layer_equals_graph
from layer_checks import assert_matches_reference
from random_cnns import random_cnn

import snngraph
from snngraph import SNN, Graph
from snngraph.backends import CpuOptions
from snngraph.convolution import conv_spec
from snngraph.functional import lif_layer, neuron_params, prepare

AS_CONVOLUTIONS = CpuOptions(conv_min_synapses=0)  # every convolution edge's synapses as convolutions
AS_SYNAPSES = CpuOptions(conv_min_synapses=math.inf)  # as synapses, with the others

GEOMETRIES = [
    ((4, 7, 9), {"kernel_size": (3, 2), "stride": (2, 1), "padding": 1, "dilation": (1, 2), "groups": 2}),
    ((3, 11), {"kernel_size": 4, "stride": 3, "padding": 2, "dilation": 2, "groups": 3}),
    ((2, 6, 5), {"kernel_size": 3, "padding": "same", "dilation": 2}),
    ((2, 6, 5), {"kernel_size": 2, "padding": "same"}),  # an even kernel: PyTorch pads one more after
    ((1, 8, 3), {"kernel_size": (5, 1), "padding": ((2, 0), (1, 1))}),  # (before, after) pairs
    ((2, 9), {"kernel_size": 1, "stride": 2, "groups": 2}),
]


def _as_tuple(value: Any, n_dims: int) -> tuple[int, ...]:
    return (value,) * n_dims if isinstance(value, int) else tuple(value)


def _pytorch_conv(x: torch.Tensor, kernel: torch.Tensor, keywords: dict) -> torch.Tensor:
    """``conv1d``/``conv2d`` with the keywords of ``connect_conv`` (pairs padded with ``F.pad``)."""
    rest = {k: v for k, v in keywords.items() if k in ("stride", "dilation", "groups")}
    padding = keywords.get("padding", 0)
    if isinstance(padding, tuple) and isinstance(padding[0], tuple):
        x, padding = F.pad(x, [side for pair in reversed(padding) for side in pair]), 0
    conv = F.conv2d if x.ndim == 4 else F.conv1d
    return conv(x, kernel, padding=padding, **rest)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")
@pytest.mark.parametrize(("in_shape", "keywords"), GEOMETRIES)
def test_synapses_compute_pytorchs_convolution(in_shape: tuple[int, ...], keywords: dict) -> None:
    """The synapses as a matrix times the flattened input equal ``F.conv*`` on the shaped input."""
    rng = np.random.default_rng(len(in_shape))
    n_dims, groups = len(in_shape) - 1, keywords.get("groups", 1)
    kernel = rng.normal(
        size=(4 if groups != 3 else 3, in_shape[0] // groups, *_as_tuple(keywords["kernel_size"], n_dims))
    )
    spec = conv_spec(in_shape, edge="e", out_channels=kernel.shape[0], **keywords)
    post, pre, tap = spec.synapses()
    matrix = np.zeros((int(np.prod(spec.out_shape)), int(np.prod(in_shape))))
    np.add.at(matrix, (post, pre), kernel.reshape(-1)[tap])
    x = torch.as_tensor(rng.normal(size=(2, *in_shape)))
    want = _pytorch_conv(x, torch.as_tensor(kernel), keywords)
    assert want.shape[1:] == spec.out_shape
    np.testing.assert_allclose(x.reshape(2, -1).numpy() @ matrix.T, want.reshape(2, -1).numpy(), rtol=1e-12, atol=1e-12)
    assert np.unique(np.stack([post, pre, tap]), axis=1).shape[1] == post.size, "a synapse is repeated"


@pytest.mark.parametrize("kind", ["sum", "avg"])
@pytest.mark.parametrize(("kernel_size", "stride", "padding"), [(2, None, 0), ((3, 2), 1, 1), (3, 2, (1, 0))])
def test_pooling_synapses_compute_pytorchs_pooling(kind: str, kernel_size: Any, stride: Any, padding: Any) -> None:
    g = Graph()
    g.add_input("x", (3, 7, 6))
    g.add_lif("p")
    g.connect_pool("x", "p", kind=kind, kernel_size=kernel_size, stride=stride, padding=padding)
    net = snngraph.compile(g)
    matrix = np.zeros((net.n_neurons, net.n_inputs))
    np.add.at(matrix, (net.in_post, net.in_pre), net.in_weight)
    x = torch.as_tensor(np.random.default_rng(1).normal(size=(2, 3, 7, 6)))
    want = F.avg_pool2d(x, kernel_size, stride, padding, count_include_pad=True)
    if kind == "sum":
        want = want * float(np.prod(_as_tuple(kernel_size, 2)))
    assert net.population("p").shape == want.shape[1:]
    np.testing.assert_allclose(x.reshape(2, -1).numpy() @ matrix.T, want.reshape(2, -1).numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_layer_equals_the_layered_pytorch_oracle(seed: int) -> None:
    """Random CNNs (1-D and 2-D, awkward geometry, per-tap delays, a conv inside a recurrent loop,
    feedback): float64 spikes identical, states to 1e-10, every gradient (kernels included)."""
    backend = ("reference", AS_CONVOLUTIONS)[seed % 2]
    assert_layer_equals_graph(random_cnn(seed, feedback=seed % 3 == 0), seed=seed, backend=backend, steps=12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cpu_backend_matches_the_reference_on_cnns(seed: int, dtype: torch.dtype) -> None:
    """Every convolution as a convolution (odd seeds: only those of at least 100 synapses)."""
    backend = AS_CONVOLUTIONS if seed % 2 == 0 else CpuOptions(conv_min_synapses=100)
    assert_matches_reference(snngraph.compile(random_cnn(seed + 20, feedback=True)), backend, dtype=dtype, seed=seed)


def test_convolution_blocks_over_many_backward_chunks() -> None:
    """The kernel gradients gathered from many pending time chunks (a tiny workspace)."""
    net = snngraph.compile(random_cnn(24, feedback=True))
    assert_matches_reference(net, CpuOptions(conv_min_synapses=0, workspace=1, chunks=16), seed=2)


@pytest.mark.parametrize("seed", range(2))
def test_cpu_backend_runs_convolutions_as_synapses_too(seed: int) -> None:
    """``CpuOptions(conv_min_synapses=math.inf)``: the convolution edges through the sparse and dense paths."""
    net = snngraph.compile(random_cnn(seed + 30, feedback=True))
    assert_matches_reference(net, AS_SYNAPSES, seed=seed)


@pytest.mark.parametrize("convolutions", [True, False])
def test_the_layer_op_gives_every_synapse_its_own_gradient(convolutions: bool) -> None:
    """Called with weights of its own (no kernel behind them), the layer op's CPU backend gives
    each convolution synapse its own gradient (not only the sums per tap), as the reference does."""
    net = snngraph.compile(random_cnn(4, feedback=True))
    steps, batch = 9, 2
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(steps + net.max_lag, batch, net.n_inputs, generator=generator) < 0.4).double()
    v0 = torch.zeros(net.n_states, batch, net.n_neurons, dtype=torch.float64)
    s_hist = torch.zeros(net.max_delay, batch, net.n_neurons, dtype=torch.float64)
    grads = {}
    for backend in ("reference", CpuOptions(conv_min_synapses=0, workspace=1) if convolutions else AS_SYNAPSES):
        w_in, w_rec = (torch.tensor(w, requires_grad=True) for w in (net.in_weight, net.rec_weight))
        v, s = lif_layer(
            x, w_in, w_rec, neuron_params(net), v0, s_hist, prepare(net, backend=backend, dtype=torch.float64)
        )
        loss = (v * torch.randn(v.shape, generator=torch.Generator().manual_seed(1), dtype=v.dtype)).sum() + s.sum()
        loss.backward()
        grads[backend == "reference"] = (w_in.grad, w_rec.grad)
    for got, want in zip(grads[False], grads[True], strict=True):
        assert want.abs().max() > 0
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_weights_that_differ_within_a_tap_are_refused() -> None:
    net = snngraph.compile(_cnn())
    plan = prepare(net, backend=AS_CONVOLUTIONS, dtype=torch.float64)
    w_in = torch.tensor(net.in_weight)
    w_in[0] += 0.5  # one synapse of a tap: no convolution computes this
    x = torch.zeros(4 + net.max_lag, 1, net.n_inputs, dtype=torch.float64)
    v0 = torch.zeros(net.n_states, 1, net.n_neurons, dtype=torch.float64)
    s_hist = torch.zeros(net.max_delay, 1, net.n_neurons, dtype=torch.float64)
    with pytest.raises(ValueError, match=re.escape("CpuOptions(conv_min_synapses=math.inf)")):
        lif_layer(x, w_in, torch.tensor(net.rec_weight), neuron_params(net), v0, s_hist, plan)
    cpu = prepare(net, backend=AS_SYNAPSES, dtype=torch.float64)
    reference = prepare(net, backend="reference", dtype=torch.float64)
    runs = [
        lif_layer(x, w_in, torch.tensor(net.rec_weight), neuron_params(net), v0, s_hist, p)[0] for p in (cpu, reference)
    ]
    torch.testing.assert_close(*runs, rtol=1e-12, atol=1e-12)


def _cnn() -> Graph:
    g = Graph()
    g.add_input("x", (2, 6, 6))
    g.add_lif("c1", alpha=0.8, theta=0.5)
    g.connect_conv("x", "c1", out_channels=3, kernel_size=3, padding=1, seed=0, delay=0)
    g.add_lif("p1", alpha=0.8, theta=0.5)
    g.connect_pool("c1", "p1", kernel_size=2)
    g.add_lif("c2", alpha=0.8, theta=0.5)
    g.connect_conv("p1", "c2", out_channels=4, kernel_size=2, seed=1)
    g.add_li("out", 3)
    g.connect("c2", "out", seed=2)
    return g


def _train_step(model: SNN, optimizer: torch.optim.Optimizer) -> None:
    x = (torch.rand(10, 4, 2, 6, 6, generator=torch.Generator().manual_seed(0)) < 0.4).to(model.table.dtype)
    optimizer.zero_grad()
    out = model(x)
    (out.membrane("out").square().sum() + out.spikes("c2").sum()).backward()
    optimizer.step()


def test_a_cnns_edges_are_parameters_in_their_natural_shape() -> None:
    model = SNN(snngraph.compile(_cnn()))
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes == {"weights.x->c1": (3, 2, 3, 3), "weights.p1->c2": (4, 3, 2, 2), "weights.c2->out": (48,)}
    assert "weights.c1->p1" in model.state_dict()  # the pooling's fixed value, a buffer
    assert model.weight_grad("c1", "p1") is None


def test_param_groups_and_freezing_act_per_conv_edge() -> None:
    """A zero learning rate for one kernel leaves it unchanged while the other kernel trains; a
    frozen kernel gets no gradient."""
    model = SNN(snngraph.compile(_cnn()), dtype=torch.float64)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    groups = [
        {"params": [model.weight("x", "c1")], "lr": 0.0},
        {"params": [model.weight("p1", "c2"), model.weight("c2", "out")], "lr": 0.05},
    ]
    _train_step(model, torch.optim.SGD(groups))
    assert torch.equal(model.weight("x", "c1"), before["weights.x->c1"])
    assert model.weight_grad("x", "c1").abs().sum() > 0  # it had a gradient; the rate kept it
    assert not torch.equal(model.weight("p1", "c2"), before["weights.p1->c2"])
    model.weight("p1", "c2").requires_grad_(False)
    model.zero_grad()
    _train_step(model, torch.optim.SGD(model.parameters(), lr=0.05))
    assert model.weight_grad("p1", "c2") is None


def test_state_dict_and_to_graph_round_trip_a_cnn(tmp_path: Path) -> None:
    net = snngraph.compile(_cnn())
    model = SNN(net, dtype=torch.float64)
    _train_step(model, torch.optim.Adam(model.parameters(), lr=0.01))
    copy = SNN(net, dtype=torch.float64)
    copy.load_state_dict(model.state_dict())
    x = (torch.rand(8, 2, 72, generator=torch.Generator().manual_seed(3)) < 0.4).double()
    assert torch.equal(copy(x).layer_membranes, model(x).layer_membranes)
    rebuilt = snngraph.compile(model.to_graph())
    for edge, again in zip(rebuilt.edges, model.net.edges, strict=True):
        assert (edge.kind, edge.conv, edge.param_shape) == (again.kind, again.conv, again.param_shape)
    for name in ("in_post", "in_pre", "in_delay", "rec_post", "rec_pre", "rec_delay", "rec_index"):
        np.testing.assert_array_equal(getattr(rebuilt, name), getattr(net, name), err_msg=name)
    trained = np.concatenate([model.weight(e.pre, e.post).detach().reshape(-1).numpy() for e in net.edges])
    np.testing.assert_array_equal(rebuilt.values, trained)
    rebuilt.save(tmp_path / "cnn.npz")
    loaded = snngraph.load(tmp_path / "cnn.npz")
    assert [e.conv for e in loaded.edges] == [e.conv for e in rebuilt.edges]
    assert [p.shape for p in loaded.populations] == [(3, 6, 6), (3, 3, 3), (4, 2, 2), None]
    assert loaded.inputs[0].shape == (2, 6, 6)


def test_a_given_kernel_may_name_its_size() -> None:
    g = Graph()
    g.add_input("x", (1, 8, 8))
    g.add_lif("c")
    g.connect_conv("x", "c", kernel=np.zeros((2, 1, 3, 3)), kernel_size=3, out_channels=2)
    assert g.population_shape("c") == (2, 6, 6)
    g.add_lif("d")
    with pytest.raises(
        ValueError, match=re.escape("kernel_size=(3, 2) does not match the kernel's shape (2, 1, 3, 3)")
    ):
        g.connect_conv("x", "d", kernel=np.zeros((2, 1, 3, 3)), kernel_size=(3, 2))


def test_per_tap_delays_round_trip() -> None:
    g = Graph()
    g.add_input("x", (1, 5))
    g.add_lif("h")
    delays = np.array([[[0, 2, 1]], [[3, 3, 0]]])
    g.connect_conv("x", "h", kernel=np.ones((2, 1, 3)), delay=delays)
    net = snngraph.compile(g)
    np.testing.assert_array_equal(net.in_delay, delays.reshape(-1)[net.in_index])
    again = SNN(net).to_graph()
    np.testing.assert_array_equal(again.nx.edges["x", "h"]["delay"], delays)


def test_networkx_edges_carry_the_convolution() -> None:
    g = _cnn().to_networkx()
    assert g.edges["x", "c1"]["kind"] == "conv"
    assert g.edges["c1", "p1"]["pool"] == "sum"
    assert g.nodes["c1"]["shape"] == (3, 6, 6)
    net = snngraph.compile(g)
    assert [e.kind for e in net.edges] == ["conv", "pool", "conv", "sparse"]


def test_summary_shows_the_geometry() -> None:
    text = snngraph.compile(_cnn()).summary()
    conv = "edge 'x' -> 'c1' (input): conv 2x6x6 -> 3x6x6, kernel 3x3, stride 1x1, padding 1x1, parameter (3, 2, 3, 3)"
    assert conv in text
    pool = "edge 'c1' -> 'p1' (recurrent): pool 3x6x6 -> 3x3x3, sum kernel 2x2, stride 2x2, fixed, parameter (1,), "
    assert pool + "108 synapses" in text  # 27 outputs, 4 taps each
    assert "(int32 post, pre, delay)" in text


def test_a_shaped_input_takes_its_shape_or_the_flat_layout() -> None:
    model = SNN(snngraph.compile(_cnn()), dtype=torch.float64)
    x = (torch.rand(5, 2, 2, 6, 6, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    assert torch.equal(model(x).layer_spikes, model(x.flatten(2)).layer_spikes)
    assert torch.equal(model({"x": x}).layer_spikes, model(x.flatten(2)).layer_spikes)


def _error(build: Any, message: str) -> None:
    g = Graph()
    g.add_input("x", (2, 6, 5))
    g.add_input("flat", 7)
    with pytest.raises(ValueError, match=message):
        build(g)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda g: (g.add_lif("h"), g.connect_conv("x", "h", kernel=np.ones((3, 1, 3, 3)))),
            r"edge 'x' -> 'h': the kernel has shape \(3, 1, 3, 3\), but 'x' of shape \(2, 6, 5\) with groups=1 and "
            r"kernel_size=\(3, 3\) needs \(3, 2, 3, 3\)",
        ),
        (
            lambda g: (g.add_lif("h", (3, 6, 5)), g.connect_conv("x", "h", out_channels=3, kernel_size=3)),
            r"edge 'x' -> 'h': the conv of 'x' \(shape \(2, 6, 5\)\) gives the shape \(3, 4, 3\), but 'h' has shape "
            r"\(3, 6, 5\); give 'h' the shape \(3, 4, 3\)",
        ),
        (
            lambda g: (g.add_lif("h", 40), g.connect_conv("x", "h", out_channels=3, kernel_size=3)),
            r"'h' has size 40 and no shape; give 'h' the shape \(3, 4, 3\)",
        ),
        (
            lambda g: (g.add_lif("h"), g.connect_pool("flat", "h", kernel_size=2)),
            r"edge 'flat' -> 'h': a pool edge needs a shaped pre population; give 'flat' a shape",
        ),
        (
            lambda g: (g.add_lif("h"), g.connect_conv("x", "h", out_channels=3, kernel_size=3, groups=2)),
            r"edge 'x' -> 'h': groups=2 must divide the input channels \(2\) and the output channels \(3\)",
        ),
        (
            lambda g: (g.add_lif("h"), g.connect_conv("x", "h", out_channels=2, kernel_size=7)),
            r"edge 'x' -> 'h': the kernel \(7, 7\) .* does not fit the padded input \(6, 5\)",
        ),
        (
            lambda g: (
                g.add_lif("h"),
                g.connect_conv("x", "h", out_channels=2, kernel_size=3, stride=2, padding="same"),
            ),
            r"padding='same' needs stride 1",
        ),
        (
            lambda g: (g.add_lif("h"), g.connect_conv("x", "h", out_channels=2, kernel_size=(3, 3, 3))),
            r"kernel_size must be an int >= 1 or 2 of them",
        ),
        (
            lambda g: (g.add_lif("h"), g.connect_conv("x", "h", kernel=np.ones((2, 2, 3, 3)), delay=np.ones(3, int))),
            r"delay must be an int, or an int array of the kernel's shape \(2, 2, 3, 3\)",
        ),
        (lambda g: (g.add_lif("h"), g.connect("x", "h")), r"node 'h' has no size yet"),
        (lambda g: g.add_lif("h", alpha=np.ones(3)), r"node 'h': \['alpha'\] hold one value per neuron"),
        (lambda g: (g.add_lif("h"), g.connect_pool("x", "h", kind="max", kernel_size=2)), r"pool must be one of"),
    ],
)
def test_bad_convolutions_are_named(build: Any, message: str) -> None:
    _error(build, message)


def test_a_population_left_without_a_size_is_named_at_compile() -> None:
    g = Graph()
    g.add_input("x", 3)
    g.add_lif("h", 2)
    g.add_lif("lost")
    g.connect("x", "h")
    with pytest.raises(ValueError, match=re.escape("node 'lost' has no size: give it one")):
        snngraph.compile(g)


def test_a_node_shape_must_hold_its_size() -> None:
    g = _cnn().to_networkx()
    g.nodes["c1"]["size"] = 100
    with pytest.raises(ValueError, match=re.escape("node 'c1': shape (3, 6, 6) holds 108 neurons but size is 100")):
        snngraph.compile(g)


def test_flat_weights_hold_the_kernels_too() -> None:
    net = snngraph.compile(_cnn())
    per_edge, flat = (SNN(net, dtype=torch.float64, flat_weights=f) for f in (False, True))
    x = (torch.rand(8, 2, 2, 6, 6, generator=torch.Generator().manual_seed(5)) < 0.4).double()
    out_edge, out_flat = per_edge(x), flat(x)
    assert torch.equal(out_edge.layer_spikes, out_flat.layer_spikes)
    out_edge.layer_membranes.sum().backward()
    out_flat.layer_membranes.sum().backward()
    assert flat.weight("x", "c1").shape == (3, 2, 3, 3)
    torch.testing.assert_close(flat.weight_grad("x", "c1"), per_edge.weight_grad("x", "c1"), rtol=1e-12, atol=0)
