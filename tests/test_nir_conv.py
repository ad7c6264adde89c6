"""NIR convolutions, poolings and flattens: Norse's importer and a torch oracle step for step,
round trips through to_nir/from_nir, and clear errors.

Norse (a test-only extra, see docs/nir.md) is skipped when it is not installed.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import snngraph
from snngraph.compiler import read_graph
from snngraph.nir import from_nir, to_nir

nir = pytest.importorskip("nir")

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:nirtorch.load is being deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph is being deprecated:DeprecationWarning"),
]

H = 12  # the SCNN's input is 2 × H × H


def run(graph: snngraph.Graph, x: torch.Tensor) -> snngraph.SNNOutput:
    """The model in float64 from the start, run on ``x`` [T, B, …]."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return snngraph.SNN(snngraph.compile(graph))(x)
    finally:
        torch.set_default_dtype(default)


def if_node(shape: tuple[int, ...], theta: float) -> nir.IF:
    return nir.IF(r=np.ones(shape), v_threshold=np.full(shape, theta), v_reset=np.zeros(shape))


def sum_pool(k: int) -> nir.SumPool2d:
    return nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([k, k]), padding=np.array([0, 0]))


def sequential(nodes: dict[str, nir.NIRNode]) -> nir.NIRGraph:
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(names)), type_check=False)


CONV1_OPTIONS = {  # (stride, padding, dilation) of the first convolution
    "padding 1": (1, 1, 1),
    "padding 'same'": (1, "same", 1),
    "stride 2, dilation 2, 'valid'": (2, "valid", 2),
}


