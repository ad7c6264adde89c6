"""The cpu backend runs layers of generic neurons (K = 1 … 4 state variables) as the reference does.

At the level of the op: a compiled random graph's layer is re-declared with ``n_states = K`` and
``plain = False`` and given a random generic table (a stable ``A``, random ``e``, ``b``, ``c``,
``r``, ``g ≥ 0``, mixed resets per neuron, some readouts, onsets); ``lif_layer`` then runs on
"cpu" and "reference" with the same inputs and the same random loss on the states, the spikes or both:
equal spikes, states and every gradient (input, weights, every group of the table, incoming
state).  Over each reset, ``detach_reset``, delays beyond one step, each propagation path of the
backend, 16-bit saved states and seeded sweeps of graphs; and the named kinds (CubaLIF, ALIF,
SE-adLIF) through ``SNN``, whole and chunked runs.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import pytest
import torch
from layer_checks import assert_close_scaled, assert_close_to_reference, assert_matches_reference, relative_error
from random_graphs import random_graph

import snngraph
from snngraph import Graph
from snngraph.backends import CpuOptions
from snngraph.backends.base import LayerInputs, Plan
from snngraph.functional import lif_layer, prepare, prepare_layer
from snngraph.graph import RESETS
from snngraph.neurons import GROUPS, NeuronParams, assemble, reset_flags
from snngraph.surrogates import Sigmoid

STATE_TOLERANCES = {torch.float64: {"rtol": 1e-10, "atol": 1e-12}, torch.float32: {"rtol": 1e-4, "atol": 1e-5}}
OPTIONS = {  # ways of propagating spikes and of chunking the backward pass (see test_backend_cpu.py)
    "default": "cpu",
    "events": CpuOptions(event_fraction=1.0, sampled_rate=np.inf, dense_density=2.0, chunks=1),
    "products": CpuOptions(event_fraction=0.0, sampled_rate=0.0, dense_density=2.0, chunks=1),
    "dense-blocks-one-step-chunks": CpuOptions(
        dense_density=0.0, min_dense_area=0, chunks=1000, workspace=1, spike_product_min_area=0
    ),
}


def random_table(
    n: int,
    k: int,
    rng: np.random.Generator,
    *,
    resets: tuple[str, ...] = RESETS,
    adaptive: bool = True,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """A generic table ``[P, N]`` of ``K = k`` states with bounded dynamics: every row of ``A``
    has absolute sum below 0.9 (spectral radius < 1).  Blocks are random, or structured as the
    named kinds build them (entries zero or one for every neuron), so that every path of the
    backend's sums runs; onsets 0, or 0 … 3 per neuron; ``adaptive=False`` keeps ``g₀ = 0``
    (θ_eff independent of U)."""

    def pick(*choices: np.ndarray) -> np.ndarray:
        return choices[rng.integers(len(choices))]

    diagonal = rng.uniform(0.3, 0.8, (k, n))
    a = rng.uniform(-1, 1, (k, k, n)) * ((0.9 - diagonal) / max(1, k - 1))[:, None]
    a[np.arange(k), np.arange(k)] = diagonal
    a *= rng.random((k, k, 1)) < 0.7  # some entries zero for every neuron
    a[np.arange(k), np.arange(k)] = diagonal
    unit = np.eye(k)[0][:, None] * np.ones((k, n))
    e = pick(rng.uniform(0.5, 1.5, (k, n)), np.ones((k, n)), unit)
    b = pick(rng.uniform(-0.1, 0.1, (k, n)), np.zeros((k, n)))
    c = pick(rng.uniform(-0.3, 0.3, (k, n)), np.zeros((k, n)), np.roll(unit, 1, axis=0) * (k > 1))
    r = pick(unit, rng.uniform(0.0, 1.0, (k, n)))
    g = pick(rng.uniform(0.0, 0.2, (k, n)), np.zeros((k, n)))
    if not adaptive:
        g[0] = 0
    theta = rng.uniform(0.5, 1.5, n)
    flags = np.array([reset_flags(name) for name in rng.choice(resets, n)]).T
    spiking = (rng.random(n) < 0.8).astype(float)
    onset = pick(np.zeros(n), rng.integers(0, 4, n).astype(float))
    blocks = {name: torch.as_tensor(value) for name, value in zip("Aebcrg", (a, e, b, c, r, g), strict=True)}
    table = assemble(blocks, *(torch.as_tensor(row) for row in (theta, flags[0], flags[1], spiking, onset)))
    return table.to(dtype)


class Case(NamedTuple):
    """The inputs of one call and the random weights of its loss."""

    inputs: LayerInputs
    grad_v: torch.Tensor
    grad_s: torch.Tensor


def plans(net: snngraph.CompiledNetwork, k: int, dtype: torch.dtype, backend: object, **options: object) -> list[Plan]:
    """The layer of ``net`` re-declared with ``K = k`` generic states, on ``backend`` and on the
    reference (``saved_membranes`` for the candidate only)."""
    saved = options.pop("saved_membranes", None)
    result = []
    for choice, storage in ((backend, saved), ("reference", None)):
        plan = prepare(net, backend=choice, dtype=dtype, **options)
        layer = dataclasses.replace(plan.layer, n_states=k, plain=False, saved_membranes=storage)
        result.append(prepare_layer(layer, choice, dtype))
    return result


def random_case(
    net: snngraph.CompiledNetwork, table: torch.Tensor, steps: int, batch: int, seed: int, input_scale: float = 1.0
) -> Case:
    generator = torch.Generator().manual_seed(seed)
    dtype, k = table.dtype, snngraph.neurons.n_states_of(table)
    n, d, d_in = net.n_neurons, net.max_delay, net.max_input_delay

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator, dtype=dtype)

    spiking = table[snngraph.neurons.SPIKING]
    x = (torch.rand(d_in + steps, batch, net.n_inputs, generator=generator) < 0.4).to(dtype) * input_scale
    inputs = LayerInputs(
        x=x,
        w_in=torch.as_tensor(net.in_weight, dtype=dtype),
        w_rec=torch.as_tensor(net.rec_weight, dtype=dtype) + 0.1 * randn(net.rec_weight.size),
        neurons=table,
        v0=0.5 * randn(k, batch, n),
        s_hist=(torch.rand(d, batch, n, generator=generator) < 0.3).to(dtype) * spiking,
    )
    return Case(inputs, randn(steps, k, batch, n), randn(steps, batch, n))


def run(plan: Plan, case: Case, trainable: frozenset[str], loss_on: str) -> dict[str, torch.Tensor]:
    """States, spikes and the gradient of every input of one call, with a loss on ``loss_on``
    (``"states"``, ``"spikes"`` or ``"both"``)."""
    leaves = LayerInputs(*(t.detach().clone().requires_grad_(True) for t in case.inputs))
    v, s = lif_layer(*leaves[:3], NeuronParams(leaves.neurons, trainable), *leaves[4:], plan)
    terms = {"states": [(v * case.grad_v).sum()], "spikes": [(s * case.grad_s).sum()]}
    terms["both"] = terms["states"] + terms["spikes"]
    sum(terms[loss_on]).backward()
    return {"states": v.detach(), "spikes": s.detach()} | {name: t.grad for name, t in leaves._asdict().items()}


def assert_same(
    net: snngraph.CompiledNetwork,
    table: torch.Tensor,
    *,
    backend: object = "cpu",
    steps: int = 15,
    batch: int = 3,
    seed: int = 0,
    loss_on: str = "both",
    trainable: frozenset[str] = frozenset(GROUPS),
    **options: object,
) -> dict[str, torch.Tensor]:
    """Run the layer on ``backend`` and on the reference; assert equal spikes, states and gradients."""
    dtype, k = table.dtype, snngraph.neurons.n_states_of(table)
    candidate, reference = plans(net, k, dtype, backend, **options)
    case = random_case(net, table, steps, batch, seed)
    got, want = run(candidate, case, trainable, loss_on), run(reference, case, trainable, loss_on)
    assert torch.equal(got["spikes"], want["spikes"]), "spikes differ from the reference"
    assert want["spikes"].any(), "a test that never spikes checks little"
    assert_close_scaled(got["states"], want["states"], **STATE_TOLERANCES[dtype], what="states")
    for name in LayerInputs._fields:
        if want[name] is None:  # no group of the table wanted: no gradient
            assert got[name] is None, name
        else:
            assert_close_to_reference(got[name], want[name], dtype, f"gradient of {name}")
    return got


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("detach", [False, True], ids=["attached", "detached"])
def test_each_reset_and_size(k: int, reset: str, detach: bool) -> None:
    seed = 10 * k + RESETS.index(reset)
    net = snngraph.compile(random_graph(seed, max_delay=4))
    table = random_table(net.n_neurons, k, np.random.default_rng(seed), resets=(reset,))
    assert_same(net, table, seed=seed, detach_reset=detach)


@pytest.mark.parametrize("loss_on", ["states", "spikes", "both"])
@pytest.mark.parametrize("k", [1, 3])
def test_loss_on_one_output(loss_on: str, k: int) -> None:
    net = snngraph.compile(random_graph(5 + k))
    table = random_table(net.n_neurons, k, np.random.default_rng(k))
    assert_same(net, table, seed=k, loss_on=loss_on)


@pytest.mark.parametrize("seed", range(8))
def test_sweep_of_graphs(seed: int) -> None:
    """Mixed resets per neuron, delays up to 12, K chosen by the seed."""
    net = snngraph.compile(random_graph(100 + seed, max_delay=12))
    rng = np.random.default_rng(seed)
    table = random_table(net.n_neurons, int(rng.integers(1, 5)), rng)
    assert_same(net, table, steps=21, seed=seed, detach_reset=bool(seed % 2))


@pytest.mark.parametrize("option", OPTIONS, ids=list(OPTIONS))
@pytest.mark.parametrize("seed", [3, 12])
def test_every_path(option: str, seed: int) -> None:
    net = snngraph.compile(random_graph(seed, max_size=9))
    table = random_table(net.n_neurons, 2, np.random.default_rng(seed))
    assert_same(net, table, backend=OPTIONS[option], steps=19, batch=4, seed=seed)


@pytest.mark.parametrize(
    "trainable", [(), ("theta",), ("A",), ("e",), ("b", "c"), ("r", "g")], ids=lambda t: "-".join(t) or "none"
)
def test_each_group_alone(trainable: tuple[str, ...]) -> None:
    """Only the requested groups of the table get a gradient (the others zero)."""
    net = snngraph.compile(random_graph(21))
    table = random_table(net.n_neurons, 3, np.random.default_rng(21))
    got = assert_same(net, table, seed=21, trainable=frozenset(trainable))
    assert (got["neurons"] is not None and got["neurons"].any()) == bool(trainable)


@pytest.mark.parametrize("k", [1, 2])
def test_float32(k: int) -> None:
    net = snngraph.compile(random_graph(30 + k))
    table = random_table(net.n_neurons, k, np.random.default_rng(k), dtype=torch.float32)
    assert_same(net, table, seed=k)


def test_plain_neurons_on_the_generic_path() -> None:
    """A plain table (K = 1, e = r = 1, c = g = 0) gives the plain path's numbers on the generic one."""
    net = snngraph.compile(random_graph(4, max_delay=5))
    plain_plan = prepare(net, backend="cpu", dtype=torch.float64)
    generic_plan = prepare_layer(dataclasses.replace(plain_plan.layer, plain=False), "cpu", torch.float64)
    table = torch.as_tensor(net.neurons, dtype=torch.float64)
    case = random_case(net, table, steps=17, batch=3, seed=4)
    groups = frozenset(("A", "theta", "b"))  # those of a plain table
    got, want = run(generic_plan, case, groups, "both"), run(plain_plan, case, groups, "both")
    assert torch.equal(got["spikes"], want["spikes"])
    for name in ("states", *LayerInputs._fields):
        assert_close_to_reference(got[name], want[name], torch.float64, name)


