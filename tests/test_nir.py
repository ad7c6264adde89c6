"""NIR import/export: round trips, an independent NIR oracle, snnTorch and Norse, bad files.

The peers are test-only extras (``pip install snntorch norse`` — see docs/nir.md); their tests
skip when they are not installed.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable

import numpy as np
import pytest
import torch

import snngraph
from snngraph.nir import NIRExportWarning, from_nir, to_nir

nir = pytest.importorskip("nir")

pytestmark = [
    # Norse 1.1 decorates functions with torch.jit.script at import time.
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    # snnTorch 1.0 and Norse 1.1 export and import through nirtorch's older entry points.
    pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph is being deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:nirtorch.load is being deprecated:DeprecationWarning"),
]

DISCRETISATIONS = [  # (decay, input_scale, resistance)
    ("exp", "1-alpha", "absorb"),
    ("euler", "dt/tau", "unit"),
    ("exp", "dt/tau", "unit"),
    ("euler", "r", "absorb"),
]


def float64_model(graph: snngraph.Graph, backend: str = "reference", **compile_options: object) -> snngraph.SNN:
    """The model with float64 parameters from the start (``SNN(...).double()`` would round them
    through float32 first)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return snngraph.SNN(snngraph.compile(graph, **compile_options), backend=backend)
    finally:
        torch.set_default_dtype(default)


def run(
    graph: snngraph.Graph, x: torch.Tensor | dict, backend: str = "reference", **options: object
) -> snngraph.SNNOutput:
    return float64_model(graph, backend, **options)(x)


# The backends that run neurons with several state variables (triton: tests/triton_states_cases.py).
multi_state_backends = pytest.mark.parametrize("backend", ["reference", "cpu"])


def neurons(graph: snngraph.Graph) -> dict:
    return {n: d["kind"] for n, d in graph.nx.nodes(data=True) if d["kind"] != "input"}


def assert_same_run(first: snngraph.SNNOutput, second: snngraph.SNNOutput, graph: snngraph.Graph) -> int:
    """Equal spikes and membranes for every neuron population; returns the spike count."""
    count = 0
    for name, kind in neurons(graph).items():
        if kind == "lif":
            assert torch.equal(first.spikes(name), second.spikes(name)), name
            count += int(first.spikes(name).sum())
        torch.testing.assert_close(first.membrane(name), second.membrane(name), rtol=1e-9, atol=1e-9)
    return count


def random_graph(seed: int) -> snngraph.Graph:
    """A random graph inside NIR's expressiveness: reset "zero" (or α = 0 thresholds), delays
    per synapse and per edge, zero-delay hops, recurrent cycles, leaky/plain readouts."""
    rng = np.random.default_rng(seed)
    g = snngraph.Graph()
    inputs = [f"x{i}" for i in range(rng.integers(1, 3))]
    for name in inputs:
        g.add_input(name, int(rng.integers(2, 5)))
    hidden = [f"h{i}" for i in range(rng.integers(2, 4))]
    for i, name in enumerate(hidden):
        size = int(rng.integers(2, 6))
        alpha = rng.uniform(0.3, 0.97, size)
        reset = "zero"
        if i == 1 and seed % 3 == 1:
            alpha = np.ones(size)  # exports as nir.IF
        if i == 1 and seed % 3 == 2:
            alpha, reset = np.zeros(size), "none"  # exports as nir.Threshold
        g.add_lif(name, size, alpha=alpha, theta=rng.uniform(0.2, 0.6, size), reset=reset)
    g.add_li("r0", 2, alpha=rng.uniform(0.5, 0.95, 2))
    g.add_li("r1", 3, alpha=0.0)  # exports as an Output holding the weighted sum
    g.add_li("r2", 1, alpha=1.0)  # exports as nir.I

    def weight(post: str, pre: str, density: float) -> object:
        w = snngraph.random_weight(
            g.population_size(post), g.population_size(pre), density, seed=int(rng.integers(1 << 30))
        )
        w.data = w.data * 2.0 + 0.4
        return w

    for name in hidden:
        pre = inputs[int(rng.integers(len(inputs)))]
        w = weight(name, pre, 0.8)
        g.connect(pre, name, weight=w, delay=snngraph.random_delays(w, 0, 2, seed=int(rng.integers(1 << 30))))
    for i, pre in enumerate(hidden):
        for j, post in enumerate(hidden):
            if rng.random() < 0.6:
                low = 0 if j > i else 1  # zero-delay hops only forward: no zero-delay cycle
                w = weight(post, pre, 0.7)
                if rng.random() < 0.5:
                    g.connect(pre, post, weight=w.toarray() * 0.5, delay=int(rng.integers(low, 4)))
                else:
                    delay = snngraph.random_delays(w, low, 3, seed=int(rng.integers(1 << 30)))
                    g.connect(pre, post, weight=w, delay=delay)
    for readout in ("r0", "r1", "r2"):
        pre = hidden[int(rng.integers(len(hidden)))]
        g.connect(pre, readout, weight=weight(readout, pre, 1.0).toarray(), delay=int(rng.integers(0, 3)))
    return g


def spike_input(graph: snngraph.Graph, steps: int, batch: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        name: (torch.rand(steps, batch, d["size"], generator=gen, dtype=torch.float64) < 0.4).double()
        for name, d in graph.nx.nodes(data=True)
        if d["kind"] == "input"
    }


# ----------------------------------------------------------------------------------------
# snngraph → NIR → snngraph


@pytest.mark.parametrize(("decay", "input_scale", "resistance"), DISCRETISATIONS)
@pytest.mark.parametrize("seed", range(6))
def test_round_trip_random_graphs(seed: int, decay: str, input_scale: str, resistance: str) -> None:
    g = random_graph(seed)
    options = {"dt": 0.25, "decay": decay, "input_scale": input_scale}
    back = from_nir(to_nir(g, resistance=resistance, **options), **options)
    assert neurons(back) == neurons(g)
    x = spike_input(g, 40, 3, seed)
    assert assert_same_run(run(g, x), run(back, x), g) > 0


def test_round_trip_through_a_file(tmp_path) -> None:
    g = random_graph(4)
    path = tmp_path / "net.nir"
    to_nir(g, dt=1e-3, path=path)
    x = spike_input(g, 30, 2, 0)
    assert assert_same_run(run(g, x), run(from_nir(path, dt=1e-3), x), g) > 0
    nir.write(tmp_path / "again.nir", to_nir(g, dt=1e-3))
    assert_same_run(run(g, x), run(from_nir(nir.read(tmp_path / "again.nir"), dt=1e-3), x), g)


def test_export_of_a_trained_model_keeps_its_weights() -> None:
    g = random_graph(2)
    model = float64_model(g)
    with torch.no_grad():
        for edge in model.net.edges:
            weight = model.weight(edge.pre, edge.post)
            weight.mul_(1.3) if edge.target == "input" else weight.add_(0.05)
    back = from_nir(to_nir(model, dt=0.5), dt=0.5)
    x = spike_input(g, 30, 2, 1)
    assert assert_same_run(model(x), run(back, x), g) > 0


def test_per_synapse_delays_export_as_one_linear_and_delay_per_value() -> None:
    rng = np.random.default_rng(0)
    weight, delay = rng.normal(size=(3, 4)), rng.integers(0, 3, size=(3, 4))
    delay[0, :3] = [0, 1, 2]
    g = snngraph.Graph()
    g.add_input("x", 4)
    g.add_lif("h", 3, alpha=0.9, reset="zero")
    g.connect("x", "h", weight=weight, delay=delay)
    graph = to_nir(g, dt=0.1)
    linears = {n: v for n, v in graph.nodes.items() if isinstance(v, nir.Linear)}
    delays = {n: v for n, v in graph.nodes.items() if isinstance(v, nir.Delay)}
    assert sorted(linears) == ["x_to_h_d0", "x_to_h_d1", "x_to_h_d2"]
    np.testing.assert_allclose(sum(node.weight for node in linears.values()), weight)
    for d in (0, 1, 2):
        np.testing.assert_array_equal(linears[f"x_to_h_d{d}"].weight, np.where(delay == d, weight, 0))
    for d in (1, 2):
        np.testing.assert_allclose(delays[f"x_to_h_d{d}_delay"].delay, np.full(3, d * 0.1))
        assert (f"x_to_h_d{d}", f"x_to_h_d{d}_delay") in graph.edges
    assert ("x_to_h_d0", "h") in graph.edges


def test_export_parameters_follow_the_discretisation() -> None:
    alpha = np.array([0.5, 0.8, 0.95])
    g = snngraph.Graph()
    g.add_input("x", 2)
    g.add_lif("h", 3, alpha=alpha, theta=[0.3, 0.4, 0.5], reset="zero")
    g.add_li("out", 3, alpha=1.0)
    g.connect("x", "h", weight=np.arange(6.0).reshape(3, 2), delay=0)
    g.connect("h", "out", weight=np.eye(3), delay=0)
    exp = to_nir(g, dt=0.2, resistance="unit")
    np.testing.assert_allclose(exp.nodes["h"].tau, -0.2 / np.log(alpha))
    np.testing.assert_allclose(exp.nodes["h"].v_threshold, [0.3, 0.4, 0.5])
    np.testing.assert_allclose(exp.nodes["h"].r, 1.0)
    np.testing.assert_allclose(exp.nodes["x_to_h"].weight, np.arange(6.0).reshape(3, 2) / (1 - alpha)[:, None])
    assert isinstance(exp.nodes["out"], nir.I)
    np.testing.assert_allclose(exp.nodes["h_to_out"].weight, np.eye(3) / 0.2)
    euler = to_nir(g, dt=0.2, decay="euler", input_scale="dt/tau")  # snnTorch's convention
    np.testing.assert_allclose(euler.nodes["h"].tau, 0.2 / (1 - alpha))
    np.testing.assert_allclose(euler.nodes["h"].r, euler.nodes["h"].tau / 0.2)
    np.testing.assert_array_equal(euler.nodes["x_to_h"].weight, np.arange(6.0).reshape(3, 2))
    assert "out_output" in euler.nodes  # outputs: the populations without edges out
    assert "h_output" not in euler.nodes