def sinabs_scnn(seed: int, stride: int, padding: int | str, dilation: int) -> nir.NIRGraph:
    """Input (2, H, H) → Conv2d → IF → SumPool2d → Conv2d → IF → SumPool2d → Flatten → Affine → IF →
    Output, every neuron parameter shaped like its layer (as Sinabs writes it)."""
    rng = np.random.default_rng(seed)
    conv1 = nir.Conv2d((H, H), rng.normal(0.0, 0.3, (4, 2, 3, 3)), stride, padding, dilation, 1, rng.normal(0, 0.1, 4))
    c1 = conv1.output_type["output"]
    p1 = (4, c1[1] // 2, c1[2] // 2)
    conv2 = nir.Conv2d(p1[1:], rng.normal(0.0, 0.15, (6, 4, 3, 3)), 1, 1, 1, 1, rng.normal(0, 0.1, 6))
    p2 = (6, p1[1] // 2, p1[2] // 2)
    n_flat = int(np.prod(p2))
    return sequential(
        {
            "input": nir.Input(np.array([2, H, H])),
            "conv1": conv1,
            "if1": if_node(tuple(c1), 1.0),
            "pool1": sum_pool(2),
            "conv2": conv2,
            "if2": if_node((6, *p1[1:]), 1.5),
            "pool2": sum_pool(2),
            "flat": nir.Flatten(np.array(p2), start_dim=0),
            "fc": nir.Affine(rng.normal(0.0, 0.2, (10, n_flat)), rng.normal(0, 0.1, 10)),
            "if3": if_node((10,), 1.0),
            "output": nir.Output(np.array([10])),
        }
    )


def step_norse_unbatched(model: torch.nn.Module, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """Spikes and (post-reset) membranes of ``layers`` of a Norse module stepped on each sample of ``x``
    [T, B, C, H, W] on its own: NIR's Flatten(start_dim=0) has no batch dimension, and Norse maps it
    to ``torch.nn.Flatten(0, -1)`` as written."""
    record: dict[str, list] = {name: [] for name in layers}
    hooks = [
        getattr(model, name).register_forward_hook(lambda m, a, out, name=name: record[name].append(out))
        for name in layers
    ]
    steps, batch = x.shape[:2]
    with torch.no_grad():
        for b in range(batch):
            state = None
            for t in range(steps):
                _, state = model(x[t, b], state)
    for hook in hooks:
        hook.remove()
    result = {}
    for name, outputs in record.items():
        spikes = torch.stack([z.reshape(-1) for z, _ in outputs]).reshape(batch, steps, -1).transpose(0, 1)
        v = torch.stack([s.v.reshape(-1) for _, s in outputs]).reshape(batch, steps, -1).transpose(0, 1)
        result[name] = (spikes, v)
    return result


@pytest.mark.parametrize("conv1", list(CONV1_OPTIONS))
def test_sinabs_style_scnn_runs_as_norse_from_nir_runs_it(conv1: str) -> None:
    norse = pytest.importorskip("norse.torch")
    graph = sinabs_scnn(0, *CONV1_OPTIONS[conv1])
    # Norse steps nir.IF as v[t] = v[t-1] + x[t] (IAFCell: dt unused, r must be 1): input_scale="r"
    g = from_nir(graph, dt=1e-3, input_scale="r")
    projections = {(p.pre, p.post): p for p in read_graph(g)[1]}
    kinds = {pair: (p.kind, p.trainable) for pair, p in projections.items()}
    assert kinds == {
        ("input", "if1"): ("conv", True),
        ("if1", "if2"): ("shared", True),
        ("if2", "if3"): ("shared", True),
    }
    # the pooled chains train the kernel of conv2 and the matrix of fc as tied parameters
    np.testing.assert_array_equal(projections["if1", "if2"].values, graph.nodes["conv2"].weight)
    np.testing.assert_array_equal(projections["if2", "if3"].values, graph.nodes["fc"].weight)
    assert g.population_shape("input") == (2, H, H)
    assert g.population_shape("if1") == tuple(graph.nodes["conv1"].output_type["output"])
    model = norse.from_nir(graph, dt=1e-3).double()
    x = (torch.rand(25, 3, 2, H, H, generator=torch.Generator().manual_seed(1)) < 0.2).double()
    want = step_norse_unbatched(model, x, ["if1", "if2", "if3"])
    out = run(g, x)
    for name, (spikes, v) in want.items():
        rate = spikes.mean().item()
        assert 0.005 < rate < 0.3, (name, rate)
        assert torch.equal(out.spikes(name), spikes), name
        # snngraph's membrane is the one before the reset, Norse's the one after it; Norse's importer
        # rounds the weights to float32
        torch.testing.assert_close(out.membrane(name) * (1 - out.spikes(name)), v, rtol=1e-5, atol=1e-5)


def test_norse_reads_the_conv_export() -> None:
    """Conv, pool and dense edges between IF populations → to_nir → Norse's from_nir, step for step."""
    norse = pytest.importorskip("norse.torch")
    rng = np.random.default_rng(4)
    g = snngraph.Graph()
    g.add_input("x", (2, H, H))
    g.add_lif("if1", (4, H, H), alpha=1.0, theta=1.0, reset="zero", bias=np.repeat(rng.normal(0, 0.1, 4), H * H))
    g.connect_conv("x", "if1", kernel=rng.normal(0.0, 0.3, (4, 2, 3, 3)), padding="same", delay=0)
    g.add_lif("if2", alpha=1.0, theta=1.0, reset="zero")
    g.connect_pool("if1", "if2", kind="sum", kernel_size=2, delay=0)
    g.add_lif("if3", alpha=1.0, theta=1.0, reset="zero")
    g.connect_conv("if2", "if3", kernel=rng.normal(0.0, 0.3, (6, 4, 3, 3)), stride=2, delay=0)
    g.add_lif("if4", 10, alpha=1.0, theta=1.0, reset="zero")
    g.connect("if3", "if4", weight=rng.normal(0.0, 0.3, (10, g.population_size("if3"))), delay=0)
    exported = to_nir(g, dt=1e-3, input_scale="r", resistance="unit")  # Norse's IF: v += x, r = 1
    types = [type(exported.nodes[name]).__name__ for name in ("x_to_if1", "if1_to_if2", "if3_flat", "if3_to_if4")]
    assert types == ["Conv2d", "SumPool2d", "Flatten", "Linear"]
    model = norse.from_nir(exported, dt=1e-3).double()
    x = (torch.rand(20, 2, 2, H, H, generator=torch.Generator().manual_seed(3)) < 0.2).double()
    want = step_norse_unbatched(model, x, ["if1", "if2", "if3", "if4"])
    out = run(g, x)
    for name, (spikes, _) in want.items():
        assert 0.005 < spikes.mean() < 0.3, name
        assert torch.equal(out.spikes(name), spikes), name


def test_imported_scnn_exports_and_imports_again() -> None:
    """The composed edges (SumPool2d → Conv2d) of an imported SCNN export as a Linear into the shaped
    population (its output type that shape) and come back with the same synapses."""
    g = from_nir(sinabs_scnn(2, 1, 1, 1), dt=1e-3, input_scale="r")
    exported = to_nir(g, dt=1e-3, input_scale="r")
    exported.check_types()
    back = from_nir(exported, dt=1e-3, input_scale="r")
    x = (torch.rand(20, 2, 2, H, H, generator=torch.Generator().manual_seed(4)) < 0.2).double()
    first, second = run(g, x), run(back, x)
    for name in ("if1", "if2", "if3"):
        assert first.spikes(name).sum() > 0, name
        assert torch.equal(first.spikes(name), second.spikes(name)), name


# ----------------------------------------------------------------------------------------
# An independent oracle: the NIR graph stepped with torch's own convolutions


def step_nir_chain(graph: nir.NIRGraph, x: torch.Tensor, dt: float) -> dict[str, torch.Tensor]:
    """Spikes of every neuron node of a sequential NIR graph, stepped from its equations with
    ``torch.nn.functional`` (IF: v += R·dt·I; LIF: forward Euler, v += dt/τ·(v_leak − v + R·I);
    reset to 0 after a spike)."""
    order = [graph.edges[0][0]] + [post for _, post in graph.edges]
    steps, batch = x.shape[:2]
    state: dict[str, torch.Tensor] = {}
    spikes: dict[str, list] = {}
    for t in range(steps):
        y = x[t]
        for name in order[1:]:
            node = graph.nodes[name]
            y = _oracle_node(name, node, y, state, dt)
            if isinstance(node, (nir.IF, nir.LIF)):
                spikes.setdefault(name, []).append(y.reshape(batch, -1))
    return {name: torch.stack(s) for name, s in spikes.items()}


def _padding(padding: object) -> object:
    return padding if isinstance(padding, str) else tuple(np.atleast_1d(padding).tolist())


def _oracle_node(name: str, node: nir.NIRNode, y: torch.Tensor, state: dict, dt: float) -> torch.Tensor:
    as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        conv = F.conv1d if isinstance(node, nir.Conv1d) else F.conv2d
        stride = node.stride if isinstance(node.stride, int) else tuple(node.stride)
        dilation = node.dilation if isinstance(node.dilation, int) else tuple(node.dilation)
        return conv(
            y, as_tensor(node.weight), as_tensor(node.bias), stride, _padding(node.padding), dilation, node.groups
        )
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        k, s, p = (tuple(int(v) for v in a) for a in (node.kernel_size, node.stride, node.padding))
        mean = F.avg_pool2d(y, k, s, p, count_include_pad=True)
        return mean * (k[0] * k[1]) if isinstance(node, nir.SumPool2d) else mean
    if isinstance(node, nir.Flatten):
        return y.reshape(y.shape[0], -1)
    if isinstance(node, nir.Affine):
        return y @ as_tensor(node.weight).T + as_tensor(node.bias)
    if isinstance(node, nir.Linear):
        return y @ as_tensor(node.weight).T
    if isinstance(node, nir.Output):
        return y
    r, theta = as_tensor(node.r), as_tensor(node.v_threshold)
    v = state.get(name, torch.zeros_like(y))
    if isinstance(node, nir.IF):
        v = v + r * dt * y
    else:
        tau, v_leak = as_tensor(node.tau), as_tensor(node.v_leak)
        v = v + dt / tau * (v_leak - v + r * y)
    z = (v > theta).double()
    state[name] = v * (1 - z)
    return z


def grouped_graphs() -> dict[str, nir.NIRGraph]:
    """What Norse's importer cannot build (it sizes a convolution's input by weight.shape[1]):
    groups, non-square kernels, AvgPool2d with padding, Conv1d."""
    rng = np.random.default_rng(5)
    conv = nir.Conv2d((9, 8), rng.normal(0.2, 0.5, (6, 2, 3, 2)), (2, 1), (1, 0), (1, 2), 2, rng.normal(0, 0.1, 6))
    c_out = (6, 5, 6)  # (9 + 2 − 3)//2 + 1, (8 − 2·1 − 1)//1 + 1: NIR's own output type is wrong here
    pool = nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 2]), padding=np.array([1, 1]))
    p_out = (6, 6, 4)  # (5 + 2 − 2)//1 + 1, (6 + 2 − 2)//2 + 1
    conv2d = {
        "input": nir.Input(np.array([4, 9, 8])),
        "conv": conv,
        "h1": nir.LIF(
            tau=np.full(c_out, 2.0), r=np.full(c_out, 2.0), v_leak=np.zeros(c_out), v_threshold=np.full(c_out, 0.5)
        ),
        "pool": pool,
        "h2": if_node(p_out, 0.6),
        "flat": nir.Flatten(np.array(p_out), start_dim=0),
        "fc": nir.Linear(rng.normal(0.0, 0.3, (5, int(np.prod(p_out))))),
        "h3": if_node((5,), 0.5),
        "output": nir.Output(np.array([5])),
    }
    conv1d = nir.Conv1d(15, rng.normal(0.1, 0.4, (4, 3, 3)), 2, 2, 2, 1, rng.normal(0, 0.1, 4))
    conv1d_graph = {
        "input": nir.Input(np.array([3, 15])),
        "conv": conv1d,
        "h1": if_node((4, 8), 0.4),  # (15 + 4 − 4 − 1)//2 + 1
        "conv_b": nir.Conv1d(8, rng.normal(0.15, 0.4, (2, 4, 2)), 1, "same", 1, 1, np.zeros(2)),
        "h2": if_node((2, 8), 0.4),
        "output": nir.Output(np.array([2, 8])),
    }
    return {"conv2d": sequential(conv2d), "conv1d": sequential(conv1d_graph)}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")