@pytest.mark.parametrize("saved", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_states_saved_in_16_bits_keep_spikes(saved: torch.dtype) -> None:
    net = snngraph.compile(random_graph(11))
    table = random_table(net.n_neurons, 2, np.random.default_rng(11), adaptive=False, dtype=torch.float32)
    runs = []
    for storage in (None, saved):
        candidate, _ = plans(net, 2, torch.float32, "cpu", saved_membranes=storage, surrogate=Sigmoid(5.0))
        runs.append(run(candidate, random_case(net, table, steps=20, batch=3, seed=11), frozenset(GROUPS), "both"))
    full, low = runs
    assert torch.equal(full["spikes"], low["spikes"])
    for name in ("w_rec", "w_in", "neurons", "x"):
        assert relative_error(low[name], full[name]) < 0.03, name


def _named_kinds_graph() -> Graph:
    """CubaLIF, ALIF, SE-adLIF and a CubaLI readout in one layer (K = 2), with feedback."""
    rng = np.random.default_rng(0)
    g = Graph()
    g.add_input("x", 5)
    g.add_lif("cuba", 7, alpha_syn=0.7, reset="subtract")
    g.add_alif("alif", 6, alpha_adapt=0.9, adapt=0.3, reset="zero")
    g.add_adlif("adlif", 5, alpha_adapt=0.8, a=0.5, b=0.4, symplectic=True)
    g.add_li("out", 3, alpha_syn=0.5)
    for pre, post, delay in [("x", "cuba", 0), ("cuba", "alif", 0), ("alif", "adlif", 1), ("adlif", "cuba", 5)]:
        size = (g.population_size(post), g.population_size(pre))
        g.connect(pre, post, weight=rng.normal(0.5, 1.0, size), delay=delay)
    g.connect("alif", "alif", weight=rng.normal(0.0, 0.5, (6, 6)), delay=2)
    g.connect("adlif", "out", weight=rng.normal(0.0, 1.0, (3, 5)), delay=0)
    return g


@pytest.mark.parametrize("detach", [False, True], ids=["attached", "detached"])
def test_named_kinds_through_the_module(detach: bool) -> None:
    """Every parameter learnable, through ``SNN``."""
    net = snngraph.compile(_named_kinds_graph())
    assert not snngraph.neurons.is_plain(net.neurons)
    assert_matches_reference(net, "cpu", steps=25, batch=3, seed=1, detach_reset=detach)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_chunked_run_equals_whole_run(dtype: torch.dtype) -> None:
    """Bit for bit, as for plain neurons: the state carries every state variable."""
    net = snngraph.compile(_named_kinds_graph())
    model = snngraph.SNN(net, backend="cpu", dtype=dtype)
    x = (torch.rand(31, 3, net.n_inputs, generator=torch.Generator().manual_seed(1)) < 0.4).to(dtype)
    whole, state, chunks = model(x), None, []
    for part in x.split([9, 2, 20]):
        chunks.append(model(part, state))
        state = chunks[-1].state
    for p in net.populations:
        assert torch.equal(torch.cat([c.spikes(p.name) for c in chunks]), whole.spikes(p.name))
        assert torch.equal(torch.cat([c.membrane(p.name) for c in chunks]), whole.membrane(p.name))