@pytest.mark.parametrize("reset", ["subtract", "none"])
def test_export_of_a_reset_nir_cannot_say_warns_or_fails(reset: str) -> None:
    g = snngraph.Graph()
    g.add_input("x", 3)
    g.add_lif("h", 4, alpha=0.8, theta=0.3, reset=reset)
    g.connect("x", "h", delay=0, seed=0)
    with pytest.raises(ValueError, match=f"population 'h' uses reset '{reset}'.*strict=True"):
        to_nir(g, dt=1.0, strict=True)
    with pytest.warns(NIRExportWarning, match=f"population 'h' uses reset '{reset}'.*reset-to-0 instead") as record:
        graph = to_nir(g, dt=1.0)
    assert record[0].filename == __file__  # the warning points at the call of to_nir
    zero = snngraph.Graph.from_networkx(g.nx)
    zero.nx.nodes["h"]["reset"] = "zero"
    x = spike_input(g, 30, 2, 0)
    assert assert_same_run(run(zero, x), run(from_nir(graph, dt=1.0), x), zero) > 0


def threshold_graph(reset: str) -> snngraph.Graph:
    g = snngraph.Graph()
    g.add_input("x", 3)
    g.add_lif("h", 4, alpha=0.0, theta=0.3, reset=reset)
    g.connect("x", "h", delay=0, seed=0)
    return g


@pytest.mark.parametrize("reset", ["zero", "none"])
def test_export_of_alpha_zero_is_an_exact_threshold(reset: str) -> None:
    g = threshold_graph(reset)  # U[t] = I[t] with either reset
    graph = to_nir(g, dt=1.0, strict=True)
    assert isinstance(graph.nodes["h"], nir.Threshold)
    x = spike_input(g, 30, 2, 0)
    assert assert_same_run(run(g, x), run(from_nir(graph, dt=1.0), x), g) > 0


def test_export_of_alpha_zero_with_subtract_warns_that_the_threshold_drops_the_subtraction() -> None:
    g = threshold_graph("subtract")  # U[t] = I[t] - θ·S[t-1], which a stateless nir.Threshold cannot hold
    with pytest.raises(ValueError, match=r"population 'h' has alpha = 0 and reset 'subtract'.*strict=True refuses"):
        to_nir(g, dt=1.0, strict=True)
    with pytest.warns(
        NIRExportWarning, match=r"exported a nir\.Threshold instead, S\[t\] = H\(I\[t\] - theta\) without"
    ):
        graph = to_nir(g, dt=1.0)
    assert isinstance(graph.nodes["h"], nir.Threshold)
    x = spike_input(g, 30, 2, 0)
    back = run(from_nir(graph, dt=1.0), x)
    assert assert_same_run(run(threshold_graph("zero"), x), back, g) > 0  # what the warning says was written
    assert not torch.equal(run(g, x).spikes("h"), back.spikes("h"))  # and not the subtracting population


def test_export_errors() -> None:
    g = snngraph.Graph()
    g.add_input("x", 2)
    g.add_lif("h", 2, alpha=[0.0, 0.5], reset="zero")
    g.connect("x", "h", delay=0, seed=0)
    with pytest.raises(ValueError, match=r"population 'h': .* needs 0 < alpha < 1 .* got alpha in \[0, 0.5\]"):
        to_nir(g, dt=1.0)
    with pytest.raises(ValueError, match="unknown resistance 'ohm'; choose one of"):
        to_nir(g, dt=1.0, resistance="ohm")
    with pytest.raises(ValueError, match="unknown decay 'linear'; choose one of"):
        to_nir(g, dt=1.0, decay="linear")
    with pytest.raises(ValueError, match="dt must be a positive number"):
        to_nir(g, dt=0.0, decay="euler")
    with pytest.raises(ValueError, match=r"output 'o': 'x' is not a neuron population"):
        to_nir(g, dt=1.0, decay="euler", outputs={"o": "x"})
    slash = snngraph.Graph()
    slash.add_input("a/b", 1)
    slash.add_li("c", 1)
    slash.connect("a/b", "c", delay=0)
    with pytest.raises(ValueError, match=r"population 'a/b': NIR files are HDF5.*rename it"):
        to_nir(slash, dt=1.0)


# ----------------------------------------------------------------------------------------
# NIR → snngraph against an independent simulation of NIR's equations


def nir_zoo(rng: np.random.Generator, dt: float) -> tuple[nir.NIRGraph, dict[str, np.ndarray]]:
    """Every supported node: Affine → Delay and Linear chains summing into a LIF with a leak,
    Scale, a recurrent IF in a nested subgraph (no Delay in its cycle), Threshold, LI, I."""
    p = {
        "w1": rng.uniform(-0.5, 1.5, (4, 3)),
        "b1": rng.uniform(0.0, 0.3, 4),
        "steps": np.array([0, 1, 2, 2]),
        "w6": rng.uniform(-0.5, 1.0, (4, 3)),
        "tau_a": rng.uniform(1.5, 5.0, 4),
        "r_a": rng.uniform(0.5, 2.0, 4),
        "leak_a": rng.uniform(0.0, 0.3, 4),
        "th_a": rng.uniform(0.2, 0.6, 4),
        "scale": rng.uniform(0.5, 1.5, 4),
        "w2": rng.uniform(-0.3, 1.0, (3, 4)),
        "r_b": rng.uniform(0.5, 1.0, 3),
        "th_b": rng.uniform(0.3, 0.6, 3),
        "w_rec": rng.uniform(-0.5, 0.5, (3, 3)),
        "w3": rng.uniform(-0.5, 1.0, (2, 4)),
        "th_c": rng.uniform(0.1, 0.5, 2),
        "w4": rng.uniform(-1.0, 1.0, (2, 3)),
        "tau_d": rng.uniform(1.0, 4.0, 2),
        "r_d": rng.uniform(0.5, 2.0, 2),
        "leak_d": rng.uniform(-0.2, 0.2, 2),
        "w5": rng.uniform(-1.0, 1.0, (2, 2)),
        "r_e": rng.uniform(0.5, 2.0, 2),
    }
    recurrent = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type=np.array([3])),
            "if": nir.IF(r=p["r_b"], v_threshold=p["th_b"]),
            "w": nir.Linear(weight=p["w_rec"]),
            "out": nir.Output(output_type=np.array([3])),
        },
        edges=[("in", "if"), ("if", "w"), ("w", "if"), ("if", "out")],
        type_check=False,
    )
    nodes = {
        "x": nir.Input(input_type=np.array([3])),
        "aff": nir.Affine(weight=p["w1"], bias=p["b1"]),
        "dly": nir.Delay(delay=p["steps"] * dt),
        "lin6": nir.Linear(weight=p["w6"]),
        "a": nir.LIF(tau=p["tau_a"], r=p["r_a"], v_leak=p["leak_a"], v_threshold=p["th_a"]),
        "scale": nir.Scale(scale=p["scale"]),
        "lin2": nir.Linear(weight=p["w2"]),
        "rec": recurrent,
        "lin3": nir.Linear(weight=p["w3"]),
        "c": nir.Threshold(threshold=p["th_c"]),
        "lin4": nir.Linear(weight=p["w4"]),
        "d": nir.LI(tau=p["tau_d"], r=p["r_d"], v_leak=p["leak_d"]),
        "lin5": nir.Linear(weight=p["w5"]),
        "e": nir.I(r=p["r_e"]),
        "out_d": nir.Output(output_type=np.array([2])),
        "out_e": nir.Output(output_type=np.array([2])),
    }
    edges = [
        ("x", "aff"), ("aff", "dly"), ("dly", "a"), ("x", "lin6"), ("lin6", "a"),
        ("a", "scale"), ("scale", "lin2"), ("lin2", "rec.in"), ("rec", "lin4"),
        ("a", "lin3"), ("lin3", "c"), ("lin4", "d"), ("c", "lin5"), ("lin5", "e"),
        ("d", "out_d"), ("e", "out_e"),
    ]  # fmt: skip
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), p


def simulate_zoo(p: dict[str, np.ndarray], x: np.ndarray, dt: float, decay: str, input_scale: str) -> dict:
    """NIR's equations stepped directly: reset to 0 right after a spike, the cycle's feedback
    from the previous step, constant currents as written (no snngraph rules involved)."""

    def alpha(tau: np.ndarray) -> np.ndarray:
        return np.exp(-dt / tau) if decay == "exp" else 1 - dt / tau

    def kappa(tau: np.ndarray | None) -> np.ndarray | float:
        if input_scale == "r":
            return 1.0
        if tau is None:
            return dt
        return 1 - alpha(tau) if input_scale == "1-alpha" else dt / tau

    steps, batch = x.shape[:2]
    v_a, v_b, v_d, v_e = np.zeros((batch, 4)), np.zeros((batch, 3)), np.zeros((batch, 2)), np.zeros((batch, 2))
    s_b = np.zeros((batch, 3))
    record = {name: [] for name in ("a", "b", "c", "d", "e")}
    for t in range(steps):
        delayed = np.zeros((batch, 4))
        for i, k in enumerate(p["steps"]):
            if t >= k:
                delayed[:, i] = x[t - k] @ p["w1"][i] + p["b1"][i]
        current_a = delayed + x[t] @ p["w6"].T
        a_a = alpha(p["tau_a"])
        v_a = a_a * v_a + (1 - a_a) * p["leak_a"] + p["r_a"] * kappa(p["tau_a"]) * current_a
        s_a = (v_a > p["th_a"]).astype(float)
        record["a"].append(s_a)
        v_a = v_a * (1 - s_a)
        v_b = v_b + p["r_b"] * kappa(None) * ((s_a * p["scale"]) @ p["w2"].T + s_b @ p["w_rec"].T)
        s_b = (v_b > p["th_b"]).astype(float)
        record["b"].append(s_b)
        v_b = v_b * (1 - s_b)
        s_c = (s_a @ p["w3"].T > p["th_c"]).astype(float)
        record["c"].append(s_c)
        a_d = alpha(p["tau_d"])
        v_d = a_d * v_d + (1 - a_d) * p["leak_d"] + p["r_d"] * kappa(p["tau_d"]) * (s_b @ p["w4"].T)
        record["d"].append(v_d)
        v_e = v_e + p["r_e"] * kappa(None) * (s_c @ p["w5"].T)
        record["e"].append(v_e)
    return {name: np.stack(values) for name, values in record.items()}


