"""The cpu backend equals the reference backend: spikes, membranes, every gradient.

Over seeded random graphs (retimed zero-delay hops, feedback, readouts, per-synapse delays up to
32), every reset × detach_reset × surrogate, both dtypes, each propagation path of the backend
(event walk, sparse product, dense blocks, small time chunks), silent and saturated populations,
learnable alpha/theta, chunked runs and truncated BPTT.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from layer_checks import assert_close_to_reference, assert_matches_reference, parameter_grads, relative_error
from random_graphs import random_graph

import snngraph
import snngraph.backends.cpu.backward as cpu_backward
import snngraph.backends.cpu.forward as cpu_forward
import snngraph.backends.cpu.plan as cpu_plan
from snngraph import SNN, Graph
from snngraph.backends import CpuOptions
from snngraph.backends.cpu import CpuBackend
from snngraph.backends.cpu.arrays import nonzero_spans
from snngraph.graph import RESETS
from snngraph.neurons import NeuronParams
from snngraph.surrogates import ATan, FastSigmoid, Sigmoid, Triangle

DTYPES = {"f64": torch.float64, "f32": torch.float32}
SURROGATES = {"Sigmoid": Sigmoid(5.0), "FastSigmoid": FastSigmoid(3.0), "ATan": ATan(2.0), "Triangle": Triangle(0.7)}
MODES = {
    # name: (event_fraction, sampled_rate, dense_density, min_dense_area, backward time chunks,
    #        sparse spike products for the dense blocks' weight gradient)
    "events": (1.0, np.inf, 2.0, 0, 1, False),
    "products": (0.0, 0.0, 2.0, 0, 1, False),
    "dense-blocks": (0.0, 0.0, 0.0, 0, 1, False),
    "dense-blocks-spike-products": (0.0, 0.0, 0.0, 0, 1, True),
    "one-step-chunks": (0.5, 0.5, 0.5, 0, 1000, True),
}


@pytest.fixture(params=MODES, ids=list(MODES))
def mode(request: pytest.FixtureRequest) -> CpuOptions:
    """Options that force one way of propagating spikes (and of chunking the backward pass)."""
    event_fraction, sampled_rate, dense_density, min_dense_area, chunks, spike_products = MODES[request.param]
    return CpuOptions(
        event_fraction=event_fraction,
        sampled_rate=sampled_rate,
        dense_density=dense_density,
        min_dense_area=min_dense_area,
        chunks=chunks,
        workspace=1,
        spike_product_min_area=0,
        spike_product_fraction=1.01 if spike_products else 0.0,
    )


CASES = [  # (seed, reset, detach_reset, surrogate), a new graph for each
    (seed, *case) for seed, case in enumerate(itertools.product(RESETS, (False, True), SURROGATES))
]


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=list(DTYPES))
@pytest.mark.parametrize(
    ("seed", "reset", "detach", "surrogate"),
    CASES,
    ids=[f"{reset}-{'detached' if detach else 'attached'}-{surrogate}" for _, reset, detach, surrogate in CASES],
)
def test_matches_reference(seed: int, reset: str, detach: bool, surrogate: str, dtype: torch.dtype) -> None:
    net = snngraph.compile(random_graph(seed, resets=(reset,)))
    assert_matches_reference(
        net, "cpu", dtype=dtype, surrogate=SURROGATES[surrogate], detach_reset=detach, steps=17, batch=3, seed=seed
    )


@pytest.mark.parametrize("seed", [3, 11, 12])
def test_every_path_matches_reference(mode: CpuOptions, seed: int) -> None:
    net = snngraph.compile(random_graph(seed, max_size=9))
    for detach in (False, True):
        assert_matches_reference(net, mode, detach_reset=detach, steps=23, batch=5, seed=seed)


@pytest.mark.parametrize("loss_on", ["spikes", "membranes"])
def test_loss_on_one_output(mode: CpuOptions, loss_on: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The output that no loss reaches gets no upstream gradient at all (``None``)."""
    received = []
    original = cpu_backward.backward

    def recording(*args: object) -> tuple:
        received.append(tuple(g is None for g in args[3:5]))  # grad_u, grad_s
        return original(*args)

    monkeypatch.setattr(cpu_backward, "backward", recording)
    net = snngraph.compile(random_graph(4, max_size=9))
    assert_matches_reference(net, mode, steps=19, batch=3, seed=4, loss_on=loss_on)
    assert received == [(loss_on == "spikes", loss_on == "membranes")]


def test_nonzero_spans() -> None:
    a = np.zeros((3, 2, 10))
    a[1, 0, 2], a[0, 1, 3], a[2, 1, 7], a[0, 0, 9] = 1.0, -2.0, np.nan, 5.0
    assert nonzero_spans(a) == [slice(2, 4), slice(7, 8), slice(9, 10)]
    assert nonzero_spans(np.zeros((2, 3))) == []
    assert nonzero_spans(np.ones((1, 4))) == [slice(0, 4)]