@pytest.mark.parametrize("case", list(grouped_graphs()))
def test_import_matches_torch_convolutions_step_for_step(case: str) -> None:
    graph = grouped_graphs()[case]
    dt = 0.5
    g = from_nir(graph, dt=dt, decay="euler", input_scale="dt/tau")
    shape = tuple(int(n) for n in graph.nodes["input"].input_type["input"])
    x = (torch.rand(30, 2, *shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64) < 0.3).double()
    want = step_nir_chain(graph, x, dt)
    out = run(g, x)
    for name, spikes in want.items():
        assert spikes.sum() > 0, name
        assert torch.equal(out.spikes(name), spikes), name
    assert g.nx.edges["input", "h1"]["kind"] == "conv"


# ----------------------------------------------------------------------------------------
# snngraph → NIR → snngraph


def conv_graph(seed: int, tap_delays: bool = False) -> snngraph.Graph:
    """Stride, padding, dilation, groups, a non-square kernel, 'same', sum and average poolings,
    a Conv1d branch and a flat readout."""
    rng = np.random.default_rng(seed)
    g = snngraph.Graph()
    g.add_input("x", (3, 9, 7))
    g.add_lif("c1", alpha=rng.uniform(0.6, 0.95, 1).item(), theta=0.5, reset="zero", bias=0.05)
    kernel = rng.normal(0.2, 0.5, (4, 3, 3, 2))
    delay = rng.integers(0, 3, kernel.shape) if tap_delays else 1
    g.connect_conv("x", "c1", kernel=kernel, stride=(2, 1), padding=(1, 0), dilation=(1, 2), delay=delay)
    g.add_lif("p1", alpha=1.0, theta=0.5, reset="zero")
    g.connect_pool("c1", "p1", kind="avg", kernel_size=2, stride=1, delay=0)
    g.add_lif("c2", alpha=0.8, theta=0.5, reset="zero")
    g.connect_conv("p1", "c2", kernel=rng.normal(0.3, 0.5, (6, 2, 2, 2)), groups=2, padding="same", delay=2)
    g.add_lif("p2", alpha=0.7, theta=0.4, reset="zero")
    g.connect_pool("c2", "p2", kind="sum", kernel_size=(2, 3), stride=(2, 1), padding=(1, 1), delay=1)
    g.add_input("s", (2, 16))
    g.add_lif("q", alpha=0.9, theta=0.4, reset="zero")
    g.connect_conv("s", "q", kernel=rng.normal(0.3, 0.5, (3, 2, 3)), stride=2, padding=2, dilation=2, delay=0)
    g.add_li("out", 5, alpha=0.7)
    g.connect("p2", "out", weight=rng.normal(size=(5, g.population_size("p2"))), delay=1)
    g.connect("q", "out", weight=rng.normal(size=(5, g.population_size("q"))), delay=0)
    return g