@pytest.mark.parametrize(
    ("decay", "input_scale"), [(d, s) for d in ("exp", "euler") for s in ("1-alpha", "dt/tau", "r")]
)
def test_import_matches_nir_equations(decay: str, input_scale: str) -> None:
    dt = 0.5
    graph, p = nir_zoo(np.random.default_rng(7), dt)
    g = from_nir(graph, dt=dt, decay=decay, input_scale=input_scale, bias_input="one")
    assert g.nx.graph["nir_outputs"] == {"out_d": "d", "out_e": "e"}
    assert g.nx.edges["rec.if", "rec.if"]["delay"] == 1  # the cycle without Delay reads the last step
    rng = np.random.default_rng(8)
    x = (rng.random((40, 3, 3)) < 0.5).astype(float)
    out = run(g, {"x": torch.from_numpy(x), "one": torch.ones(40, 3, 1, dtype=torch.float64)})
    want = simulate_zoo(p, x, dt, decay, input_scale)
    for name, population in (("a", "a"), ("b", "rec.if"), ("c", "c")):
        assert want[name].sum() > 0, name
        np.testing.assert_array_equal(out.spikes(population).detach().numpy(), want[name], err_msg=name)
    np.testing.assert_allclose(out.membrane("d").detach().numpy(), want["d"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.membrane("e").detach().numpy(), want["e"], rtol=1e-10, atol=1e-12)


def lif(size: int, tau: float = 2.0, threshold: float = 0.5, **kwargs: object) -> nir.LIF:
    return nir.LIF(
        tau=np.full(size, tau),
        r=np.ones(size),
        v_leak=np.zeros(size),
        v_threshold=np.full(size, threshold),
        **kwargs,
    )


def cuba_li(shape: int | tuple, **kwargs: object) -> nir.CubaLI:
    params = {"tau_syn": np.full(shape, 2.0), "tau_mem": np.full(shape, 4.0), "r": np.ones(shape)}
    return nir.CubaLI(**{**params, "v_leak": np.zeros(shape), **kwargs})


def cuba_lif(shape: int | tuple, **kwargs: object) -> nir.CubaLIF:
    params = {"tau_syn": np.full(shape, 2.0), "tau_mem": np.full(shape, 4.0), "r": np.ones(shape)}
    return nir.CubaLIF(**{**params, "v_leak": np.zeros(shape), "v_threshold": np.full(shape, 0.5), **kwargs})


def altered(node: nir.NIRNode, **fields: object) -> nir.NIRNode:
    """``node`` with fields changed after its own checks ran (as a careless writer could leave it)."""
    for name, value in fields.items():
        setattr(node, name, value)
    return node


def chain(nodes: dict, edges: list) -> nir.NIRGraph:
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_import_folds_the_scales_into_the_weights() -> None:
    w = np.array([[1.0, -2.0], [0.5, 3.0]])
    tau, r, dt = np.array([2.0, 4.0]), np.array([1.5, 0.5]), 0.5
    neuron = nir.LIF(tau=tau, r=r, v_leak=np.zeros(2), v_threshold=np.array([0.3, 0.4]))
    graph = chain({"x": nir.Input(np.array([2])), "w": nir.Linear(weight=w), "h": neuron}, [("x", "w"), ("w", "h")])
    cases = {
        ("exp", "1-alpha"): (np.exp(-dt / tau), r * (1 - np.exp(-dt / tau))),
        ("exp", "dt/tau"): (np.exp(-dt / tau), r * dt / tau),
        ("euler", "dt/tau"): (1 - dt / tau, r * dt / tau),
        ("euler", "r"): (1 - dt / tau, r),
    }
    for (decay, scale), (alpha, kappa) in cases.items():
        g = from_nir(graph, dt=dt, decay=decay, input_scale=scale)
        np.testing.assert_allclose(g.nx.nodes["h"]["alpha"], alpha, rtol=1e-15)
        np.testing.assert_allclose(g.nx.nodes["h"]["theta"], [0.3, 0.4])
        assert g.nx.nodes["h"]["reset"] == "zero"
        np.testing.assert_allclose(g.nx.edges["x", "h"]["weight"], kappa[:, None] * w, rtol=1e-15)
        assert g.nx.edges["x", "h"]["delay"] == 0
    assert from_nir(graph, dt=dt, reset="subtract").nx.nodes["h"]["reset"] == "subtract"


def test_import_cycles_take_their_delay_from_delay_nodes_or_one_step() -> None:
    nodes = {
        "x": nir.Input(np.array([2])),
        "win": nir.Linear(weight=np.eye(2)),
        "a": lif(2),
        "ab": nir.Linear(weight=np.ones((3, 2))),
        "b": lif(3),
        "ba": nir.Linear(weight=np.ones((2, 3))),
        "aa": nir.Linear(weight=np.eye(2)),
        "aa_delay": nir.Delay(delay=np.full(2, 1.5)),
    }
    edges = [("x", "win"), ("win", "a"), ("a", "ab"), ("ab", "b"), ("b", "ba"), ("ba", "a"), ("a", "aa")]
    edges += [("aa", "aa_delay"), ("aa_delay", "a")]
    g = from_nir(chain(nodes, edges), dt=0.5)
    assert g.nx.edges["a", "b"]["delay"] == 0
    assert g.nx.edges["b", "a"]["delay"] == 1  # closes the zero-delay cycle a -> b -> a
    assert g.nx.edges["a", "a"]["delay"] == 3  # 1.5 / 0.5 steps, no extra step
    # one step over two hops is what NIR's cycle says, but a single layer needs a step per hop
    with pytest.raises(ValueError, match=r"cycle 'a' -> 'b' -> 'a' has total delay 1 over 2 hops"):
        snngraph.compile(g)
    snngraph.compile(g, zero_delay="promote")


def test_import_merges_parallel_delay_branches_into_one_edge() -> None:
    w0, w2 = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[0.0, 3.0], [4.0, 0.0]])
    nodes = {
        "x": nir.Input(np.array([2])),
        "w0": nir.Linear(weight=w0),
        "w2": nir.Linear(weight=w2),
        "d2": nir.Delay(delay=np.full(2, 2e-3)),
        "h": lif(2, tau=1e-2),
    }
    graph = chain(nodes, [("x", "w0"), ("w0", "h"), ("x", "w2"), ("w2", "d2"), ("d2", "h")])
    g = from_nir(graph, dt=1e-3, input_scale="r")
    edge = g.nx.edges["x", "h"]
    coo = edge["weight"].tocoo()
    synapses = sorted(zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), edge["delay"].tolist(), strict=True))
    assert synapses == [(0, 0, 1.0, 0), (0, 1, 3.0, 2), (1, 0, 4.0, 2), (1, 1, 2.0, 0)]