@pytest.mark.parametrize("seed", [6, 7])
def test_loss_on_some_populations(mode: CpuOptions, seed: int) -> None:
    """A loss on the membranes of some populations only (the rest of ∂L/∂U is zero, which the
    backward pass skips): the reference's gradients."""
    net = snngraph.compile(random_graph(seed, max_size=9))
    names = [p.name for p in net.populations][::2]
    grads = []
    for backend in ("reference", mode):
        model = SNN(net, backend=backend, learn=tuple(net.parameters), dtype=torch.float64)
        generator = torch.Generator().manual_seed(seed)
        x = (torch.rand(21, 3, net.n_inputs, generator=generator) < 0.4).double()
        out = model(x)
        views = [out.membrane(name) for name in names]
        sum((v * torch.randn(v.shape, generator=generator, dtype=v.dtype)).sum() for v in views).backward()
        grads.append(parameter_grads(model))
    for name, want in grads[0].items():
        assert_close_to_reference(grads[1][name], want, torch.float64, f"gradient of {name}")


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=list(DTYPES))
@pytest.mark.parametrize("seed", [0, 5])
def test_delays_up_to_32(seed: int, dtype: torch.dtype) -> None:
    net = snngraph.compile(random_graph(seed, max_delay=32))
    assert net.max_delay > 16
    assert_matches_reference(net, "cpu", dtype=dtype, steps=41, batch=2, seed=seed)


@pytest.mark.parametrize("learn", [(), ("alpha",), ("theta",)], ids=["fixed", "alpha", "theta"])
def test_learnable_alpha_and_theta(learn: tuple[str, ...]) -> None:
    net = snngraph.compile(random_graph(7))
    assert_matches_reference(net, "cpu", learn=learn, seed=7)


def _quiet_and_busy_graph(reset: str) -> Graph:
    """Inputs drive ``busy`` far above threshold every step and ``quiet`` far below it."""
    g = Graph()
    g.add_input("x", 5)
    g.add_lif("busy", 7, theta=0.5, reset=reset)
    g.add_lif("quiet", 6, theta=50.0, reset=reset)
    g.add_li("out", 3)
    g.connect("x", "busy", weight=np.full((7, 5), 20.0), delay=0)
    g.connect("x", "quiet", weight=np.full((6, 5), 1e-3), delay=1)
    g.connect("busy", "busy", weight=np.full((7, 7), 0.5), delay=2)
    g.connect("quiet", "quiet", weight=np.full((6, 6), 1e-3), delay=1)
    g.connect("busy", "out", weight=np.full((3, 7), 0.1), delay=0)
    g.connect("quiet", "out", weight=np.full((3, 6), 0.1), delay=0)
    return g


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_silent_and_saturated_populations(reset: str, mode: CpuOptions) -> None:
    net = snngraph.compile(_quiet_and_busy_graph(reset))
    got = assert_matches_reference(net, mode, steps=19, batch=2, input_rate=1.0)
    busy, quiet = net.population("busy"), net.population("quiet")
    # the incoming random state may make a first spike; from then on the pattern is fixed
    assert got.spikes[busy.lag + 1 :, :, busy.start : busy.stop].all()
    assert not got.spikes[quiet.lag + 1 :, :, quiet.start : quiet.stop].any()


def test_duplicate_synapses(mode: CpuOptions) -> None:
    """A sparse weight may store the same pair twice, with different delays or the same one:
    two synapses, one gradient each."""
    g = Graph()
    g.add_input("x", 3)
    g.add_lif("h", 4, theta=0.6)
    rows, cols = np.array([0, 0, 1, 2, 3, 3]), np.array([1, 1, 0, 2, 3, 3])
    g.connect("x", "h", weight=sp.coo_array((np.ones(6), (rows % 4, cols % 3)), shape=(4, 3)), delay=[0, 2, 1, 0, 3, 1])
    g.connect("h", "h", weight=sp.coo_array((np.full(6, 0.3), (rows, cols)), shape=(4, 4)), delay=[1, 4, 2, 1, 3, 3])
    assert_matches_reference(snngraph.compile(g), mode, steps=15, batch=2, seed=1)


