"""NIR export of learned delays: whole delays of the linear kernel export exactly, as ``Delay``
nodes, and come back with the same spikes; fractional delays and spread Gaussian kernels warn
(or fail with ``strict=True``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_nir import assert_same_run, float64_model, run, spike_input, step_norse

import snngraph
from snngraph.nir import NIRExportWarning, from_nir, to_nir

nir = pytest.importorskip("nir")

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:nirtorch.load is being deprecated:DeprecationWarning"),
]

OPTIONS = {"dt": 0.5, "decay": "exp", "input_scale": "1-alpha"}


def learning_graph(kernel: str = "linear") -> snngraph.Graph:
    """Input → recurrent LIF → leaky readout; the input and recurrent edges learn their delays."""
    rng = np.random.default_rng(0)
    g = snngraph.Graph()
    g.add_input("x", 3)
    g.add_lif("h", 6, alpha=rng.uniform(0.6, 0.95, 6), theta=0.5, reset="zero")
    g.add_li("r", 2, alpha=0.8)
    kernel_options = {} if kernel == "linear" else {"delay_kernel": "gaussian", "delay_window": 3}
    g.connect(
        "x", "h", weight=rng.uniform(0.2, 1.2, (6, 3)), delay=rng.integers(0, 3, (6, 3)),
        learn_delay=True, delay_range=(0, 3), **kernel_options,
    )  # fmt: skip
    recurrent = snngraph.random_weight(6, 6, 0.5, seed=1)
    g.connect(
        "h", "h", weight=recurrent * 0.6, delay=snngraph.random_delays(recurrent, 1, 3, seed=2),
        learn_delay=True, delay_range=(1, 4), **kernel_options,
    )  # fmt: skip
    g.connect("h", "r", weight=rng.normal(size=(2, 6)), delay=0)
    return g


def learned(graph: snngraph.Graph, first: float | None = None) -> snngraph.SNN:
    """The float64 model of ``graph`` with whole learned delays other than the initial ones
    (each moved by one step within its range), and ``first`` as the first recurrent one."""
    model = float64_model(graph)
    with torch.no_grad():
        for pre, post, (low, high) in (("x", "h", (0, 3)), ("h", "h", (1, 4))):
            tau = model.delays(pre, post)
            tau.copy_(torch.where(tau < high, tau + 1, torch.full_like(tau, low)))
        if first is not None:
            model.delays("h", "h").view(-1)[0] = first
    return model


def delay_steps(graph: nir.NIRGraph) -> set[float]:
    return {float(d) for node in graph.nodes.values() if isinstance(node, nir.Delay) for d in node.delay}


def test_whole_learned_delays_export_exactly_as_delay_nodes() -> None:
    model = learned(learning_graph())
    exported = to_nir(model, **OPTIONS)  # no NIRExportWarning: warnings are errors
    assert delay_steps(exported) == {d * OPTIONS["dt"] for d in (1, 2, 3, 4)}
    back = from_nir(exported, **OPTIONS)
    x = spike_input(back, 40, 3, seed=0)
    assert assert_same_run(model(x), run(back, x), back) > 0


def test_fractional_learned_delays_warn_with_the_edge_and_the_largest_rounding() -> None:
    model = learned(learning_graph(), first=2.3)
    with pytest.warns(NIRExportWarning, match=r"'h' -> 'h' has 1 of \d+ learned delays .* 2\.3 to 2\)"):
        to_nir(model, **OPTIONS)
    with pytest.raises(ValueError, match=r"'h' -> 'h'.*strict=True refuses.*only whole delays"):
        to_nir(model, strict=True, **OPTIONS)


def test_a_spread_gaussian_kernel_warns_and_one_of_width_zero_exports_exactly() -> None:
    model = learned(learning_graph("gaussian"))
    with pytest.warns(NIRExportWarning) as record:
        to_nir(model, **OPTIONS)
    spread = "learns its delays with a Gaussian kernel of sigma 0.75 steps, which spreads each synapse over 3 taps"
    assert [str(w.message).split(", while")[0] for w in record] == [
        f"edge {e} {spread}" for e in ("'x' -> 'h'", "'h' -> 'h'")
    ]
    assert all(w.filename == __file__ for w in record)  # the warnings point at the caller of to_nir
    with pytest.raises(ValueError, match="Gaussian kernel"):
        to_nir(model, strict=True, **OPTIONS)
    model.set_delay_sigma(0.0)
    back = from_nir(to_nir(model, **OPTIONS), **OPTIONS)
    x = spike_input(back, 40, 2, seed=1)
    assert assert_same_run(model(x), run(back, x), back) > 0


def test_norse_runs_the_export_of_a_feedforward_model_with_learned_delays() -> None:
    """Norse reads no ``Delay`` nodes: the input edge learns its delays and sits at delay 0."""
    norse = pytest.importorskip("norse.torch")
    rng = np.random.default_rng(3)
    g = snngraph.Graph()
    g.add_input("x", 3)
    g.add_lif("h", 5, alpha=rng.uniform(0.5, 0.95, 5), theta=0.4, reset="zero")
    g.add_lif("k", 2, alpha=rng.uniform(0.5, 0.95, 2), theta=0.3, reset="zero")
    g.connect("x", "h", weight=rng.uniform(-1.0, 1.5, (5, 3)), delay=0.4, learn_delay=True, delay_range=(0, 2))
    g.connect("h", "k", weight=rng.uniform(-1.0, 1.5, (2, 5)), delay=0)
    model = float64_model(g)
    with torch.no_grad():
        model.delays("x", "h").zero_()  # learned: all at 0
    dt = 1e-3
    options = {"dt": dt, "decay": "euler", "input_scale": "dt/tau"}
    peer = norse.from_nir(to_nir(model, resistance="unit", **options), dt=dt)
    x = torch.rand(40, 2, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x.double()).spikes("k")
    assert want.sum() > 0
    assert torch.equal(step_norse(peer, x), want)
