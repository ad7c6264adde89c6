"""The Triton backend on CPU tensors under Triton's interpreter, against the reference.

Run by ``tests/test_triton_interpreter.py`` in its own process with ``TRITON_INTERPRET=1``
(the flag must be set before Triton is imported, and must not reach other tests); skipped
unless that flag is set.  Tiny graphs and few steps: the interpreter runs every program in
numpy.  Each case runs forward and backward through ``assert_matches_reference`` (spikes,
membranes and the gradients of every weight, α, θ, the input and the incoming state).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from layer_checks import assert_matches_reference, assert_rebuild_matches_reference, relative_error, run_with_grads
from random_cnns import random_cnn
from random_graphs import random_graph

import snngraph
from snngraph import SNN, Graph, random_delays, random_weight
from snngraph.backends import TritonOptions
from snngraph.backends.triton import geometry, launch
from snngraph.surrogates import ATan, FastSigmoid, Sigmoid, Triangle

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1", reason="needs TRITON_INTERPRET=1 (run by test_triton_interpreter.py)"
)

SURROGATES = [Sigmoid(5.0), FastSigmoid(3.0), ATan(2.3), Triangle(0.7)]
PERSISTENT = TritonOptions(time_loop="persistent")
PER_STEP_GATHERED = TritonOptions(time_loop="per_step", dense_input=math.inf)
PER_STEP_DETERMINISTIC = TritonOptions(time_loop="per_step", deterministic=True)
PERSISTENT_DENSE = TritonOptions(time_loop="persistent", dense_input=0.0)
LOOPS = {"persistent": PERSISTENT, "per_step-gathered_input": PER_STEP_GATHERED}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("backend", LOOPS.values(), ids=list(LOOPS))
def test_random_graphs(seed: int, backend: TritonOptions) -> None:
    """Random graphs: delays, zero-delay hops, resets, readouts; dtype, surrogate, detach vary."""
    variant = seed + (backend is PER_STEP_GATHERED)
    assert_matches_reference(
        snngraph.compile(random_graph(seed)),
        backend,
        dtype=(torch.float64, torch.float32)[variant % 2],
        surrogate=SURROGATES[variant % 4],
        detach_reset=bool(seed // 2 % 2),
        seed=seed,
    )


@pytest.mark.parametrize("seed", range(2))
def test_convolutional_graphs(seed: int) -> None:
    """Small random CNNs (conv, pooling, a conv inside a recurrent loop, per-tap delays)."""
    net = snngraph.compile(random_cnn(seed, small=True, feedback=seed == 1))
    backend, dtype = LOOPS[list(LOOPS)[seed]], (torch.float64, torch.float32)[seed]
    assert_matches_reference(net, backend, dtype=dtype, steps=8, batch=2, seed=seed)


@pytest.mark.parametrize("seed", range(2))
def test_learned_delays(seed: int) -> None:
    """Edges that learn their delays (linear and Gaussian taps); the delays' gradients too, and
    again after every delay moved by a whole step (the taps rebuilt, a new plan)."""
    net = snngraph.compile(random_graph(60 + seed, learn_delays=0.8, max_delay=5))
    assert any(e.delays is not None for e in net.edges)
    backend, dtype = LOOPS[list(LOOPS)[seed]], (torch.float64, torch.float32)[seed]
    assert_matches_reference(net, backend, dtype=dtype, steps=10, batch=2, seed=seed)
    assert_rebuild_matches_reference(net, backend, dtype=dtype, steps=10, batch=2, seed=seed)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_each_reset(reset: str, detach_reset: bool) -> None:
    net = snngraph.compile(random_graph(11, resets=(reset,)))
    assert_matches_reference(net, PERSISTENT_DENSE, detach_reset=detach_reset, seed=3)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_auto_choice(dtype: torch.dtype) -> None:
    """The default backend (auto choice, default dense-input threshold)."""
    net = snngraph.compile(random_graph(21))
    assert_matches_reference(net, "triton", dtype=dtype, surrogate=ATan(2.0), seed=21)


@pytest.mark.parametrize("loss_on", ["spikes", "membranes"])
def test_loss_on_one_output(loss_on: str) -> None:
    """The output that no loss reaches gets no upstream gradient (``None``, zeros inside)."""
    net = snngraph.compile(random_graph(4))
    assert_matches_reference(net, PERSISTENT, steps=9, seed=4, loss_on=loss_on)


@pytest.mark.parametrize("learn", [(), ("alpha",), ("theta",)], ids=["fixed", "alpha", "theta"])
def test_fixed_parameters(learn: tuple[str, ...]) -> None:
    """Gradients that are not needed are not returned; the others still match."""
    net = snngraph.compile(random_graph(5))
    assert_matches_reference(net, PERSISTENT, learn=learn, seed=5)


def _fan_graph(seed: int) -> Graph:
    """Long synapse rows: one neuron projects onto 70 (several weight-gradient chunks), 70 → 70 recurrent."""
    rng = np.random.default_rng(seed)
    g = Graph()
    g.add_input("in", 3)
    g.add_lif("hub", 1, theta=0.3)
    g.add_lif("wide", 70, alpha=rng.uniform(0.6, 0.95, 70), theta=0.8, reset="zero")
    g.connect("in", "hub", weight=np.full((1, 3), 0.5), delay=0)
    g.connect("hub", "wide", weight=rng.uniform(0.2, 1.2, (70, 1)), delay=rng.integers(1, 4, (70, 1)))
    weight = random_weight(70, 70, 0.3, seed)
    g.connect("wide", "wide", weight=weight * 2.0, delay=random_delays(weight, 1, 3, seed))
    g.connect("in", "wide", weight=random_weight(70, 3, 0.7, seed), delay=2)
    return g


LONG_ROWS = {**LOOPS, "per_step-deterministic": PER_STEP_DETERMINISTIC}


@pytest.mark.parametrize("backend", LONG_ROWS.values(), ids=list(LONG_ROWS))
def test_long_rows(backend: TritonOptions) -> None:
    """Rows longer than a gather block and than a weight-gradient chunk (summed atomically over
    chunks, or in one program per row when deterministic); several row blocks."""
    assert_matches_reference(snngraph.compile(_fan_graph(0)), backend, steps=8, seed=1, input_scale=2.0)


def test_deterministic_runs_repeat_bit_for_bit() -> None:
    """``deterministic=True``: two runs give the same bits, and the reference's numbers."""
    net = snngraph.compile(_fan_graph(2))
    runs = [assert_matches_reference(net, PER_STEP_DETERMINISTIC, steps=8, seed=2) for _ in range(2)]
    assert torch.equal(runs[0].membranes, runs[1].membranes)
    for name, grad in runs[0].grads.items():
        assert torch.equal(grad, runs[1].grads[name]), name