@pytest.mark.parametrize("seed", [2, 5, 9])
def test_fixed_edges_are_left_out_of_the_weight_gradient(mode: CpuOptions, seed: int) -> None:
    """Every other edge of a random graph fixed (``trainable=False``): the module's layer lists
    them (``LayerSpec.fixed``), the CPU backend returns zero on their sparse synapses, and the
    edges that train keep the reference's gradients."""
    g = random_graph(seed, max_size=9)
    for pre, post in list(g.nx.edges)[::2]:
        g.nx.edges[pre, post]["trainable"] = False
    net = snngraph.compile(g)
    fixed = [e for e in net.edges if not e.trainable]
    assert 0 < len(fixed) < len(net.edges)
    assert_matches_reference(net, mode, steps=19, batch=3, seed=seed)

    model = SNN(net, backend=mode, dtype=torch.float64)
    assert {(r.target, r.start, r.stop) for r in model.plan.layer.fixed} == {(e.target, e.start, e.stop) for e in fixed}
    w_in, w_rec = (model._synapse_weights(t).detach().requires_grad_(True) for t in ("input", "recurrent"))
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(net.max_input_delay + 19, 3, net.n_inputs, generator=generator) < 0.4).double()
    v0 = torch.zeros(1, 3, net.n_neurons, dtype=torch.float64)
    s_hist = torch.zeros(net.max_delay, 3, net.n_neurons, dtype=torch.float64)
    table = NeuronParams(model.table)
    v, _ = snngraph.functional.lif_layer(x, w_in, w_rec, table, v0, s_hist, model.plan)
    (v * torch.randn(v.shape, generator=generator, dtype=v.dtype)).sum().backward()
    for w, plan in ((w_in, model.plan.structures.inputs), (w_rec, model.plan.structures.recurrent)):
        left_out = np.setdiff1d(plan.sparse.synapses, plan.learned.synapses)
        target = "input" if plan is model.plan.structures.inputs else "recurrent"
        in_fixed = np.zeros(w.numel(), bool)
        for e in net.edges_of(target):
            in_fixed[e.start : e.stop] = not e.trainable
        assert np.array_equal(left_out, np.sort(plan.sparse.synapses[in_fixed[plan.sparse.synapses]]))
        assert torch.all(w.grad[torch.from_numpy(left_out)] == 0)


def _chunked(model: SNN, x: torch.Tensor, sizes: list[int], detach: bool) -> list[snngraph.SNNOutput]:
    state, outputs = None, []
    for part in x.split(sizes):
        out = model(part, state)
        state = out.state.detach() if detach else out.state
        outputs.append(out)
    return outputs


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=list(DTYPES))
@pytest.mark.parametrize("seed", [2, 6, 9])
def test_chunked_run_equals_whole_run(seed: int, dtype: torch.dtype) -> None:
    """Bit for bit: every step sums the same terms in the same order, chunked or not."""
    net = snngraph.compile(random_graph(seed, max_delay=5))
    model = SNN(net, backend="cpu", dtype=dtype)
    x = (torch.rand(31, 3, net.n_inputs, generator=torch.Generator().manual_seed(seed)) < 0.4).to(dtype)
    whole = model(x)
    chunks = _chunked(model, x, [9, 2, 20], detach=False)
    for p in net.populations:
        assert torch.equal(torch.cat([c.spikes(p.name) for c in chunks]), whole.spikes(p.name))
        assert torch.equal(torch.cat([c.membrane(p.name) for c in chunks]), whole.membrane(p.name))


def test_a_dense_edge_among_sparse_ones_of_its_delay_is_a_dense_block() -> None:
    """Dense blocks are looked for edge by edge first: a dense edge next to a sparse one of the
    same delay (whose joint bounding box is nearly empty) runs as a BLAS block, and the layer
    still matches the reference."""
    g = Graph()
    g.add_input("x", 3)
    g.add_lif("a", 1000, theta=0.5)
    g.add_lif("b", 100, theta=0.5)
    g.add_li("out", 64)
    rng = np.random.default_rng(0)
    g.connect("x", "a", weight=rng.uniform(0, 1, (1000, 3)), delay=1)
    g.connect("a", "b", weight=sp.random_array((100, 1000), density=0.005, rng=rng), delay=2)
    g.connect("b", "out", weight=rng.normal(0, 0.3, (64, 100)), delay=2)
    net = snngraph.compile(g)
    model = SNN(net, backend="cpu")
    (block,) = model.plan.structures.recurrent.dense
    dense_edge = next(e for e in net.edges if (e.pre, e.post) == ("b", "out"))
    assert np.array_equal(np.sort(block.synapses), np.arange(dense_edge.start, dense_edge.stop))
    assert_matches_reference(net, "cpu", steps=15, batch=2, seed=3)