def conv_input(g: snngraph.Graph, steps: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        name: (torch.rand(steps, 2, g.population_size(name), generator=gen, dtype=torch.float64) < 0.3).double()
        for name, d in g.nx.nodes(data=True)
        if d["kind"] == "input"
    }


DISCRETISATIONS = [("exp", "1-alpha", "absorb"), ("euler", "dt/tau", "unit")]


@pytest.mark.parametrize(("decay", "input_scale", "resistance"), DISCRETISATIONS)
def test_round_trip_keeps_conv_and_pool_edges(decay: str, input_scale: str, resistance: str) -> None:
    g = conv_graph(0)
    options = {"dt": 0.1, "decay": decay, "input_scale": input_scale}
    exported = to_nir(g, resistance=resistance, **options)
    types = {type(node).__name__ for node in exported.nodes.values()}
    assert {"Conv2d", "Conv1d", "AvgPool2d", "SumPool2d", "Flatten"} <= types
    assert g.population_shape("c2") == (6, 4, 4)  # c1 (4, 5, 5), p1 (4, 4, 4), 'same'
    assert exported.nodes["c2"].v_threshold.shape == (6, 4, 4)  # shaped like the layer
    back = from_nir(exported, **options)
    populations, projections = read_graph(g)
    populations_back, projections_back = read_graph(back)
    assert {n: p.shape for n, p in populations.items()} == {n: p.shape for n, p in populations_back.items()}
    by_pair = {(p.pre, p.post): p for p in projections_back}
    for proj in projections:
        other = by_pair[proj.pre, proj.post]
        assert (other.kind, other.conv) == (proj.kind, proj.conv), (proj.pre, proj.post)
        np.testing.assert_allclose(other.values, proj.values, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(other.delay, proj.delay)
    x = conv_input(g, 30, 3)
    first, second = run(g, x), run(back, x)
    for name in ("c1", "p1", "c2", "p2", "q"):
        assert first.spikes(name).sum() > 0, name
        assert torch.equal(first.spikes(name), second.spikes(name)), name
    torch.testing.assert_close(first.membrane("out"), second.membrane("out"), rtol=1e-9, atol=1e-9)


def test_round_trip_of_per_tap_delays_and_of_a_trained_model() -> None:
    """Per-tap delays export as one Conv2d per delay (the kernel masked) and come back as one
    sparse edge with the same synapses; a trained model exports its trained kernel."""
    g = conv_graph(1, tap_delays=True)
    exported = to_nir(g, dt=0.1)
    assert sum(isinstance(n, nir.Conv2d) for n in exported.nodes.values()) == 3 + 1  # x → c1 per delay, p1 → c2
    back = from_nir(exported, dt=0.1)
    assert back.nx.edges["x", "c1"].get("kind") is None
    x = conv_input(g, 30, 4)
    first, second = run(g, x), run(back, x)
    assert first.spikes("c1").sum() > 0
    for name in ("c1", "p1", "c2", "p2"):
        assert torch.equal(first.spikes(name), second.spikes(name)), name

    model = snngraph.SNN(snngraph.compile(conv_graph(2)))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1.5)
    trained = model.to_graph()
    kernel = trained.nx.edges["p1", "c2"]["weight"]
    assert not np.allclose(kernel, conv_graph(2).nx.edges["p1", "c2"]["weight"])
    exported = to_nir(model, dt=0.1)
    np.testing.assert_allclose(exported.nodes["p1_to_c2"].weight, kernel, rtol=1e-6)