def test_small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Persistent loop re-reading the synapses at every step; weight gradient in many time blocks."""
    monkeypatch.setattr(geometry, "RESIDENT_TILE_BYTES", 0)
    monkeypatch.setattr(launch, "TIME_BLOCK", 3)
    assert_matches_reference(snngraph.compile(random_graph(6)), PERSISTENT, dtype=torch.float32, seed=6)


def test_no_recurrent_synapses() -> None:
    """Input → LIF only: neurons are independent; the persistent loop spans several blocks."""
    g = Graph()
    g.add_input("in", 9)
    g.add_lif("lif", 70, alpha=0.8, theta=0.6, reset="subtract")
    g.connect("in", "lif", weight=random_weight(70, 9, 0.6, 2) * 3.0, delay=1)
    net = snngraph.compile(g)
    assert net.rec_weight.size == 0
    assert_matches_reference(net, "triton", steps=6, batch=20, seed=2)


@pytest.mark.parametrize("saved_dtype", [torch.bfloat16, torch.float16])
def test_saved_membranes_rounded(saved_dtype: torch.dtype) -> None:
    """Backward from membranes saved in 16 bits (``saved_membranes``): same spikes, gradients close."""
    net = snngraph.compile(random_graph(4))
    options = {"backend": "triton", "surrogate": Sigmoid(5.0), "learn_alpha": True, "learn_theta": True}
    model = SNN(net, **options, dtype=torch.float32)
    low = SNN(net, **options, dtype=torch.float32, saved_membranes=saved_dtype)
    generator = torch.Generator().manual_seed(4)
    x = (torch.rand(10, 3, net.n_inputs, generator=generator) < 0.4).float()
    state = model.initial_state(3)
    full = run_with_grads(model, x, state, seed=4)
    rounded = run_with_grads(low, x, state, seed=4)
    assert torch.equal(full.spikes, rounded.spikes)
    for name, grad in full.grads.items():
        assert relative_error(rounded.grads[name], grad) < 0.02, name