def test_chunked_run_with_dense_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """With BLAS products the rounding may depend on the number of rows: equal to 1e-12."""
    net = snngraph.compile(random_graph(15, max_delay=5))
    model = SNN(net, backend=CpuOptions(dense_density=0.0, min_dense_area=0), dtype=torch.float64)
    x = (torch.rand(31, 3, net.n_inputs, generator=torch.Generator().manual_seed(15)) < 0.4).double()
    whole = model(x)
    chunks = _chunked(model, x, [9, 2, 20], detach=False)
    for p in net.populations:
        assert torch.equal(torch.cat([c.spikes(p.name) for c in chunks]), whole.spikes(p.name))
        torch.testing.assert_close(
            torch.cat([c.membrane(p.name) for c in chunks]), whole.membrane(p.name), rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("seed", [4, 8])
def test_truncated_bptt_matches_reference(seed: int) -> None:
    """Backward through each chunk, the state detached in between: the same (finite) gradients
    as the reference backend doing the same."""
    net = snngraph.compile(random_graph(seed))
    x = (torch.rand(24, 2, net.n_inputs, generator=torch.Generator().manual_seed(seed)) < 0.5).double()
    grads = {}
    for backend in ("reference", "cpu"):
        model = SNN(net, backend=backend, dtype=torch.float64, learn_alpha=True, learn_theta=True)
        for out in _chunked(model, x, [10, 7, 7], detach=True):
            (out.layer_membranes.square().sum() + out.layer_spikes.sum()).backward()
        grads[backend] = parameter_grads(model)
    for name, grad in grads["cpu"].items():
        assert torch.isfinite(grad).all()
        assert_close_to_reference(grad, grads["reference"][name], torch.float64, f"scipy: gradient of {name}")


def test_forward_work_follows_activity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted, not timed: the event walk touches exactly spikes × fan-out synapses, and a
    silent layer does no recurrent work at all."""
    options = CpuOptions(event_fraction=2.0, dense_density=2.0)  # always walk the events, no dense blocks
    pairs = []
    products = []
    original_pairs = cpu_plan.SparseSynapses.pairs

    def counting_pairs(
        self: cpu_plan.SparseSynapses, pre: np.ndarray, base: np.ndarray, key: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        result = original_pairs(self, pre, base, key)
        pairs.append(result[0].size)
        return result

    monkeypatch.setattr(cpu_plan.SparseSynapses, "pairs", counting_pairs)
    monkeypatch.setattr(cpu_forward._Propagator, "_product", lambda *args: products.append(args))
    net = snngraph.compile(random_graph(3, max_size=9))
    fanout = np.bincount(net.rec_pre, minlength=net.n_neurons)
    model = SNN(net, backend=options, dtype=torch.float64)
    steps = 20
    with torch.no_grad():
        silent = model(torch.zeros(steps, 4, net.n_inputs, dtype=torch.float64))
        assert not silent.layer_spikes.any()
        assert pairs == []
        assert products == []
        active = model((torch.rand(steps, 4, net.n_inputs, generator=torch.Generator().manual_seed(0)) < 0.5).double())
    spikes = active.layer_spikes[:-1]  # the last step has no future to send spikes to
    assert spikes.any()
    assert products == []
    assert sum(pairs) == int((spikes.sum(dim=(0, 1)).numpy() * fanout).sum())


def test_runs_on_cpu_only() -> None:
    backend = CpuBackend()
    assert backend.unavailable_reason(torch.device("cpu")) is None
    assert "triton" in backend.unavailable_reason(torch.device("cuda"))


def test_rejects_half_precision() -> None:
    net = snngraph.compile(random_graph(0))
    model = SNN(net, backend="cpu", dtype=torch.float16)
    with pytest.raises(TypeError, match="float32 and float64"):
        model(torch.zeros(3, 1, net.n_inputs, dtype=torch.float16))


@pytest.mark.parametrize("saved", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_membranes_saved_in_low_precision_keep_spikes_and_gradients_close(saved: torch.dtype) -> None:
    net = snngraph.compile(random_graph(11))
    x = (torch.rand(20, 3, net.n_inputs, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    runs = []
    for saved_membranes in (None, saved):
        model = SNN(net, backend="cpu", surrogate=Sigmoid(5.0), saved_membranes=saved_membranes)
        out = model(x)
        (out.layer_membranes.square().sum() + out.layer_spikes.sum()).backward()
        runs.append((out.layer_spikes, parameter_grads(model)))
    (spikes, grads), (low_spikes, low_grads) = runs
    assert torch.equal(spikes, low_spikes)
    for name, grad in grads.items():
        assert relative_error(low_grads[name], grad) < 0.03, name


def test_saved_membranes_option_is_checked() -> None:
    net = snngraph.compile(random_graph(0))
    with pytest.raises(ValueError, match=r"saved_membranes must be None, torch\.bfloat16 or torch\.float16"):
        SNN(net, saved_membranes=torch.int8)
    with pytest.raises(ValueError, match="saved_membranes applies to the fused backends"):
        SNN(net, backend="reference", saved_membranes=torch.bfloat16)