def test_round_trip_through_a_file(tmp_path) -> None:
    g = conv_graph(3)
    to_nir(g, dt=0.1, path=tmp_path / "conv.nir")
    back = from_nir(tmp_path / "conv.nir", dt=0.1)
    assert back.nx.edges["c2", "p2"]["kind"] == "pool"
    x = conv_input(g, 20, 5)
    assert torch.equal(run(g, x).spikes("p2"), run(back, x).spikes("p2"))


# ----------------------------------------------------------------------------------------
# Composed chains


def test_chains_through_poolings_compose_into_one_edge() -> None:
    """SumPool2d → Conv2d and AvgPool2d → Flatten → Affine between populations: one tied edge each
    that trains the kernel or matrix, with the weights of the composed map; a single pooling stays
    a (fixed) pool edge."""
    rng = np.random.default_rng(6)
    kernel, w = rng.normal(size=(3, 2, 2, 2)), rng.normal(size=(4, 3 * 2 * 2))
    nodes = {
        "x": nir.Input(np.array([2, 8, 8])),
        "pool": sum_pool(2),
        "conv": nir.Conv2d((4, 4), kernel, 1, 0, 1, 1, np.zeros(3)),
        "h": if_node((3, 3, 3), 1.0),
        "avg": nir.AvgPool2d(np.array([2, 2]), np.array([1, 1]), np.array([0, 0])),
        "flat": nir.Flatten(np.array([3, 2, 2]), start_dim=0),
        "fc": nir.Affine(w, np.zeros(4)),
        "k": if_node((4,), 1.0),
        "pool_only": sum_pool(2),
        "j": if_node((2, 4, 4), 1.0),
        "pool_out": sum_pool(2),  # an Output of a pooling is a shaped readout, after a Flatten a flat one
        "shaped_out": nir.Output(np.array([2, 2, 2])),
        "flat_out": nir.Flatten(np.array([2, 2, 2]), start_dim=0),
        "vector_out": nir.Output(np.array([8])),
    }
    edges = [("x", "pool"), ("pool", "conv"), ("conv", "h"), ("h", "avg"), ("avg", "flat"), ("flat", "fc")]
    edges += [("fc", "k"), ("x", "pool_only"), ("pool_only", "j"), ("j", "pool_out"), ("pool_out", "shaped_out")]
    edges += [("pool_out", "flat_out"), ("flat_out", "vector_out")]
    g = from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), dt=1.0, input_scale="r")
    x = torch.rand(2, 8, 8, dtype=torch.float64)
    composed = F.conv2d(F.avg_pool2d(x[None], 2) * 4, torch.from_numpy(kernel))[0].reshape(-1)
    h = torch.rand(3, 3, 3, dtype=torch.float64)
    readout = torch.from_numpy(w) @ F.avg_pool2d(h[None], 2, 1)[0].reshape(-1)

    projections = {(p.pre, p.post): p for p in read_graph(g)[1]}

    def matrix(pre: str, post: str) -> np.ndarray:
        proj = projections[pre, post]
        result = np.zeros(proj.shape)
        np.add.at(result, (proj.post_index, proj.pre_index), proj.weight)
        return result

    np.testing.assert_allclose(matrix("x", "h") @ x.reshape(-1).numpy(), composed.numpy(), rtol=1e-12)
    np.testing.assert_allclose(matrix("h", "k") @ h.reshape(-1).numpy(), readout.numpy(), rtol=1e-12)
    # one tied edge each: the parameter is the kernel or the Affine's matrix itself
    assert projections["x", "h"].kind == projections["h", "k"].kind == "shared"
    np.testing.assert_array_equal(projections["x", "h"].values, kernel)
    np.testing.assert_array_equal(projections["h", "k"].values, w)
    assert g.nx.edges["x", "j"]["kind"] == "pool"  # a single pooling stays a pool edge
    assert (g.population_shape("shaped_out"), g.population_shape("vector_out")) == ((2, 2, 2), None)
    trainable = {(p.pre, p.post): p.trainable for p in read_graph(g)[1]}
    assert {pair: trainable[pair] for pair in [("x", "h"), ("h", "k"), ("x", "j")]} == {
        ("x", "h"): True,
        ("h", "k"): True,
        ("x", "j"): False,
    }