def test_import_output_of_a_linear_chain_becomes_a_readout() -> None:
    w = np.array([[1.0, 2.0, -1.0]])
    graph = chain(
        {"x": nir.Input(np.array([3])), "h": lif(3), "w": nir.Linear(weight=w), "y": nir.Output(np.array([1]))},
        [("x", "h"), ("h", "w"), ("w", "y")],
    )
    g = from_nir(graph, dt=0.5)
    assert g.nx.graph["nir_outputs"] == {"y": "y"}
    assert g.nx.nodes["y"]["kind"] == "li"
    np.testing.assert_array_equal(g.nx.nodes["y"]["alpha"], 0.0)
    x = torch.rand(20, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    out = run(g, x)
    torch.testing.assert_close(out.membrane("y"), out.spikes("h") @ torch.from_numpy(w).T)


def test_import_reads_nir_files(tmp_path) -> None:
    dt = 0.5
    graph, p = nir_zoo(np.random.default_rng(1), dt)
    nir.write(tmp_path / "zoo.nir", graph)
    x = (np.random.default_rng(2).random((30, 2, 3)) < 0.5).astype(float)
    want = simulate_zoo(p, x, dt, "exp", "1-alpha")
    feed = {"x": torch.from_numpy(x), "one": torch.ones(30, 2, 1, dtype=torch.float64)}
    for path in (tmp_path / "zoo.nir", str(tmp_path / "zoo.nir")):
        out = run(from_nir(path, dt=dt, bias_input="one"), feed)
        np.testing.assert_array_equal(out.spikes("rec.if").detach().numpy(), want["b"])
        np.testing.assert_allclose(out.membrane("e").detach().numpy(), want["e"], rtol=1e-10, atol=1e-12)


def test_import_flatten_passes_values_through() -> None:
    w = np.random.default_rng(0).normal(size=(2, 6))
    nodes = {
        "x": nir.Input(np.array([2, 3])),
        "flat": nir.Flatten(np.array([2, 3]), start_dim=0),
        "w": nir.Linear(weight=w),
        "h": lif(2),
    }
    g = from_nir(chain(nodes, [("x", "flat"), ("flat", "w"), ("w", "h")]), dt=0.5, input_scale="r")
    assert g.population_size("x") == 6
    np.testing.assert_array_equal(g.nx.edges["x", "h"]["weight"], w)


# ----------------------------------------------------------------------------------------
# Neurons with a synaptic current (CubaLIF, CubaLI), Affine biases and leaks


def synaptic_zoo(rng: np.random.Generator, dt: float) -> tuple[nir.NIRGraph, dict[str, np.ndarray]]:
    """A CubaLIF fed by an Affine (bias undelayed), an Affine behind a Delay and its own Affine
    feedback (a cycle without Delay), a CubaLI readout and an Affine read out by an Output."""
    p = {
        "w1": rng.uniform(-0.5, 1.5, (4, 3)),
        "b1": rng.uniform(-0.1, 0.3, 4),
        "w2": rng.uniform(-0.5, 1.0, (4, 3)),
        "b2": rng.uniform(0.0, 0.2, 4),
        "steps": np.array([0, 1, 2, 1]),
        "w_rec": rng.uniform(-0.6, 0.4, (4, 4)),
        "b_rec": rng.uniform(-0.1, 0.2, 4),
        "tau_syn_h": rng.uniform(1.0, 3.0, 4),
        "tau_mem_h": rng.uniform(1.5, 5.0, 4),
        "r_h": rng.uniform(0.5, 2.0, 4),
        "w_in_h": rng.uniform(0.5, 1.5, 4),
        "leak_h": rng.uniform(-0.1, 0.3, 4),
        "th_h": rng.uniform(0.2, 0.6, 4),
        "w3": rng.uniform(-1.0, 1.0, (2, 4)),
        "tau_syn_o": rng.uniform(1.0, 3.0, 2),
        "tau_mem_o": rng.uniform(1.5, 5.0, 2),
        "r_o": rng.uniform(0.5, 2.0, 2),
        "w_in_o": rng.uniform(0.5, 1.5, 2),
        "leak_o": rng.uniform(-0.2, 0.2, 2),
        "w4": rng.uniform(-1.0, 1.0, (3, 4)),
        "b4": rng.uniform(-0.5, 0.5, 3),
    }
    h = nir.CubaLIF(
        tau_syn=p["tau_syn_h"],
        tau_mem=p["tau_mem_h"],
        r=p["r_h"],
        v_leak=p["leak_h"],
        v_threshold=p["th_h"],
        w_in=p["w_in_h"],
    )
    o = nir.CubaLI(tau_syn=p["tau_syn_o"], tau_mem=p["tau_mem_o"], r=p["r_o"], v_leak=p["leak_o"], w_in=p["w_in_o"])
    nodes = {
        "x": nir.Input(input_type=np.array([3])),
        "aff1": nir.Affine(weight=p["w1"], bias=p["b1"]),
        "aff2": nir.Affine(weight=p["w2"], bias=p["b2"]),
        "dly": nir.Delay(delay=p["steps"] * dt),
        "h": h,
        "rec": nir.Affine(weight=p["w_rec"], bias=p["b_rec"]),
        "lin3": nir.Linear(weight=p["w3"]),
        "o": o,
        "aff4": nir.Affine(weight=p["w4"], bias=p["b4"]),
        "out_o": nir.Output(output_type=np.array([2])),
        "y": nir.Output(output_type=np.array([3])),
    }
    edges = [
        ("x", "aff1"), ("aff1", "h"), ("x", "aff2"), ("aff2", "dly"), ("dly", "h"), ("h", "rec"), ("rec", "h"),
        ("h", "lin3"), ("lin3", "o"), ("o", "out_o"), ("h", "aff4"), ("aff4", "y"),
    ]  # fmt: skip
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), p


def simulate_synaptic_zoo(p: dict, x: np.ndarray, dt: float, rules: tuple[str, str, str], cycle_bias: str) -> dict:
    """NIR's CubaLIF/CubaLI equations stepped directly: the synaptic current first, the membrane
    with the new current, reset to 0 right after a spike, the feedback from the previous step."""
    decay, input_scale, synapse_scale = rules

    def step(tau: np.ndarray, rule: str) -> tuple[np.ndarray, np.ndarray]:
        """(decay, input factor) of one equation."""
        a = np.exp(-dt / tau) if decay == "exp" else 1 - dt / tau
        return a, {"1-alpha": 1 - a, "dt/tau": dt / tau, "r": np.ones_like(tau)}[rule]

    def cuba(v, j, tau_mem, tau_syn, r, w_in, leak, current):
        (a, k_mem), (b, k_syn) = step(tau_mem, input_scale), step(tau_syn, synapse_scale)
        j = b * j + k_syn * w_in * current
        return a * v + (1 - a) * leak + k_mem * r * j, j

    steps, batch = x.shape[:2]
    v_h, j_h, s_h = np.zeros((batch, 4)), np.zeros((batch, 4)), np.zeros((batch, 4))
    v_o, j_o = np.zeros((batch, 2)), np.zeros((batch, 2))
    record = {name: [] for name in ("h", "o", "y")}
    for t in range(steps):
        delayed = np.zeros((batch, 4))
        for i, k in enumerate(p["steps"]):
            if t >= k:
                delayed[:, i] = x[t - k] @ p["w2"][i] + p["b2"][i]
        feedback = s_h @ p["w_rec"].T + (p["b_rec"] if t > 0 or cycle_bias == "start" else 0.0)
        current = x[t] @ p["w1"].T + p["b1"] + delayed + feedback
        v_h, j_h = cuba(v_h, j_h, p["tau_mem_h"], p["tau_syn_h"], p["r_h"], p["w_in_h"], p["leak_h"], current)
        s_h = (v_h > p["th_h"]).astype(float)
        record["h"].append(s_h)
        v_h = v_h * (1 - s_h)
        v_o, j_o = cuba(v_o, j_o, p["tau_mem_o"], p["tau_syn_o"], p["r_o"], p["w_in_o"], p["leak_o"], s_h @ p["w3"].T)
        record["o"].append(v_o)
        record["y"].append(s_h @ p["w4"].T + p["b4"])
    return {name: np.stack(values) for name, values in record.items()}


SYNAPTIC_RULES = [  # (decay, input_scale, synapse_scale)
    ("exp", "1-alpha", "1-alpha"),
    ("euler", "dt/tau", "dt/tau"),
    ("euler", "dt/tau", "r"),
    ("exp", "r", "dt/tau"),
]


