"""The Triton backend on layers of generic neurons (K = 1 … 4 state variables), against the reference.

Run by ``tests/test_triton_interpreter.py`` in its own process with ``TRITON_INTERPRET=1``;
skipped unless that flag is set.  Each case takes a random compiled graph, makes its layer
generic (``LayerSpec.n_states = K``, ``plain = False``) with a random table (``A`` of spectral
radius < 1, random ``e``, ``b``, ``c``, ``r``, small ``g ≥ 0``, mixed resets, some neurons that
never spike), runs :func:`snngraph.functional.lif_layer` on the Triton backend and on the
reference with the same inputs and upstream gradients, and compares the spikes (equal), the
states and the gradient of every input, each group of the table included.
"""

from __future__ import annotations

import dataclasses
import math
import os

import pytest
import torch
from graph_checks import assert_layer_equals_graph, biased_chain
from layer_checks import assert_close_to_reference, assert_matches_reference, relative_error
from random_graphs import NEURON_KINDS, random_graph

import snngraph
from snngraph.backends import TritonOptions
from snngraph.backends.base import LayerInputs, Plan
from snngraph.functional import lif_layer, prepare, prepare_layer
from snngraph.neurons import GROUPS, THETA, NeuronParams, assemble, block_rows, reset_flags
from snngraph.surrogates import ATan, FastSigmoid, Sigmoid, Surrogate, Triangle

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1", reason="needs TRITON_INTERPRET=1 (run by test_triton_interpreter.py)"
)

PERSISTENT = TritonOptions(time_loop="persistent")
PER_STEP = TritonOptions(time_loop="per_step", dense_input=math.inf)
PER_STEP_DETERMINISTIC = TritonOptions(time_loop="per_step", deterministic=True, dense_input=0.0)
LOOPS = {"persistent": PERSISTENT, "per_step": PER_STEP}
ALL = frozenset(GROUPS)


def generic_table(
    n: int, k: int, resets: tuple[str, ...], generator: torch.Generator, dtype: torch.dtype, g0: bool = True
) -> torch.Tensor:
    """A random table ``[P, N]`` of ``k`` states: ``A`` of spectral radius ≤ 0.9, every third
    neuron a readout that never spikes, the resets drawn from ``resets`` (``g0``: θ_eff depends
    on U too)."""

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=generator, dtype=torch.float64)

    a = uniform(-0.4, 0.4, n, k, k) + torch.diag_embed(uniform(0.4, 0.8, n, k))
    radius = torch.linalg.eigvals(a).abs().amax(-1)
    a = a * (0.9 / radius).clamp(max=1.0)[:, None, None]
    g = uniform(0.0, 0.15, k, n)
    if not g0:
        g[0] = 0.0
    blocks = {
        "A": a.permute(1, 2, 0),
        "e": uniform(0.5, 1.5, k, n),
        "b": uniform(-0.05, 0.1, k, n),
        "c": uniform(-0.3, 0.3, k, n),
        "r": uniform(0.0, 1.0, k, n),
        "g": g,
    }
    picks = torch.randint(len(resets), (n,), generator=generator)
    flags = torch.tensor([reset_flags(resets[i]) for i in picks.tolist()], dtype=torch.float64).reshape(n, 2)
    spiking = (torch.arange(n) % 3 != 2).double()
    table = assemble(blocks, uniform(0.5, 1.2, n), flags[:, 0], flags[:, 1], spiking)
    return table.to(dtype)


@dataclasses.dataclass(frozen=True)
class Case:
    """A generic layer and one call's tensors (``inputs``), the upstream gradients of V and S."""

    plan: Plan
    inputs: LayerInputs
    grad_v: torch.Tensor | None
    grad_s: torch.Tensor | None