def test_conv_bias_becomes_the_post_population_bias() -> None:
    rng = np.random.default_rng(7)
    bias = np.array([0.3, -0.2])
    r = np.full((2, 3, 3), 2.0)
    neuron = nir.LIF(tau=np.full((2, 3, 3), 4.0), r=r, v_leak=np.zeros((2, 3, 3)), v_threshold=np.ones((2, 3, 3)))
    nodes = {
        "x": nir.Input(np.array([1, 5, 5])),
        "c": nir.Conv2d((5, 5), rng.normal(size=(2, 1, 3, 3)), 1, 0, 1, 1, bias),
    }
    g = from_nir(sequential({**nodes, "h": neuron}), dt=1.0, decay="euler", input_scale="dt/tau")
    gain = 2.0 * 1.0 / 4.0  # κ = R·dt/τ
    np.testing.assert_allclose(g.nx.nodes["h"]["bias"], gain * np.repeat(bias, 9))
    np.testing.assert_allclose(g.nx.edges["x", "h"]["weight"], gain * nodes["c"].weight)


# ----------------------------------------------------------------------------------------
# Errors


def bad_imports() -> dict[str, tuple[nir.NIRGraph, str]]:
    x = nir.Input(np.array([1, 6, 6]))
    h = if_node((1, 3, 3), 1.0)
    conv = nir.Conv2d((6, 6), np.ones((1, 1, 2, 2)), 2, 0, 1, 1, np.zeros(1))
    same_strided = nir.Conv2d(None, np.ones((1, 1, 3, 3)), 2, "same", 1, 1, np.zeros(1))
    flat_x = nir.Input(np.array([36]))
    too_big = nir.Conv2d((2, 2), np.ones((1, 1, 3, 3)), 1, 0, 1, 1, np.zeros(1))
    bad_bias = nir.Conv2d((6, 6), np.ones((1, 1, 2, 2)), 2, 0, 1, 1, np.zeros(3))
    pool = sum_pool(2)
    return {
        "'same' with stride 2": (
            sequential({"x": x, "c": same_strided, "h": if_node((1, 6, 6), 1.0)}),
            r"edge 'c' \(nir.Conv2d\): padding='same' needs stride 1",
        ),
        "pooling a flat input": (
            sequential({"x": flat_x, "p": pool, "h": if_node((9,), 1.0)}),
            r"node 'p': a nir.SumPool2d needs its input's shape \(C, H, W\)",
        ),
        "kernel larger than the input": (
            sequential({"x": nir.Input(np.array([1, 2, 2])), "c": too_big, "h": if_node((1, 1, 1), 1.0)}),
            r"edge 'c' \(nir.Conv2d\): the kernel \(3, 3\) \(dilation \(1, 1\)\) does not fit the padded input",
        ),
        "bias per channel": (
            sequential({"x": x, "c": bad_bias, "h": h}),
            r"node 'c': bias must hold 1 values \(one per output channel\)",
        ),
        "post of another shape": (
            sequential({"x": x, "c": conv, "h": if_node((1, 2, 2), 1.0)}),
            r"edge c -> h: 'c' gives 9 values but 'h' takes 4",
        ),
    }


@pytest.mark.parametrize("case", list(bad_imports()))
def test_bad_conv_imports_name_the_node_and_the_fix(case: str) -> None:
    graph, message = bad_imports()[case]
    with pytest.raises(ValueError, match=message):
        from_nir(graph, dt=1.0)


def test_export_errors_name_the_edge_and_the_fix() -> None:
    g = snngraph.Graph()
    g.add_input("x", (1, 6, 6))
    g.add_lif("h", alpha=0.9, reset="zero")
    g.connect_conv("x", "h", kernel=np.ones((1, 1, 3, 3)), stride=2, padding=((1, 0), (0, 1)))
    with pytest.raises(ValueError, match=r"edge 'x' -> 'h': padding \(\(1, 0\), \(0, 1\)\) differs before and after"):
        to_nir(g, dt=1.0)


