"""The triton backend on a CUDA device at realistic sizes, against the reference.

Thousands of neurons, T = 100 … 500, float64 and float32, both time loops (the per-step one
replayed as a CUDA graph), every surrogate, detach_reset, dense input products.  The reference
runs on CPU (``assert_matches_reference``).  Run by ``benchmarks/run_gpu.py``; skipped without
CUDA.

Exact float32 networks: weights multiples of 2⁻⁶, α ∈ {1/2, 1}, θ = 1 and 0/1 inputs make
every input current exact in float32 whatever the order of summation, and ``α·U`` exact, so the
reference and the kernels compute the same membranes and their spikes agree bit for bit, even
over thousands of neurons and hundreds of steps.  (With arbitrary float32 weights, a membrane
within rounding of θ flips a spike now and then at these sizes.)  float64 runs use arbitrary
values.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from layer_checks import (
    assert_close_to_reference,
    assert_matches_reference,
    assert_rebuild_matches_reference,
    random_state,
    run_with_grads,
)
from random_cnns import random_cnn
from random_graphs import random_graph

import snngraph
from snngraph import SNN, CompiledNetwork, Graph, random_weight
from snngraph.backends import TritonOptions
from snngraph.backends.base import round_states
from snngraph.kinds import NeuronModel, population_columns
from snngraph.surrogates import ATan, FastSigmoid, Sigmoid, Triangle

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

WEIGHT_STEP = 2.0**-6
KINDS = {
    "lif": ("add_lif", {}),
    "cuba": ("add_lif", {"alpha_syn": 0.75, "bias": 0.02}),
    "alif": ("add_alif", {"alpha_adapt": 0.95, "adapt": 0.1, "alpha_syn": 0.5}),
}
"""Population kinds of :func:`network`: plain LIF (one state), CubaLIF (two), ALIF with a
synaptic current (three)."""


def _values(rng: np.random.Generator, mean: float, scale: float, size: int | tuple, exact: bool) -> np.ndarray:
    values = rng.normal(mean, 1.0, size) * scale
    if not exact:
        return values
    rounded = np.round(values / WEIGHT_STEP) * WEIGHT_STEP
    return np.where(rounded == 0, np.copysign(WEIGHT_STEP, values), rounded)


def network(
    hidden: int,
    *,
    inputs: int = 100,
    density: float = 0.02,
    max_delay: int = 8,
    readout: int = 10,
    exact: bool = False,
    kinds: tuple[str, str] = ("lif", "lif"),
    seed: int = 0,
) -> CompiledNetwork:
    """inputs → two populations (subtract and zero reset) of the given ``kinds`` (:data:`KINDS`),
    recurrent within and between them with per-synapse delays 1 … ``max_delay``, → an li readout."""
    rng = np.random.default_rng(seed)
    g = Graph()
    g.add_input("in", inputs)
    halves = {"a": ("subtract", hidden - hidden // 2), "b": ("zero", hidden // 2)}
    for (name, (reset, size)), kind in zip(halves.items(), kinds, strict=True):
        alpha = rng.choice([0.5, 1.0], size) if exact else rng.uniform(0.7, 0.98, size)
        theta = 1.0 if exact else rng.uniform(0.8, 1.2, size)
        add, params = KINDS[kind]
        getattr(g, add)(name, size, alpha=alpha, theta=theta, reset=reset, **params)
        weight = _values(rng, 0.0, 0.6 / np.sqrt(0.4 * inputs), (size, inputs), exact)
        g.connect("in", name, weight=weight, delay=rng.integers(0, 4, (size, inputs)))
    for pre in halves:
        for post in halves:
            pattern = random_weight(
                g.population_size(post), g.population_size(pre), density, seed=int(rng.integers(1 << 31))
            )
            values = _values(rng, -0.2, 1.0 / np.sqrt(density * hidden), pattern.nnz, exact)
            weight = sp.coo_array((values, (pattern.row, pattern.col)), shape=pattern.shape)
            g.connect(pre, post, weight=weight, delay=rng.integers(1, max_delay + 1, pattern.nnz))
    if readout:
        g.add_li("readout", readout, alpha=0.5 if exact else 0.9)
        for pre in halves:
            g.connect(pre, "readout", weight=_values(rng, 0.0, 0.1, (readout, g.population_size(pre)), exact), delay=1)
    return snngraph.compile(g)


def _check_rate(spikes: torch.Tensor) -> None:
    """The comparison means something only if neurons spike, and not all the time."""
    assert 0.005 < spikes.mean().item() < 0.5, f"firing rate {spikes.mean().item():.4f}"


@pytest.mark.parametrize("time_loop", ["auto", "persistent"])
def test_float64(time_loop: str) -> None:
    """2010 neurons, T = 200: per-step launches as a CUDA graph (auto) or one persistent launch."""
    backend = TritonOptions(time_loop=time_loop)
    got = assert_matches_reference(network(2000), backend, device="cuda", steps=200, batch=4, seed=1)
    _check_rate(got.spikes)


def test_float32_exact() -> None:
    net = network(3000, exact=True, seed=2)
    got = assert_matches_reference(net, "triton", device="cuda", dtype=torch.float32, steps=500, batch=8, seed=2)
    _check_rate(got.spikes)


@pytest.mark.parametrize(
    ("surrogate", "detach_reset"),
    [(Sigmoid(10.0), True), (FastSigmoid(5.0), False), (ATan(2.0), True), (Triangle(0.5), False)],
)
def test_surrogates_float64(surrogate, detach_reset: bool) -> None:
    net = network(1200, max_delay=5, seed=3)
    assert_matches_reference(
        net, "triton", device="cuda", surrogate=surrogate, detach_reset=detach_reset, steps=100, batch=3, seed=3
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_small_persistent(dtype: torch.dtype) -> None:
    """256 neurons: the persistent loop with the synapses kept in registers."""
    net = network(256, density=0.05, max_delay=4, readout=0, exact=True, seed=4)
    got = assert_matches_reference(net, "triton", device="cuda", dtype=dtype, steps=300, batch=8, seed=4)
    _check_rate(got.spikes)


def test_dense_input_float32() -> None:
    """4096 inputs → 4096 LIF, no recurrence: the input as one matrix product, independent neurons."""
    rng = np.random.default_rng(5)
    g = Graph()
    g.add_input("in", 4096)
    g.add_lif("lif", 4096, alpha=rng.choice([0.5, 1.0], 4096), theta=1.0)
    g.connect("in", "lif", weight=_values(rng, -0.01, 1.0 / np.sqrt(0.4 * 4096), (4096, 4096), True), delay=0)
    net = snngraph.compile(g)
    got = assert_matches_reference(net, "triton", device="cuda", dtype=torch.float32, steps=100, batch=8, seed=5)
    _check_rate(got.spikes)


@pytest.mark.parametrize("time_loop", ["per_step", "persistent"])
def test_multi_state_neurons_float64(time_loop: str) -> None:
    """CubaLIF and ALIF populations (K = 3), their neuron parameters learned: the generic kernels."""
    net = network(1200, kinds=("cuba", "alif"), max_delay=5, seed=7)
    backend = TritonOptions(time_loop=time_loop)
    got = assert_matches_reference(net, backend, device="cuda", steps=100, batch=3, seed=7)
    _check_rate(got.spikes)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_convolutional_graphs(dtype: torch.dtype) -> None:
    """Random CNNs with feedback: shared kernels gathered into the synapses, pooling, per-tap delays."""
    for seed in range(3):
        net = snngraph.compile(random_cnn(seed, feedback=True))
        assert_matches_reference(net, "triton", device="cuda", dtype=dtype, steps=60, batch=4, seed=seed)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_learned_delays_and_their_rebuild(dtype: torch.dtype) -> None:
    """Edges that learn their delays (linear and Gaussian taps), before and after every delay moves
    by a whole step (the taps' delays rebuilt, a new plan)."""
    for seed in range(3):
        net = snngraph.compile(random_graph(70 + seed, learn_delays=0.8, max_delay=6, max_size=60))
        assert_matches_reference(net, "triton", device="cuda", dtype=dtype, steps=60, batch=4, seed=seed)
        assert_rebuild_matches_reference(net, "triton", device="cuda", dtype=dtype, steps=60, seed=seed)


@pytest.mark.parametrize("deterministic", [False, True])
def test_graph_replay(deterministic: bool) -> None:
    """The CUDA graph recorded on the first call, replayed with new inputs, state and weights."""
    net = network(1500, seed=6)
    kwargs = {"learn_alpha": True, "learn_theta": True}
    reference = SNN(net, backend="reference", **kwargs).double()
    options = TritonOptions(time_loop="per_step", deterministic=deterministic)
    candidate = SNN(net, backend=options, **kwargs).double()
    generator = torch.Generator().manual_seed(6)
    for call in range(3):
        with torch.no_grad():
            for model in (reference, candidate):
                for edge in net.edges_of("recurrent"):
                    model.weight(edge.pre, edge.post).mul_(1.0 + 0.05 * call)
        x = (torch.rand(60, 3, net.n_inputs, generator=generator) < 0.4).double()
        state = random_state(reference, 3, generator)
        want = run_with_grads(reference, x, state, seed=call)
        got = run_with_grads(candidate, x, state, seed=call, device="cuda")
        assert torch.equal(got.spikes, want.spikes), f"call {call}: spikes differ"
        for name, grad in want.grads.items():
            assert_close_to_reference(got.grads[name], grad, torch.float64, f"triton, call {call}: gradient of {name}")


def test_round_states_on_cuda() -> None:
    u = torch.randn(100, 8, 500, device="cuda") * 2
    theta = torch.rand(500, device="cuda") + 0.5
    for dtype in (torch.bfloat16, torch.float16):
        low = round_states(u[:, None], lif_table(theta), dtype)[:, 0]
        assert torch.equal(low.float() > theta, u > theta)


def lif_table(theta: torch.Tensor) -> torch.Tensor:
    """The neuron table of LIF neurons with thresholds ``theta``."""
    params = {"alpha": torch.full_like(theta, 0.9), "theta": theta, "bias": 0 * theta, "v_leak": 0 * theta}
    return population_columns(NeuronModel.named("lif", "subtract"), params, 1, None)[0]