@multi_state_backends
@pytest.mark.parametrize("cycle_bias", ["start", "feedback"])
@pytest.mark.parametrize("rules", SYNAPTIC_RULES)
def test_import_of_synaptic_neurons_matches_nir_equations(rules: tuple, cycle_bias: str, backend: str) -> None:
    dt = 0.5
    decay, input_scale, synapse_scale = rules
    graph, p = synaptic_zoo(np.random.default_rng(11), dt)
    options = {"decay": decay, "input_scale": input_scale, "synapse_scale": synapse_scale}
    g = from_nir(graph, dt=dt, **options, bias_input="one", cycle_bias=cycle_bias)
    assert g.nx.graph["nir_outputs"] == {"out_o": "o", "y": "y"}
    assert g.nx.edges["h", "h"]["delay"] == 1
    h = g.nx.nodes["h"]
    a, b = np.asarray(h["alpha"]), np.asarray(h["alpha_syn"])
    kappa = {"1-alpha": lambda d, tau: 1 - d, "dt/tau": lambda d, tau: dt / tau, "r": lambda d, tau: 1.0}
    gain = p["r_h"] * kappa[input_scale](a, p["tau_mem_h"]) * p["w_in_h"] * kappa[synapse_scale](b, p["tau_syn_h"])
    undelayed = p["b1"] + (p["b_rec"] if cycle_bias == "start" else 0.0) + np.where(p["steps"] == 0, p["b2"], 0.0)
    np.testing.assert_allclose(h["bias"], gain * undelayed, rtol=1e-12)  # the undelayed biases, in J
    np.testing.assert_array_equal(h["v_leak"], p["leak_h"])
    rng = np.random.default_rng(12)
    x = (rng.random((40, 3, 3)) < 0.5).astype(float)
    out = run(g, {"x": torch.from_numpy(x), "one": torch.ones(40, 3, 1, dtype=torch.float64)}, backend)
    want = simulate_synaptic_zoo(p, x, dt, rules, cycle_bias)
    assert 0 < want["h"].sum() < want["h"].size
    np.testing.assert_array_equal(out.spikes("h").detach().numpy(), want["h"])
    np.testing.assert_allclose(out.membrane("o").detach().numpy(), want["o"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.membrane("y").detach().numpy(), want["y"], rtol=1e-10, atol=1e-12)


def synaptic_graph(seed: int) -> snngraph.Graph:
    """:func:`random_graph` with a synaptic current on every population with 0 < α < 1 and a bias
    and a leak on every neuron population."""
    g = random_graph(seed)
    rng = np.random.default_rng(seed + 100)
    for attrs in g.nx.nodes.values():
        if attrs["kind"] == "input":
            continue
        size = attrs["size"]
        alpha = np.broadcast_to(attrs["alpha"], size)
        if np.all((alpha > 0) & (alpha < 1)):
            attrs["alpha_syn"] = rng.uniform(0.2, 0.9, size)
        attrs["bias"] = rng.uniform(-0.05, 0.1, size)
        attrs["v_leak"] = rng.uniform(-0.2, 0.4, size)
    g.add_lif("tonic", 2, alpha=0.8, alpha_syn=0.5, theta=0.3, reset="zero", bias=0.2)  # no incoming edge
    return g


@multi_state_backends
@pytest.mark.parametrize(
    ("decay", "input_scale", "resistance", "synapse_scale"),
    [(*d, None) for d in DISCRETISATIONS] + [("euler", "dt/tau", "unit", "r"), ("exp", "1-alpha", "absorb", "r")],
)
@pytest.mark.parametrize("seed", range(3))
def test_round_trip_of_synaptic_neurons_biases_and_leaks(
    seed: int, decay: str, input_scale: str, resistance: str, synapse_scale: str | None, backend: str
) -> None:
    g = synaptic_graph(seed)
    options = {"dt": 0.25, "decay": decay, "input_scale": input_scale, "synapse_scale": synapse_scale}
    exported = to_nir(g, resistance=resistance, **options)
    assert isinstance(exported.nodes["h0"], nir.CubaLIF)
    assert isinstance(exported.nodes["r0"], nir.CubaLI)
    assert isinstance(exported.nodes["tonic_bias"], nir.Affine)  # zero weights from the first input
    back = from_nir(exported, **options)
    assert neurons(back) == neurons(g)
    assert not any(d["kind"] == "input" and n not in g.nx for n, d in back.nx.nodes(data=True))  # no bias input
    x = spike_input(g, 40, 3, seed)
    first, second = run(g, x, backend), run(back, x, backend)
    assert assert_same_run(first, second, g) > 0
    assert first.spikes("tonic").sum() > 0


def test_export_of_synaptic_neurons_follows_the_discretisation() -> None:
    alpha, beta, dt = np.array([0.5, 0.8, 0.9]), np.array([0.3, 0.6, 0.7]), 0.2
    weight, bias = np.arange(6.0).reshape(3, 2), np.array([0.1, -0.2, 0.3])
    g = snngraph.Graph()
    g.add_input("x", 2)
    g.add_lif("h", 3, alpha=alpha, alpha_syn=beta, theta=0.4, reset="zero", bias=bias, v_leak=[0.0, 0.1, 0.2])
    g.connect("x", "h", weight=weight, delay=2)
    snn_torch = to_nir(g, dt=dt, decay="euler", input_scale="dt/tau")  # snnTorch's convention
    h = snn_torch.nodes["h"]
    assert isinstance(h, nir.CubaLIF)
    np.testing.assert_allclose(h.tau_mem, dt / (1 - alpha))
    np.testing.assert_allclose(h.tau_syn, dt / (1 - beta))
    np.testing.assert_allclose(h.r, h.tau_mem / dt)
    np.testing.assert_allclose(h.w_in, h.tau_syn / dt)
    np.testing.assert_array_equal(h.v_leak, [0.0, 0.1, 0.2])
    # the bias rides on the only edge: its Delay comes first, then an Affine with the weights unchanged
    assert {("x", "x_to_h_delay"), ("x_to_h_delay", "x_to_h"), ("x_to_h", "h")} <= set(snn_torch.edges)
    np.testing.assert_allclose(snn_torch.nodes["x_to_h_delay"].delay, np.full(2, 2 * dt))
    np.testing.assert_array_equal(snn_torch.nodes["x_to_h"].weight, weight)
    np.testing.assert_array_equal(snn_torch.nodes["x_to_h"].bias, bias)
    norse_style = to_nir(g, dt=dt, decay="euler", input_scale="dt/tau", resistance="unit")
    gain = (1 - alpha) * (1 - beta)  # κ_mem·κ_syn, forward Euler
    np.testing.assert_allclose(norse_style.nodes["h"].r, 1.0)
    np.testing.assert_allclose(norse_style.nodes["h"].w_in, 1.0)
    np.testing.assert_allclose(norse_style.nodes["x_to_h"].weight, weight / gain[:, None])
    np.testing.assert_allclose(norse_style.nodes["x_to_h"].bias, bias / gain)


def test_export_errors_for_neurons_nir_cannot_hold() -> None:
    g = snngraph.Graph()
    g.add_input("x", 2)
    g.add_lif("h", 2, alpha=0.9, alpha_syn=[0.5, 1.0], reset="zero")
    g.connect("x", "h", delay=0, seed=0)
    with pytest.raises(ValueError, match=r"population 'h': .* needs 0 < alpha_syn < 1 .* got alpha_syn in \[0.5, 1\]"):
        to_nir(g, dt=1.0)
    adaptive = snngraph.Graph()
    adaptive.add_input("x", 2)
    adaptive.add_alif("a", 2, alpha_adapt=0.9, adapt=0.1)
    adaptive.connect("x", "a", delay=0, seed=0)
    with pytest.raises(ValueError, match=r"population 'a' is of kind 'alif', which has no NIR node"):
        to_nir(adaptive, dt=1.0)
    lonely = snngraph.Graph()
    lonely.add_lif("h", 2, bias=0.5, reset="zero")
    with pytest.raises(ValueError, match=r"population 'h' has a bias .* and no incoming edge"):
        to_nir(lonely, dt=1.0)


@multi_state_backends
def test_import_turns_affine_biases_and_leaks_into_neuron_parameters(backend: str) -> None:
    w, b = np.array([[1.0, -0.5, 0.2], [0.3, 0.8, -0.4]]), np.array([0.2, -0.1])
    tau, r, leak, dt = np.array([2.0, 4.0]), np.array([1.5, 0.5]), np.array([0.3, -0.2]), 0.5
    graph = chain(
        {
            "x": nir.Input(np.array([3])),
            "a": nir.Affine(weight=w, bias=b),
            "s": nir.Scale(scale=np.array([2.0, 3.0])),
            "h": nir.LIF(tau=tau, r=r, v_leak=leak, v_threshold=np.array([0.3, 0.4])),
        },
        [("x", "a"), ("a", "s"), ("s", "h")],
    )
    g = from_nir(graph, dt=dt)  # no bias input: the bias reaches h undelayed
    assert sorted(g.nx.nodes) == ["h", "x"]
    kappa = r * (1 - np.exp(-dt / tau))
    np.testing.assert_allclose(g.nx.nodes["h"]["bias"], kappa * np.array([2.0, 3.0]) * b, rtol=1e-15)
    np.testing.assert_array_equal(g.nx.nodes["h"]["v_leak"], leak)
    assert "alpha_syn" not in g.nx.nodes["h"]
    x = torch.rand(30, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    spikes = run(g, x, backend).spikes("h").detach().numpy()
    alpha, v, want = np.exp(-dt / tau), np.zeros((2, 2)), []
    for t in range(30):  # NIR's LIF stepped directly
        v = alpha * v + (1 - alpha) * leak + kappa * (np.array([2.0, 3.0]) * (x[t].numpy() @ w.T + b))
        want.append((v > [0.3, 0.4]).astype(float))
        v = v * (1 - want[-1])
    assert 0 < np.sum(want) < 60
    np.testing.assert_array_equal(spikes, np.stack(want))


# ----------------------------------------------------------------------------------------
# Bad NIR graphs and files: errors that name the node and the fix


@dataclasses.dataclass(eq=False)
class Mystery(nir.NIRNode):
    gain: np.ndarray


def bad_graphs() -> dict[str, tuple[nir.NIRGraph, dict, str]]:
    x = nir.Input(np.array([3]))
    w = nir.Linear(weight=np.ones((2, 3)))
    return {
        "unknown node": (
            chain({"x": x, "m": Mystery(np.ones(3)), "h": lif(3)}, [("x", "m"), ("m", "h")]),
            {},
            r"node 'm' has the unknown NIR type 'Mystery'; from_nir reads \[",
        ),
        "shape mismatch": (
            chain({"x": nir.Input(np.array([5])), "w": w, "h": lif(2)}, [("x", "w"), ("w", "h")]),
            {},
            r"edge x -> w: 'x' gives 5 values but 'w' takes 3",
        ),
        "shape mismatch into a neuron": (
            chain({"x": x, "w": w, "h": lif(4)}, [("x", "w"), ("w", "h")]),
            {},
            r"edge w -> h: 'w' gives 2 values but 'h' takes 4",
        ),
        "non-integer delay": (
            chain({"x": x, "d": nir.Delay(np.full(3, 1.5e-3)), "h": lif(3)}, [("x", "d"), ("d", "h")]),
            {},
            r"node 'd': delay / dt is not an integer number of steps \(off by up to 0.5 steps",
        ),
        "CubaLIF with v_reset": (
            chain({"x": x, "h": cuba_lif(3, v_reset=np.full(3, 0.2))}, [("x", "h")]),
            {},
            r"node 'h': v_reset = \[0.2 0.2 0.2\] is not supported .*set it to 0",
        ),
        "CubaLIF parameters of different shapes": (
            chain({"x": x, "h": altered(cuba_lif(3), tau_syn=np.ones(2))}, [("x", "h")]),
            {},
            r"node 'h': parameters must share one shape, got tau_mem\(3,\), tau_syn\(2,\), r\(3,\)",
        ),
        "CubaLI with a non-positive tau_syn": (
            chain({"x": x, "h": cuba_li(3, tau_syn=np.array([1.0, 0.0, 1.0]))}, [("x", "h")]),
            {},
            r"node 'h': tau_syn must be positive and finite",
        ),
        "CubaLIF with 4-D parameters": (
            chain({"x": nir.Input(np.array([2, 3, 2, 2])), "h": cuba_lif((2, 3, 2, 2))}, [("x", "h")]),
            {},
            r"node 'h': parameters have shape \(2, 3, 2, 2\); snngraph populations are vectors or \(C, L\)",
        ),
        "euler with dt > tau_syn": (
            chain({"x": x, "h": cuba_lif(3, tau_syn=np.full(3, 0.5))}, [("x", "h")]),
            {"decay": "euler"},
            r"node 'h': dt/tau_syn = 2 > 1 makes the forward-Euler decay 1 - dt/tau_syn negative",
        ),
        "Conv2d without an input shape": (
            chain(
                {"x": x, "c": nir.Conv2d(None, np.ones((1, 1, 2, 2)), 1, 0, 1, 1, np.zeros(1)), "h": lif(3)},
                [("x", "c"), ("c", "h")],
            ),
            {},
            r"node 'c': a nir.Conv2d needs its input's shape \(C, H, W\), which neither the node nor its input",
        ),
        "delayed bias without a bias input": (
            chain(
                {"x": x, "a": nir.Affine(np.ones((2, 3)), np.array([0.0, 0.5])), "d": nir.Delay(np.full(2, 2.0))}
                | {"h": lif(2)},
                [("x", "a"), ("a", "d"), ("d", "h")],
            ),
            {},
            r"node 'a' puts a constant current into 'h' that starts after step 0 .*pass bias_input='<name>'",
        ),
        "feedback bias without a bias input": (
            chain(
                {"x": x, "w": w, "h": lif(2), "rec": nir.Affine(np.eye(2), np.ones(2))},
                [("x", "w"), ("w", "h"), ("h", "rec"), ("rec", "h")],
            ),
            {"cycle_bias": "feedback"},
            r"node 'rec' puts a constant current into 'h' that starts after step 0 \(.*cycle_bias='feedback'\)",
        ),
        "v_reset": (
            chain({"x": x, "h": lif(3, v_reset=np.full(3, 0.1))}, [("x", "h")]),
            {},
            r"node 'h': v_reset = \[0.1 0.1 0.1\] is not supported .*set it to 0",
        ),
        "euler with dt > tau": (
            chain({"x": x, "h": lif(3, tau=0.5)}, [("x", "h")]),
            {"decay": "euler"},
            r"node 'h': dt/tau = 2 > 1 .* use a smaller dt or decay='exp'",
        ),
        "cycle without a neuron": (
            chain(
                {"x": x, "w": nir.Linear(np.eye(3)), "v": nir.Linear(np.eye(3)), "h": lif(3)},
                [("x", "w"), ("w", "v"), ("v", "w"), ("v", "h")],
            ),
            {},
            r"cycle '(v|w)' -> '(w|v)' -> '\1' passes through no neuron node",
        ),
        "readout as presynaptic": (
            chain(
                {"x": x, "l": nir.LI(np.ones(3), np.ones(3), np.zeros(3)), "h": lif(3)},
                [("x", "l"), ("l", "h")],
            ),
            {},
            r"node 'l' \(a non-spiking readout in snngraph\) feeds 'h'.*cannot be presynaptic",
        ),
        "unknown edge end": (
            chain({"x": x, "h": lif(3)}, [("x", "g")]),
            {},
            r"edge x -> g: unknown node 'g'; the graph has \['h', 'x'\]",
        ),
        "ambiguous subgraph": (
            chain(
                {
                    "x": x,
                    "s": chain(
                        {"i1": nir.Input(np.array([3])), "i2": nir.Input(np.array([3])), "h": lif(3)},
                        [("i1", "h"), ("i2", "h")],
                    ),
                },
                [("x", "s")],
            ),
            {},
            r"edge x -> s: subgraph 's' has 2 Input nodes \(\['i1', 'i2'\]\); name one in the edge as 's.<node>'",
        ),
        "edge into an input": (
            chain({"x": x, "h": lif(3), "y": nir.Input(np.array([3]))}, [("x", "h"), ("h", "y")]),
            {},
            r"edge h -> y enters input 'y'; an Input node receives no edges",
        ),
        "bias input name clash": (
            chain(
                {"x": x, "a": nir.Affine(np.ones((2, 3)), np.ones(2)), "d": nir.Delay(np.ones(2)), "h": lif(2)},
                [("x", "a"), ("a", "d"), ("d", "h")],
            ),
            {"bias_input": "h"},
            r"bias_input 'h' is also a NIR node name; choose another name",
        ),
        "unknown reset": (chain({"x": x, "h": lif(3)}, [("x", "h")]), {"reset": "none"}, r"unknown reset 'none'"),
        "unknown input scale": (
            chain({"x": x, "h": lif(3)}, [("x", "h")]),
            {"input_scale": "tau"},
            r"unknown input_scale 'tau'; choose one of \('1-alpha', 'dt/tau', 'r'\)",
        ),
        "unknown synapse scale": (
            chain({"x": x, "h": lif(3)}, [("x", "h")]),
            {"synapse_scale": "w_in"},
            r"unknown synapse_scale 'w_in'; choose one of \('1-alpha', 'dt/tau', 'r'\) or None",
        ),
        "unknown cycle bias": (
            chain({"x": x, "h": lif(3)}, [("x", "h")]),
            {"cycle_bias": "late"},
            r"unknown cycle_bias 'late'; choose one of \('start', 'feedback'\)",
        ),
    }


@pytest.mark.parametrize("case", list(bad_graphs()))
def test_bad_graphs_raise_clear_errors(case: str) -> None:
    graph, options, message = bad_graphs()[case]
    with pytest.raises(ValueError, match=message):
        from_nir(graph, **{"dt": 1e-3 if case == "non-integer delay" else 1.0, **options})


@pytest.mark.parametrize("case", ["shape mismatch", "non-integer delay"])
def test_bad_files_raise_clear_errors(case: str, tmp_path) -> None:
    graph, options, message = bad_graphs()[case]
    nir.write(tmp_path / "bad.nir", graph)
    with pytest.raises(ValueError, match=message):
        from_nir(tmp_path / "bad.nir", dt=1e-3 if case == "non-integer delay" else 1.0, **options)


def test_from_nir_takes_a_graph() -> None:
    with pytest.raises(TypeError, match=r"from_nir takes a nir\.NIRGraph or a path to a \.nir file, got LIF"):
        from_nir(lif(2), dt=1.0)


def test_missing_nir_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "nir", None)
    with pytest.raises(ImportError, match=r"pip install snngraph\[nir\]"):
        to_nir(random_graph(0), dt=1.0)


# ----------------------------------------------------------------------------------------
# Peers: networks exported by snnTorch and Norse, same spikes step for step


def test_snntorch_leaky_feedforward_with_biases() -> None:
    snn = pytest.importorskip("snntorch")
    export_to_nir = pytest.importorskip("snntorch.export_nir").export_to_nir

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(4, 6)
            self.lif1 = snn.Leaky(
                beta=torch.rand(6) * 0.5 + 0.4, threshold=torch.full((6,), 0.5), reset_mechanism="zero"
            )
            self.fc2 = torch.nn.Linear(6, 3)
            self.lif2 = snn.Leaky(
                beta=torch.rand(3) * 0.5 + 0.4, threshold=torch.full((3,), 0.3), reset_mechanism="zero"
            )

        def forward(self, x: torch.Tensor, mem1: torch.Tensor | None = None, mem2: torch.Tensor | None = None):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            return spk1, mem1, spk2, mem2

    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():
        net.fc1.weight.mul_(2.0)
    graph = export_to_nir(net, torch.rand(1, 4), ignore_dims=[0])  # snnTorch writes dt = 1e-4
    g = from_nir(graph, dt=1e-4, decay="euler")  # the Linear biases become the populations' bias
    assert neurons(g) == {"lif1": "lif", "lif2": "lif"}
    np.testing.assert_allclose(g.nx.nodes["lif1"]["bias"], net.fc1.bias.detach().numpy(), rtol=1e-6)

    steps, batch = 40, 3
    x = torch.rand(steps, batch, 4) * 2
    mem1, mem2, record = torch.zeros(batch, 6), torch.zeros(batch, 3), []
    with torch.no_grad():
        for t in range(steps):
            spk1, mem1, spk2, mem2 = net(x[t], mem1, mem2)
            record.append((spk1, mem1, spk2, mem2))
    spk1, mem1, spk2, mem2 = (torch.stack(r).double() for r in zip(*record, strict=True))
    out = run(g, x.double())
    assert spk1.sum() > 0
    assert spk2.sum() > 0
    assert torch.equal(out.spikes("lif1"), spk1)
    assert torch.equal(out.spikes("lif2"), spk2)
    torch.testing.assert_close(out.membrane("lif1"), mem1, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.membrane("lif2"), mem2, rtol=0, atol=1e-5)


def test_snntorch_default_subtract_reset_with_the_reset_override() -> None:
    snn = pytest.importorskip("snntorch")
    export_to_nir = pytest.importorskip("snntorch.export_nir").export_to_nir
    torch.manual_seed(1)
    fc = torch.nn.Linear(3, 5, bias=False)
    neuron = snn.Leaky(beta=torch.rand(5) * 0.5 + 0.4, threshold=torch.full((5,), 0.4))  # reset "subtract"
    graph = export_to_nir(torch.nn.Sequential(fc, neuron), torch.rand(1, 3), ignore_dims=[0])
    g = from_nir(graph, dt=1e-4, decay="euler", reset="subtract")
    name = next(n for n, d in g.nx.nodes(data=True) if d["kind"] == "lif")
    x = torch.rand(40, 2, 3) * 2
    mem, spikes = torch.zeros(2, 5), []
    with torch.no_grad():
        for t in range(40):
            spk, mem = neuron(fc(x[t]), mem)
            spikes.append(spk)
    spikes = torch.stack(spikes).double()
    out = run(g, {"input": x.double()})
    assert spikes.sum() > 0
    assert torch.equal(out.spikes(name), spikes)


@pytest.mark.parametrize(
    ("reset_mechanism", "reset_delay", "reset"),
    [
        ("zero", False, "zero"),  # what snnTorch's own import_from_nir builds for a NIR LIF cycle
        ("subtract", True, "subtract"),  # snnTorch's defaults, read with the reset override
    ],
)
def test_snntorch_rleaky_recurrent(reset_mechanism: str, reset_delay: bool, reset: str) -> None:
    snn = pytest.importorskip("snntorch")
    export_to_nir = pytest.importorskip("snntorch.export_nir").export_to_nir

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3, 6)
            self.rlif = snn.RLeaky(
                beta=torch.rand(6) * 0.5 + 0.4,
                threshold=torch.full((6,), 0.5),
                linear_features=6,
                reset_mechanism=reset_mechanism,
                reset_delay=reset_delay,
            )

        def forward(self, x: torch.Tensor, spk=None, mem=None):
            return self.rlif(self.fc(x), spk, mem)

    torch.manual_seed(2)
    net = Net()
    with torch.no_grad():
        net.fc.weight.mul_(3.0)
    graph = export_to_nir(net, torch.rand(1, 3), ignore_dims=[0])
    g = from_nir(graph, dt=1e-4, decay="euler", reset=reset)
    assert g.nx.edges["rlif.lif", "rlif.lif"]["delay"] == 1

    steps, batch = 40, 3
    x = torch.rand(steps, batch, 3) * 2
    spk, mem, record = torch.zeros(batch, 6), torch.zeros(batch, 6), []
    with torch.no_grad():
        for t in range(steps):
            spk, mem = net(x[t], spk, mem)
            record.append((spk, mem))
    spikes, mems = (torch.stack(r).double() for r in zip(*record, strict=True))
    out = run(g, x.double())
    assert spikes.sum() > 0
    assert torch.equal(out.spikes("rlif.lif"), spikes)
    # with reset_delay=False snnTorch returns the membrane after the reset, snngraph the one before it
    membrane = out.membrane("rlif.lif") if reset_delay else out.membrane("rlif.lif") * (1 - spikes)
    torch.testing.assert_close(membrane, mems, rtol=0, atol=1e-5)