def test_same_padding_that_differs_before_and_after_exports_as_same() -> None:
    g = snngraph.Graph()
    g.add_input("x", (1, 6, 6))
    g.add_lif("h", alpha=0.9, theta=0.3, reset="zero")
    g.connect_conv("x", "h", kernel=np.random.default_rng(8).normal(size=(2, 1, 2, 4)), padding="same", delay=0)
    exported = to_nir(g, dt=1.0)
    assert exported.nodes["x_to_h"].padding == "same"
    back = from_nir(exported, dt=1.0)
    assert back.nx.edges["x", "h"]["padding"] == ((0, 1), (1, 2))


# ----------------------------------------------------------------------------------------
# snnTorch: its export of a spiking CNN, and its importer reading ours


class SnnTorchCNN(torch.nn.Module):
    """Conv2d → Leaky → AvgPool2d → Conv2d → Leaky → Flatten → Linear → Leaky, per-neuron β and
    thresholds shaped like the layers, reset to zero."""

    def __init__(self) -> None:
        snn = pytest.importorskip("snntorch")
        super().__init__()

        def leaky(shape: tuple[int, ...], threshold: float) -> torch.nn.Module:
            beta, theta = torch.rand(shape) * 0.5 + 0.4, torch.full(shape, threshold)
            return snn.Leaky(beta=beta, threshold=theta, reset_mechanism="zero")

        self.conv1 = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.lif1 = leaky((4, 10, 10), 0.5)
        self.pool1 = torch.nn.AvgPool2d(2)
        self.conv2 = torch.nn.Conv2d(4, 6, 3, padding=1)
        self.lif2 = leaky((6, 5, 5), 0.3)
        self.flat = torch.nn.Flatten()
        self.fc = torch.nn.Linear(150, 5)
        self.lif3 = leaky((5,), 0.3)

    def forward(self, x: torch.Tensor, mem: list | None = None) -> tuple:
        mem = mem or [None, None, None]
        s1, m1 = self.lif1(self.conv1(x), mem[0])
        s2, m2 = self.lif2(self.conv2(self.pool1(s1)), mem[1])
        s3, m3 = self.lif3(self.fc(self.flat(s2)), mem[2])
        return s1, s2, s3, m1, m2, m3


def test_snntorch_scnn_export_imports_step_for_step() -> None:
    export_to_nir = pytest.importorskip("snntorch.export_nir").export_to_nir
    torch.manual_seed(0)
    net = SnnTorchCNN()
    graph = export_to_nir(net, torch.rand(1, 2, 10, 10), ignore_dims=[0])  # snnTorch writes dt = 1e-4
    assert isinstance(graph.nodes["conv1"], nir.Conv2d)
    assert isinstance(graph.nodes["pool1"], nir.AvgPool2d)
    g = from_nir(graph, dt=1e-4, decay="euler")
    assert g.population_shape("lif2") == (6, 5, 5)
    # snnTorch writes τ and R in float32, so κ = R·dt/τ is 1 only to 1e-7 per neuron: the kernel is
    # a tied parameter with κ as each synapse's factor
    conv1 = next(p for p in read_graph(g)[1] if (p.pre, p.post) == ("input", "lif1"))
    assert conv1.kind == "shared"
    np.testing.assert_array_equal(conv1.values, graph.nodes["conv1"].weight)
    steps, batch = 30, 3
    x = (torch.rand(steps, batch, 2, 10, 10) < 0.3).float()
    mem = [torch.zeros(batch, 4, 10, 10), torch.zeros(batch, 6, 5, 5), torch.zeros(batch, 5)]
    record = []
    with torch.no_grad():
        for t in range(steps):
            s1, s2, s3, *mem = net(x[t], mem)
            spikes = (s1, s2, s3)
            pairs = zip(spikes, mem, strict=True)
            record.append([(s.reshape(batch, -1).double(), m.reshape(batch, -1).double()) for s, m in pairs])
    out = run(g, x.double())
    for i, name in enumerate(("lif1", "lif2", "lif3")):
        spikes = torch.stack([r[i][0] for r in record])
        assert 0.01 < spikes.mean() < 0.3, name
        assert torch.equal(out.spikes(name), spikes), name
        torch.testing.assert_close(out.membrane(name), torch.stack([r[i][1] for r in record]), rtol=0, atol=1e-5)