def make_case(
    seed: int,
    k: int,
    backend: TritonOptions,
    *,
    dtype: torch.dtype = torch.float64,
    resets: tuple[str, ...] = ("subtract", "zero", "none"),
    surrogate: Surrogate | None = None,
    detach_reset: bool = False,
    saved_membranes: torch.dtype | None = None,
    loss_on: str = "both",
    steps: int = 7,
    batch: int = 2,
    graph: snngraph.Graph | None = None,
    g0: bool = True,
) -> Case:
    """The layer of ``random_graph(seed)`` (or ``graph``) made generic with ``k`` states, random inputs."""
    net = snngraph.compile(random_graph(seed, max_delay=4, max_size=4) if graph is None else graph)
    options = {"surrogate": surrogate or Sigmoid(4.0), "detach_reset": detach_reset, "saved_membranes": saved_membranes}
    layer = dataclasses.replace(prepare(net, backend=backend, dtype=dtype, **options).layer, n_states=k, plain=False)
    generator = torch.Generator().manual_seed(seed)
    n, d, d_in = layer.n_neurons, layer.max_delay, layer.max_input_delay
    table = generic_table(n, k, resets, generator, dtype, g0)
    spiking = table[3]
    inputs = LayerInputs(
        x=(torch.rand(d_in + steps, batch, layer.n_inputs, generator=generator) < 0.5).to(dtype) * 1.5,
        w_in=torch.as_tensor(net.in_weight, dtype=dtype),
        w_rec=torch.as_tensor(net.rec_weight, dtype=dtype),
        neurons=table,
        v0=torch.randn(k, batch, n, generator=generator, dtype=dtype) * 0.5,
        s_hist=(torch.rand(d, batch, n, generator=generator) < 0.3).to(dtype) * spiking,
    )
    grad_v = torch.randn(steps, k, batch, n, generator=generator, dtype=dtype)
    grad_s = torch.randn(steps, batch, n, generator=generator, dtype=dtype)
    return Case(
        prepare_layer(layer, backend, dtype),
        inputs,
        None if loss_on == "spikes" else grad_v,
        None if loss_on == "states" else grad_s,
    )


def run(case: Case, plan: Plan, trainable: frozenset[str]) -> tuple[torch.Tensor, torch.Tensor, LayerInputs]:
    """V, S and the gradient of every input of ``Σ grad_v·V + Σ grad_s·S`` on ``plan``."""
    leaves = LayerInputs(*(t.detach().clone().requires_grad_(True) for t in case.inputs))
    v, s = lif_layer(*leaves[:3], NeuronParams(leaves.neurons, trainable), *leaves[4:], plan)
    loss = sum((out * grad).sum() for out, grad in ((v, case.grad_v), (s, case.grad_s)) if grad is not None)
    loss.backward()
    return v.detach(), s.detach(), LayerInputs(*(leaf.grad for leaf in leaves))


def reference_plan(case: Case) -> Plan:
    layer = dataclasses.replace(case.plan.layer, saved_membranes=None)
    return prepare_layer(layer, "reference", case.plan.dtype)


def assert_matches(case: Case, trainable: frozenset[str] = ALL) -> tuple[torch.Tensor, LayerInputs]:
    """Triton against the reference on ``case``: equal spikes, close states and gradients."""
    got_v, got_s, got = run(case, case.plan, trainable)
    want_v, want_s, want = run(case, reference_plan(case), trainable)
    dtype = case.plan.dtype
    assert 0 < want_s.mean() < 0.9, "the case should have some spikes, not all"
    assert torch.equal(got_s, want_s), "spikes differ from the reference"
    assert_close_to_reference(got_v, want_v, dtype, "states differ from the reference")
    for name, grad in want._asdict().items():
        what = f"gradient of {name} differs from the reference"
        if grad is None:  # nothing trains in the table
            assert getattr(got, name) is None, what
        else:
            assert_close_to_reference(getattr(got, name), grad, dtype, what)
    return got_v, got


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("backend", LOOPS.values(), ids=list(LOOPS))
def test_states(k: int, backend: TritonOptions) -> None:
    """K = 1 (not plain) … 4, both time loops, every group of the table trains."""
    surrogate = [Sigmoid(4.0), FastSigmoid(3.0), ATan(2.0), Triangle(0.6)][k - 1]
    assert_matches(make_case([0, 2, 6, 14][k - 1], k, backend, surrogate=surrogate))


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_each_reset(reset: str, detach_reset: bool) -> None:
    assert_matches(make_case(4, 2, PERSISTENT, resets=(reset,), detach_reset=detach_reset))


@pytest.mark.parametrize("loss_on", ["states", "spikes"])
@pytest.mark.parametrize("backend", LOOPS.values(), ids=list(LOOPS))
def test_loss_on_one_output(loss_on: str, backend: TritonOptions) -> None:
    """The output that no loss reaches gets no upstream gradient (``None``)."""
    assert_matches(make_case(5, 3, backend, loss_on=loss_on, detach_reset=backend is PER_STEP))