def norse_box_network(dt: float) -> torch.nn.Module:
    norse = pytest.importorskip("norse.torch")
    from norse.torch.module.leaky_integrator_box import LIBoxCell, LIBoxParameters
    from norse.torch.module.lif_box import LIFBoxCell, LIFBoxParameters

    torch.manual_seed(3)
    return norse.SequentialState(
        torch.nn.Linear(3, 5, bias=False),
        LIFBoxCell(
            LIFBoxParameters(tau_mem_inv=torch.rand(5) * 100 + 50, v_th=torch.full((5,), 0.1), v_leak=torch.zeros(5)),
            dt=dt,
        ),
        torch.nn.Linear(5, 2, bias=False),
        LIBoxCell(LIBoxParameters(tau_mem_inv=torch.full((2,), 50.0), v_leak=torch.zeros(2)), dt=dt),
    )


def test_norse_lif_box_network() -> None:
    norse = pytest.importorskip("norse.torch")
    dt = 1e-3
    model = norse_box_network(dt)
    graph = norse.to_nir(model, torch.rand(1, 3), dt=dt)
    g = from_nir(graph, dt=dt**2, decay="euler", input_scale="dt/tau")  # Norse 1.1 writes tau = dt / tau_mem_inv

    steps, batch = 50, 3
    x = torch.rand(steps, batch, 3) * 4
    spikes, readout, state = [], [], None
    hook = model[1].register_forward_hook(lambda module, args, output: spikes.append(output[0].detach()))
    with torch.no_grad():
        for t in range(steps):
            y, state = model(x[t], state)
            readout.append(y)
    hook.remove()
    spikes, readout = torch.stack(spikes).double(), torch.stack(readout).double()
    out = run(g, x.double())
    assert spikes.sum() > 0
    assert torch.equal(out.spikes("1"), spikes)
    torch.testing.assert_close(out.membrane("3"), readout, rtol=0, atol=1e-6)