def test_snntorch_reads_the_conv_export() -> None:
    """snnTorch's import_from_nir builds Conv2d, AvgPool2d, Flatten and LIF (not SumPool2d; it reads
    nir.IF as a Leaky with β = 0.9), and maps Flatten(start_dim=0) as written: run it per sample."""
    pytest.importorskip("snntorch")
    import_from_nir = pytest.importorskip("snntorch.import_nir").import_from_nir
    utils = pytest.importorskip("snntorch.utils")
    rng = np.random.default_rng(0)
    g = snngraph.Graph()
    g.add_input("x", (2, 10, 10))
    bias = np.repeat(rng.normal(0.0, 0.05, 4), 100)
    g.add_lif("c1", (4, 10, 10), alpha=rng.uniform(0.5, 0.9, 400), theta=0.5, reset="zero", bias=bias)
    g.connect_conv("x", "c1", kernel=rng.normal(0.0, 0.4, (4, 2, 3, 3)), padding=1, delay=0)
    g.add_lif("p1", (4, 5, 5), alpha=0.8, theta=0.3, reset="zero")
    g.connect_pool("c1", "p1", kind="avg", kernel_size=2, delay=0)
    g.add_lif("out", 5, alpha=0.8, theta=0.3, reset="zero")
    g.connect("p1", "out", weight=rng.normal(0.0, 0.3, (5, 100)), delay=0)
    exported = to_nir(g, dt=1e-4, decay="euler", input_scale="dt/tau")
    assert exported.nodes["x_to_c1"].bias.shape == (4,)
    net = import_from_nir(exported)
    steps, batch = 30, 3
    x = (torch.rand(steps, batch, 2, 10, 10, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    per_sample = []
    with torch.no_grad():
        for b in range(batch):
            utils.reset(net)
            outputs = [net(x[t, b]) for t in range(steps)]
            per_sample.append(torch.stack([y[0] if isinstance(y, tuple) else y for y in outputs]))
    want = torch.stack(per_sample, 1).double()
    out = run(g, x.double())
    assert 0.01 < out.spikes("c1").mean() < 0.5
    assert 0.01 < want.mean() < 0.5
    assert torch.equal(out.spikes("out"), want)


def test_the_tied_kernel_of_a_composed_chain_trains_as_one_parameter() -> None:
    """After a gradient step the SumPool2d → Conv2d edge still reads one kernel of conv2's shape
    (each synapse its tap times its fixed factor), and that kernel has changed."""
    graph = sinabs_scnn(3, 1, 1, 1)
    g = from_nir(graph, dt=1e-3, input_scale="r")
    model = snngraph.SNN(snngraph.compile(g))
    x = (torch.rand(15, 2, 2, H, H, generator=torch.Generator().manual_seed(5)) < 0.3).float()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    out = model(x)
    (out.spikes("if3").sum() + out.membrane("if2").square().mean()).backward()
    optimizer.step()
    proj = {(p.pre, p.post): p for p in read_graph(model.to_graph())[1]}["if1", "if2"]
    old = {(p.pre, p.post): p for p in read_graph(g)[1]}["if1", "if2"]
    assert proj.kind == "shared"
    assert proj.values.shape == graph.nodes["conv2"].weight.shape
    assert not np.allclose(proj.values, old.values)
    np.testing.assert_array_equal(proj.index, old.index)
    np.testing.assert_allclose(proj.weight, old.scale * proj.values.reshape(-1)[old.index], rtol=1e-6)


def test_a_1d_pooling_exports_as_a_depthwise_conv1d() -> None:
    g = snngraph.Graph()
    g.add_input("x", (3, 12))
    g.add_lif("h", alpha=0.8, theta=0.3, reset="zero")
    g.connect_pool("x", "h", kind="avg", kernel_size=3, stride=2, padding=1, delay=1)
    exported = to_nir(g, dt=0.5)
    conv = exported.nodes["x_to_h"]
    assert isinstance(conv, nir.Conv1d)
    assert conv.groups == 3
    np.testing.assert_allclose(conv.weight, np.full((3, 1, 3), 1 / 3))
    back = from_nir(exported, dt=0.5)
    assert back.nx.edges["x", "h"]["kind"] == "conv"  # NIR has no 1-D pooling: a trainable conv now
    x = conv_input(g, 30, 6)
    assert run(g, x).spikes("h").sum() > 0
    assert torch.equal(run(g, x).spikes("h"), run(back, x).spikes("h"))


def test_a_conv_into_a_flat_population_exports_through_a_flatten() -> None:
    rng = np.random.default_rng(9)
    g = snngraph.Graph()
    g.add_input("x", (2, 6, 6))
    g.add_lif("h", 3 * 4 * 4, alpha=0.8, theta=0.3, reset="zero")  # flat, of the conv's output size
    g.connect_conv("x", "h", kernel=rng.normal(0.2, 0.5, (3, 2, 3, 3)), delay=0)
    exported = to_nir(g, dt=0.5)
    assert isinstance(exported.nodes["x_to_h_flat"], nir.Flatten)
    back = from_nir(exported, dt=0.5)
    assert back.nx.edges["x", "h"]["kind"] == "conv"
    assert back.population_shape("h") is None
    x = conv_input(g, 20, 7)
    assert run(g, x).spikes("h").sum() > 0
    assert torch.equal(run(g, x).spikes("h"), run(back, x).spikes("h"))