@pytest.mark.parametrize(
    "trainable", [frozenset(), frozenset({"e"}), frozenset({"theta", "g", "r"})], ids=["fixed", "e", "theta_g_r"]
)
def test_some_groups_train(trainable: frozenset[str]) -> None:
    """Only the groups that train get a gradient (zero rows elsewhere; none when nothing trains)."""
    _, grads = assert_matches(make_case(10, 2, PER_STEP_DETERMINISTIC), trainable)
    if trainable:
        for name, rows in {"theta": slice(THETA, THETA + 1), **block_rows(2)}.items():
            assert bool(grads.neurons[rows].any()) == (name in trainable), name


def test_float32() -> None:
    assert_matches(make_case(2, 2, PERSISTENT, dtype=torch.float32))


def test_no_recurrent_synapses() -> None:
    """Input → neurons only: independent blocks of neurons in the persistent loop."""
    g = snngraph.Graph()
    g.add_input("in", 4)
    g.add_lif("lif", 40, alpha=0.8, theta=0.6)
    g.connect("in", "lif", weight=snngraph.random_weight(40, 4, 0.6, 2) * 2.0, delay=1)
    assert_matches(make_case(2, 3, PERSISTENT, graph=g, steps=6))


@pytest.mark.parametrize("saved_dtype", [torch.bfloat16, torch.float16])
def test_saved_states_rounded(saved_dtype: torch.dtype) -> None:
    """Backward from states saved in 16 bits: the same spikes, gradients close to float32 storage
    (``g₀ = 0``, as :func:`~snngraph.backends.base.round_states` asks)."""
    full = make_case(4, 2, PERSISTENT, dtype=torch.float32, g0=False)
    low = make_case(4, 2, PERSISTENT, dtype=torch.float32, saved_membranes=saved_dtype, g0=False)
    want_v, want_s, want = run(full, full.plan, ALL)
    got_v, got_s, got = run(low, low.plan, ALL)
    assert torch.equal(got_s, want_s)
    assert torch.equal(got_v, want_v)
    for name, grad in want._asdict().items():
        assert relative_error(getattr(got, name), grad) < 0.02, name


def test_named_kinds() -> None:
    """Through ``SNN``: ALIF, adLIF and current-based LIF populations (K = 2) with an LI readout."""
    g = snngraph.Graph()
    g.add_input("in", 4)
    g.add_alif("alif", 6, alpha_adapt=0.9, adapt=0.2, alpha=0.85, theta=0.7)
    g.add_adlif("adlif", 5, alpha_adapt=0.8, a=0.3, b=0.5, theta=0.6)
    g.add_lif("cuba", 4, alpha=0.8, alpha_syn=0.7, theta=0.5, reset="zero")
    g.add_li("out", 3)
    g.connect("in", "alif", weight=snngraph.random_weight(6, 4, 0.8, 1) * 2.0, delay=0)
    g.connect("alif", "adlif", weight=snngraph.random_weight(5, 6, 0.8, 2) * 2.0, delay=1)
    g.connect("adlif", "cuba", weight=snngraph.random_weight(4, 5, 0.8, 3) * 2.0, delay=1)
    g.connect("cuba", "out", weight=snngraph.random_weight(3, 4, 0.8, 4), delay=0)
    g.connect("alif", "alif", weight=snngraph.random_weight(6, 6, 0.4, 5), delay=2)
    net = snngraph.compile(g)
    assert net.n_states == 2
    assert_matches_reference(net, PERSISTENT, steps=8, seed=1, input_scale=1.5)


@pytest.mark.parametrize("seed", [0, 1])
def test_layer_equals_graph_with_mixed_kinds(seed: int) -> None:
    """Mixed kinds with lags (onsets), through SNN, against the graph simulated population by population."""
    graph = random_graph(seed, kinds=NEURON_KINDS, max_size=3, max_delay=4)
    assert_layer_equals_graph(graph, seed, backend="triton", steps=9)


@pytest.mark.parametrize("loop", list(LOOPS))
def test_biases_of_populations_that_start_late(loop: str) -> None:
    """Plain neurons with biases and lags 0, 1, 2: the onsets in the plain kernels."""
    assert_layer_equals_graph(biased_chain(), 3, backend=LOOPS[loop], steps=9)