def lif_chain(seed: int) -> snngraph.Graph:
    rng = np.random.default_rng(seed)
    g = snngraph.Graph()
    g.add_input("x", 3)
    g.add_lif("h", 5, alpha=rng.uniform(0.5, 0.95, 5), theta=0.4, reset="zero")
    g.add_lif("k", 2, alpha=rng.uniform(0.5, 0.95, 2), theta=0.3, reset="zero")
    g.connect("x", "h", weight=rng.uniform(-1.0, 1.5, (5, 3)), delay=0)
    g.connect("h", "k", weight=rng.uniform(-1.0, 1.5, (2, 5)), delay=0)
    return g


def synaptic_chain(seed: int) -> snngraph.Graph:
    """Input → CubaLIF → CubaLIF, one threshold per population, biases, no leak (what snnTorch's
    importer reads; Norse's lets the synaptic current leak towards v_leak too)."""
    rng = np.random.default_rng(seed)
    g = snngraph.Graph()
    g.add_input("x", 3)
    g.add_lif("h", 5, alpha=rng.uniform(0.5, 0.95, 5), alpha_syn=rng.uniform(0.3, 0.8, 5), theta=0.4, reset="zero")
    g.add_lif("k", 2, alpha=rng.uniform(0.5, 0.95, 2), alpha_syn=rng.uniform(0.3, 0.8, 2), theta=0.3, reset="zero")
    g.nx.nodes["h"]["bias"] = rng.uniform(-0.05, 0.1, 5)
    g.nx.nodes["k"]["bias"] = rng.uniform(-0.05, 0.1, 2)
    g.connect("x", "h", weight=rng.uniform(-0.5, 1.0, (5, 3)), delay=0)
    g.connect("h", "k", weight=rng.uniform(-0.5, 1.0, (2, 5)), delay=0)
    return g


@multi_state_backends
@pytest.mark.parametrize("network", [lif_chain, synaptic_chain])
def test_snntorch_reads_the_export(network: Callable[[int], snngraph.Graph], backend: str) -> None:
    pytest.importorskip("snntorch")
    import_from_nir = pytest.importorskip("snntorch.import_nir").import_from_nir
    g = network(0)
    net = import_from_nir(to_nir(g, dt=1e-4, decay="euler", input_scale="dt/tau"))
    x = torch.rand(40, 2, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        spikes = torch.stack([net(x[t])[0] for t in range(40)]).double()
    want = run(g, x.double(), backend).spikes("k")
    assert want.sum() > 0
    assert torch.equal(spikes, want)


@multi_state_backends
@pytest.mark.parametrize(("network", "drive"), [(lif_chain, 1.0), (synaptic_chain, 20.0)])
def test_norse_reads_the_export(network: Callable[[int], snngraph.Graph], drive: float, backend: str) -> None:
    """Norse's importer filters a CubaLIF's input through its synapse, dt/τ_syn of it a step: a weaker drive."""
    norse = pytest.importorskip("norse.torch")
    g = network(1)
    dt = 1e-3
    model = norse.from_nir(to_nir(g, dt=dt, decay="euler", input_scale="dt/tau", resistance="unit"), dt=dt)
    x = torch.rand(40, 2, 3, generator=torch.Generator().manual_seed(1)) * drive
    want = run(g, x.double(), backend).spikes("k")
    assert want.sum() > 0
    assert torch.equal(step_norse(model, x), want)


def step_norse(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A Norse (or nirtorch) module stepped over ``x`` [T, B, n] from its own initial state."""
    outputs, state = [], None
    with torch.no_grad():
        for t in range(x.shape[0]):
            y, state = model(x[t], state)
            outputs.append(y)
    return torch.stack(outputs).double()


# ----------------------------------------------------------------------------------------
# Peers with synaptic currents: snnTorch's Synaptic/RSynaptic, Norse's LIFCell/LIFRecurrentCell


class SnnTorchRecurrent(torch.nn.Module):
    """A biased Linear into an RSynaptic whose recurrent Linear has a bias too."""

    def __init__(self, reset_mechanism: str) -> None:
        snn = pytest.importorskip("snntorch")
        super().__init__()
        self.fc = torch.nn.Linear(3, 6)
        self.rsyn = snn.RSynaptic(
            alpha=torch.rand(6) * 0.5 + 0.4,
            beta=torch.rand(6) * 0.5 + 0.4,
            threshold=torch.full((6,), 0.5),
            linear_features=6,
            reset_mechanism=reset_mechanism,
        )
        with torch.no_grad():
            self.fc.weight.mul_(2.0)

    def forward(self, x: torch.Tensor, spk=None, syn=None, mem=None) -> tuple:
        return self.rsyn(self.fc(x), spk, syn, mem)


@multi_state_backends
def test_snntorch_rsynaptic_export_runs_as_norse_from_nir_runs_it(backend: str) -> None:
    norse = pytest.importorskip("norse.torch")
    export_to_nir = pytest.importorskip("snntorch.export_nir").export_to_nir
    torch.manual_seed(4)
    graph = export_to_nir(SnnTorchRecurrent("subtract"), torch.rand(1, 3), ignore_dims=[0])
    assert isinstance(graph.nodes["rsyn.lif"], nir.CubaLIF)
    x = torch.rand(60, 4, 3) * 2
    want = step_norse(norse.from_nir(graph, dt=1e-4), x)
    # nirtorch reads the feedback, the recurrent Linear's bias with it, from the previous step
    g = from_nir(graph, dt=1e-4, decay="euler", cycle_bias="feedback", bias_input="one")
    out = run(g, {"input": x.double(), "one": torch.ones(60, 4, 1, dtype=torch.float64)}, backend)
    assert want.sum() > 0
    assert torch.equal(out.spikes("rsyn.lif"), want)
    g_start = from_nir(graph, dt=1e-4, decay="euler")  # the bias from step 0, as snnTorch runs it
    assert not torch.equal(run(g_start, x.double(), backend).spikes("rsyn.lif"), want)


class SnnTorchSynapticChain(torch.nn.Module):
    """Biased Linear → Synaptic → biased Linear → Synaptic."""

    def __init__(self, reset_mechanism: str, reset_delay: bool) -> None:
        snn = pytest.importorskip("snntorch")
        super().__init__()

        def neuron(size: int, threshold: float) -> torch.nn.Module:
            return snn.Synaptic(
                alpha=torch.rand(size) * 0.5 + 0.4,
                beta=torch.rand(size) * 0.5 + 0.4,
                threshold=torch.full((size,), threshold),
                reset_mechanism=reset_mechanism,
                reset_delay=reset_delay,
            )

        self.fc1, self.syn1 = torch.nn.Linear(4, 6), neuron(6, 0.5)
        self.fc2, self.syn2 = torch.nn.Linear(6, 3), neuron(3, 0.3)
        with torch.no_grad():
            self.fc1.weight.mul_(2.0)

    def forward(self, x: torch.Tensor, state: list | None = None) -> tuple:
        """Spikes and membranes of both layers and the state ``[(syn, mem), (syn, mem)]``, flat (a
        tensor first, as nirtorch's tracer needs)."""
        state = state or [(None, None), (None, None)]
        spk1, syn1, mem1 = self.syn1(self.fc1(x), *state[0])
        spk2, syn2, mem2 = self.syn2(self.fc2(spk1), *state[1])
        return spk1, mem1, spk2, mem2, [(syn1, mem1), (syn2, mem2)]


@multi_state_backends
@pytest.mark.parametrize(
    ("reset_mechanism", "reset_delay", "reset"),
    [
        ("zero", False, "zero"),  # what snnTorch's own import_from_nir builds for a NIR CubaLIF
        ("subtract", True, "subtract"),  # snnTorch's defaults, read with the reset override
    ],
)
def test_snntorch_synaptic_feedforward(reset_mechanism: str, reset_delay: bool, reset: str, backend: str) -> None:
    export_to_nir = pytest.importorskip("snntorch.export_nir").export_to_nir
    torch.manual_seed(5)
    net = SnnTorchSynapticChain(reset_mechanism, reset_delay)
    graph = export_to_nir(net, torch.rand(1, 4), ignore_dims=[0])
    g = from_nir(graph, dt=1e-4, decay="euler", reset=reset)
    assert all("alpha_syn" in g.nx.nodes[name] for name in ("syn1", "syn2"))
    steps, batch = 50, 3
    x = torch.rand(steps, batch, 4) * 2
    state, record = [(torch.zeros(batch, n), torch.zeros(batch, n)) for n in (6, 3)], []
    with torch.no_grad():
        for t in range(steps):
            *outputs, state = net(x[t], state)
            record.append(outputs)
    spk1, mem1, spk2, mem2 = (torch.stack(r).double() for r in zip(*record, strict=True))
    out = run(g, x.double(), backend)
    for name, spikes, mem in (("syn1", spk1, mem1), ("syn2", spk2, mem2)):
        assert spikes.sum() > 0
        assert torch.equal(out.spikes(name), spikes)
        # with reset_delay=False snnTorch returns the membrane after the reset, snngraph the one before it
        membrane = out.membrane(name) if reset_delay else out.membrane(name) * (1 - spikes)
        torch.testing.assert_close(membrane, mem, rtol=0, atol=1e-5)


@multi_state_backends
def test_snntorch_rsynaptic_recurrent(backend: str) -> None:
    export_to_nir = pytest.importorskip("snntorch.export_nir").export_to_nir
    torch.manual_seed(6)
    net = SnnTorchRecurrent("subtract")  # snnTorch's default reset, with reset_delay=True
    graph = export_to_nir(net, torch.rand(1, 3), ignore_dims=[0])
    g = from_nir(graph, dt=1e-4, decay="euler", reset="subtract")  # both biases become the bias of J
    np.testing.assert_allclose(
        g.nx.nodes["rsyn.lif"]["bias"], (net.fc.bias + net.rsyn.recurrent.bias).detach().numpy(), rtol=1e-6
    )
    steps, batch = 60, 4
    x = torch.rand(steps, batch, 3) * 2
    state, record = [torch.zeros(batch, 6)] * 3, []
    with torch.no_grad():
        for t in range(steps):
            state = net(x[t], *state)
            record.append((state[0], state[2]))
    spikes, mems = (torch.stack(r).double() for r in zip(*record, strict=True))
    out = run(g, x.double(), backend)
    assert spikes.sum() > 0
    assert torch.equal(out.spikes("rsyn.lif"), spikes)
    torch.testing.assert_close(out.membrane("rsyn.lif"), mems, rtol=0, atol=1e-5)


def norse_lif_cells(v_leak: bool) -> torch.nn.Module:
    """Biased Linear → LIFCell → Linear → LIFCell, one parameter value per neuron."""
    norse = pytest.importorskip("norse.torch")
    from norse.torch.functional.lif import LIFParameters

    def cell(size: int) -> torch.nn.Module:
        leak = torch.rand(size) * 0.2 if v_leak else torch.zeros(size)
        p = LIFParameters(
            tau_syn_inv=torch.rand(size) * 100 + 100,
            tau_mem_inv=torch.rand(size) * 100 + 50,
            v_leak=leak,
            v_th=torch.full((size,), 0.2),
        )
        return norse.LIFCell(p, dt=1e-3)

    torch.manual_seed(7)
    model = norse.SequentialState(torch.nn.Linear(3, 5), cell(5), torch.nn.Linear(5, 2), cell(2))
    with torch.no_grad():
        model[0].weight.mul_(3.0)
    return model


@multi_state_backends
@pytest.mark.parametrize(("export_dt", "import_dt"), [(1e-3, 1e-6), (1.0, 1e-3)])
def test_norse_lif_cell_network(export_dt: float, import_dt: float, backend: str) -> None:
    norse = pytest.importorskip("norse.torch")
    from norse.torch.functional.lif import LIFFeedForwardState

    model = norse_lif_cells(v_leak=True)
    # Norse writes tau = export_dt / tau_inv; LIFCell adds its input to the current unscaled
    graph = norse.to_nir(model, torch.rand(1, 3), dt=export_dt)
    g = from_nir(graph, dt=import_dt, decay="euler", input_scale="dt/tau", synapse_scale="r")
    assert isinstance(graph.nodes["1"], nir.CubaLIF)
    steps, batch = 60, 3
    x = torch.rand(steps, batch, 3) * 4
    zero = [LIFFeedForwardState(v=torch.zeros(batch, n), i=torch.zeros(batch, n)) for n in (5, 2)]
    state, hidden, record = [None, zero[0], None, zero[1]], [], []  # snngraph starts at 0, not at v_leak
    hook = model[1].register_forward_hook(lambda module, args, output: hidden.append(output[0].detach()))
    with torch.no_grad():
        for t in range(steps):
            y, state = model(x[t], state)
            record.append(y)
    hook.remove()
    hidden, spikes = torch.stack(hidden).double(), torch.stack(record).double()
    out = run(g, x.double(), backend)
    assert hidden.sum() > 0
    assert spikes.sum() > 0
    assert torch.equal(out.spikes("1"), hidden)
    assert torch.equal(out.spikes("3"), spikes)


@multi_state_backends
def test_norse_lif_cell_export_runs_as_norse_from_nir_runs_it(backend: str) -> None:
    norse = pytest.importorskip("norse.torch")
    model = norse_lif_cells(v_leak=False)
    with torch.no_grad():  # Norse's importer filters the input through the synapse: a weaker drive
        model[0].weight.mul_(10.0)
        model[2].weight.mul_(30.0)
    dt = 1e-3
    graph = norse.to_nir(model, torch.rand(1, 3), dt=1.0)  # τ in seconds, which Norse's importer reads
    x = torch.rand(60, 3, 3) * 4
    want = step_norse(norse.from_nir(graph, dt=dt), x)
    g = from_nir(graph, dt=dt, decay="euler", input_scale="dt/tau")  # forward Euler on both equations
    assert want.sum() > 0
    assert torch.equal(run(g, x.double(), backend).spikes("3"), want)


@multi_state_backends
def test_norse_lif_recurrent_cell(backend: str) -> None:
    norse = pytest.importorskip("norse.torch")
    from norse.torch.functional.lif import LIFParameters, LIFState

    torch.manual_seed(8)
    p = LIFParameters(
        tau_syn_inv=torch.rand(5) * 100 + 100,
        tau_mem_inv=torch.rand(5) * 100 + 50,
        v_leak=torch.zeros(5),
        v_th=torch.full((5,), 0.2),
    )
    cell = norse.LIFRecurrentCell(3, 5, p, dt=1e-3)
    with torch.no_grad():
        cell.input_weights.mul_(3.0)
    # Norse cannot export a LIFRecurrentCell: the same network written as NIR by hand
    to_numpy = lambda t: t.detach().double().numpy()  # noqa: E731
    h = nir.CubaLIF(
        tau_mem=1 / to_numpy(p.tau_mem_inv),
        tau_syn=1 / to_numpy(p.tau_syn_inv),
        r=np.ones(5),
        v_leak=np.zeros(5),
        v_threshold=to_numpy(p.v_th),
    )
    nodes = {
        "x": nir.Input(np.array([3])),
        "w_in": nir.Linear(to_numpy(cell.input_weights)),
        "h": h,
        "w_rec": nir.Linear(to_numpy(cell.recurrent_weights)),
        "y": nir.Output(np.array([5])),
    }
    graph = chain(nodes, [("x", "w_in"), ("w_in", "h"), ("h", "w_rec"), ("w_rec", "h"), ("h", "y")])
    g = from_nir(graph, dt=1e-3, decay="euler", input_scale="dt/tau", synapse_scale="r")
    steps, batch = 60, 3
    x = torch.rand(steps, batch, 3) * 4
    state, spikes = LIFState(*(torch.zeros(batch, 5) for _ in range(3))), []
    with torch.no_grad():
        for t in range(steps):
            z, state = cell(x[t], state)
            spikes.append(z)
    spikes = torch.stack(spikes).double()
    assert spikes.sum() > 0
    assert torch.equal(run(g, x.double(), backend).spikes("h"), spikes)
