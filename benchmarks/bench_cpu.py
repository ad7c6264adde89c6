"""CPU benchmark: the cpu backend against dense PyTorch loops, snnTorch and Norse.

Usage: ``python benchmarks/bench_cpu.py [--quick] [--out PATH] [--repeats N]``

Every contender runs the same network (same weights, same input spikes):

* ``sparse``: 128 inputs → 2048 LIF (2% recurrent density, per-synapse delays 1…4) → 10 li
  readouts, batch 16, T = 100.  Contenders: snngraph (cpu backend) and the dense loop a
  user writes today: masked ``[D, N, N]`` recurrent weights, a Python time loop, autograd and a
  surrogate spike function.  Target: cpu ≥ 30× faster forward+backward.
* ``dense``: 700 → 1024 LIF (all-to-all recurrent, delay 1) → 20 li, batch 32, T = 100.
  Contenders: cpu, the reference backend, the best dense PyTorch loop (input and readout
  projections as one product each, one product per step), snnTorch ``RLeaky`` and Norse
  ``LIFRecurrent`` when installed.  Targets: cpu ≥ 2× faster than snnTorch and within 1.5×
  of the dense loop.
* ``scaling``: cpu forward+backward against the firing rate (input drive) and against N at
  a fixed fan-out of 40.

Neurons with two state variables run on both networks too, with the same weights times
:func:`hidden_gain` (so that they fire about as often as the LIF rows): CubaLIF (a synaptic
current, ``alpha_syn`` = 0.8) and SE-adLIF (an adaptation current) on the cpu backend,
against the LIF row (target on the sparse network: a two-state neuron costs at most 1.3× the
LIF time), and on the dense one snnTorch ``RSynaptic`` and Norse ``LIFRecurrent`` with a synaptic
current (target: snngraph's CubaLIF faster than both).

The neuron model is that of docs/design.md ("The model"): LIF with α = 0.9, θ = 1, reset by
subtraction detached from the backward pass (as snnTorch does), ATan surrogate of slope 2 (snnTorch's default), readouts
leaky integrators with α = 0.9 fed by the hidden spikes of the same step.  Norse's
``LIFRecurrent`` with ``tau_syn_inv = 1/dt`` is this LIF with reset to zero, so it is checked
against an snngraph twin with ``reset="zero"``.

Equivalence: hidden spikes and readout membranes of every contender against snngraph, in
float64.  Timing: float32, one warm-up, then ``--repeats`` rounds that run every contender in
turn (so that all see the same load), each for at least a second (a fast contender runs several
times, the round keeps the median); times are medians over rounds and ratios are medians over
rounds of the ratio within the round, so that a stretch of heavy load on the shared host hits
both sides of a ratio (a contender whose run takes more than 60 s / repeats joins fewer rounds,
paired with the first rounds); "forward" runs
under ``torch.no_grad()``, "fwd+bwd" is forward, loss = mean squared readout membrane, backward.
Memory: the peak resident set size during a forward+backward after a warm-up (the least of
3) over the resident set before the warm-up, so that what the steps keep between them (the cpu
backend's cached arrays) counts, measured in a fresh subprocess per contender, so that torch's CPU
allocator counts, with glibc's mmap threshold fixed at 64 KiB (freed arrays leave at once).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import scipy.sparse as sp
import torch
from torch import nn

import snngraph
from snngraph import SNN, Graph
from snngraph.surrogates import ATan

ALPHA, THETA, SLOPE = 0.9, 1.0, 2.0
ALPHA_SYN = 0.8  # the synaptic current's decay of the CubaLIF rows
NEURONS = {
    "lif": ("add_lif", {}),
    "CubaLIF": ("add_lif", {"alpha_syn": ALPHA_SYN}),
    "SE-adLIF": ("add_adlif", {"alpha_adapt": 0.97, "a": 0.5, "b": 2.0}),
}
"""The hidden neuron kinds of the snngraph rows: ``Graph`` method and parameters."""


def hidden_gain(neuron: str) -> float:
    """The factor on the hidden population's input and recurrent weights that keeps its firing
    rate near the LIF rows': a synaptic current sums ``1/(1 − alpha_syn)`` times the input of a
    step over time, adLIF scales its input current by ``1 − α``."""
    return {"lif": 1.0, "CubaLIF": 1 - ALPHA_SYN, "SE-adLIF": 1 / (1 - ALPHA)}[neuron]


RESULTS = Path(__file__).resolve().parent / "results" / "cpu.json"


# ------------------------------------------------------------------------------------------
# The networks.


@dataclass(frozen=True)
class Case:
    """Sizes of one benchmark network and its input."""

    name: str
    inputs: int
    hidden: int
    outputs: int
    density: float  # recurrent synapses per hidden pair
    max_delay: int  # recurrent delays uniform in 1 … max_delay
    batch: int
    steps: int
    gain: float  # input weight scale: sets the firing rate
    input_rate: float = 0.1
    seed: int = 0


SPARSE = Case("sparse", 128, 2048, 10, 0.02, 4, 16, 100, gain=0.5)
"""The sparse network (module docstring); ``QUICK_SPARSE`` its ``--quick`` size."""
QUICK_SPARSE = Case("sparse", 16, 256, 4, 0.05, 4, 4, 20, gain=1.0)


@dataclass(frozen=True, eq=False)
class Weights:
    """``w_in`` ``[N, C]``, recurrent synapses ``pre → post`` with ``delay``, ``w_out`` ``[O, N]``."""

    w_in: np.ndarray
    post: np.ndarray
    pre: np.ndarray
    delay: np.ndarray
    value: np.ndarray
    w_out: np.ndarray

    def dense_recurrent(self, max_delay: int) -> tuple[np.ndarray, np.ndarray]:
        """``W[d − 1, post, pre]`` and its 0/1 mask of synapses."""
        n = self.w_in.shape[0]
        weight, mask = np.zeros((max_delay, n, n)), np.zeros((max_delay, n, n))
        np.add.at(weight, (self.delay - 1, self.post, self.pre), self.value)
        mask[self.delay - 1, self.post, self.pre] = 1.0
        return weight, mask


def make_weights(case: Case) -> Weights:
    rng = np.random.default_rng(case.seed)
    n = case.hidden
    w_in = rng.normal(0.0, case.gain / np.sqrt(case.inputs * case.input_rate), (n, case.inputs))
    count = round(case.density * n * n)
    flat = np.sort(rng.choice(n * n, size=count, replace=False)) if count < n * n else np.arange(n * n)
    post, pre = np.unravel_index(flat, (n, n))
    value = rng.normal(0.0, 0.5 / np.sqrt(max(1.0, case.density * n)), flat.size)
    delay = rng.integers(1, case.max_delay + 1, flat.size)
    w_out = rng.normal(0.0, 1.0 / np.sqrt(n), (case.outputs, n))
    return Weights(w_in, post.astype(np.int64), pre.astype(np.int64), delay, value, w_out)


def make_input(case: Case, dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(case.seed + 1)
    shape = (case.steps, case.batch, case.inputs)
    return (torch.rand(shape, generator=generator) < case.input_rate).to(dtype)


def make_graph(
    case: Case, weights: Weights, reset: str = "subtract", neuron: str = "lif", recurrent: dict[str, Any] | None = None
) -> Graph:
    """The network of ``case``; ``recurrent`` adds or replaces attributes of the recurrent edge
    (``delay``, ``learn_delay``, … of :meth:`Graph.connect`)."""
    g = Graph()
    g.add_input("in", case.inputs)
    add, params = NEURONS[neuron]
    getattr(g, add)("h", case.hidden, alpha=ALPHA, theta=THETA, reset=reset, **params)
    gain = hidden_gain(neuron)
    g.add_li("out", case.outputs, alpha=ALPHA)
    g.connect("in", "h", weight=gain * weights.w_in, delay=0)
    matrix = sp.coo_array((gain * weights.value, (weights.post, weights.pre)), shape=(case.hidden, case.hidden))
    g.connect("h", "h", **{"weight": matrix, "delay": weights.delay, **(recurrent or {})})
    g.connect("h", "out", weight=weights.w_out, delay=0)  # the same step, as layer by layer
    return g


# ------------------------------------------------------------------------------------------
# The contenders: each maps x [T, B, C] to (hidden spikes [T, B, N], readout membrane [T, B, O]).


class SnnGraphModel(nn.Module):
    def __init__(
        self,
        case: Case,
        weights: Weights,
        dtype: torch.dtype,
        backend: str,
        reset: str = "subtract",
        neuron: str = "lif",
    ):
        super().__init__()
        net = snngraph.compile(make_graph(case, weights, reset, neuron))
        self.net = net
        self.snn = SNN(net, backend=backend, surrogate=ATan(SLOPE), detach_reset=True, dtype=dtype)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.snn(x)
        return out.spikes("h"), out.membrane("out")


class ATanSpike(torch.autograd.Function):
    """H(x) forward, ATan surrogate backward (snnTorch's default): (k/2) / (1 + (π k x / 2)²)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (SLOPE / 2) / (1 + (torch.pi / 2 * SLOPE * x) ** 2)


class DenseLoop(nn.Module):
    """The network in plain PyTorch: dense ``[D, N, N]`` recurrent weights (times a 0/1 mask
    of the synapses when ``masked``), a Python loop over time, autograd.

    With one delay and no mask this is the best dense loop: the input and readout projections
    are one product each, and each step does one product ``S[t−1] W_recᵀ``.
    """

    def __init__(self, case: Case, weights: Weights, dtype: torch.dtype, masked: bool):
        super().__init__()
        w_rec, mask = weights.dense_recurrent(case.max_delay)
        self.w_in = nn.Parameter(torch.tensor(weights.w_in, dtype=dtype))
        self.w_rec = nn.Parameter(torch.tensor(w_rec, dtype=dtype))
        self.w_out = nn.Parameter(torch.tensor(weights.w_out, dtype=dtype))
        self.register_buffer("mask", torch.tensor(mask, dtype=dtype) if masked else None)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        steps, batch, _ = x.shape
        w_rec = self.w_rec if self.mask is None else self.w_rec * self.mask
        w_rec_t = w_rec.transpose(1, 2).unbind(0)  # W_dᵀ, d = 1 … D
        current_in = x @ self.w_in.T
        u = x.new_zeros(batch, self.w_in.shape[0])
        history = [torch.zeros_like(u) for _ in w_rec_t]  # S[t − D], …, S[t − 1]
        spikes = []
        for t in range(steps):
            current = current_in[t]
            for d, weight in enumerate(w_rec_t, start=1):
                current = current + history[-d] @ weight
            u = ALPHA * u + current - THETA * history[-1].detach()
            s = ATanSpike.apply(u - THETA)
            history = [*history[1:], s]
            spikes.append(s)
        spikes_all = torch.stack(spikes)
        current_out = spikes_all @ self.w_out.T
        v, readout = torch.zeros_like(current_out[0]), []
        for t in range(steps):
            v = ALPHA * v + current_out[t]
            readout.append(v)
        return spikes_all, torch.stack(readout)


class SnnTorchModel(nn.Module):
    """snnTorch as its tutorials write it: Linear → RLeaky (all-to-all) → Linear → Leaky, or with
    ``synaptic`` Linear → RSynaptic (a synaptic current, ``alpha`` = :data:`ALPHA_SYN`).

    The spike function is :class:`ATanSpike`, the formula of ``snntorch.surrogate.atan``, which
    keeps the input's dtype (snnTorch's returns float32), so the model also runs in float64.
    """

    def __init__(self, case: Case, weights: Weights, dtype: torch.dtype, synaptic: bool = False):
        super().__init__()
        import snntorch

        n = case.hidden
        self.synaptic = synaptic
        self.fc_in = nn.Linear(case.inputs, n, bias=False)
        options = {"threshold": THETA, "linear_features": n, "all_to_all": True, "reset_mechanism": "subtract"}
        if synaptic:
            self.lif = snntorch.RSynaptic(alpha=ALPHA_SYN, beta=ALPHA, spike_grad=ATanSpike.apply, **options)
        else:
            self.lif = snntorch.RLeaky(beta=ALPHA, spike_grad=ATanSpike.apply, **options)
        self.fc_out = nn.Linear(n, case.outputs, bias=False)
        self.readout = snntorch.Leaky(beta=ALPHA, reset_mechanism="none")
        w_rec, _ = weights.dense_recurrent(1)
        gain = hidden_gain("CubaLIF" if synaptic else "lif")
        with torch.no_grad():
            self.fc_in.weight.copy_(torch.tensor(gain * weights.w_in))
            self.lif.recurrent.weight.copy_(torch.tensor(gain * w_rec[0]))
            self.lif.recurrent.bias.zero_()
            self.fc_out.weight.copy_(torch.tensor(weights.w_out))
        self.to(dtype)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state = self.lif.reset_mem()  # (spk, mem), or (spk, syn, mem) with a synaptic current
        mem_out = self.readout.reset_mem()
        spikes, readout = [], []
        for t in range(x.shape[0]):
            state = self.lif(self.fc_in(x[t]), *state)
            spk = state[0]
            _, mem_out = self.readout(self.fc_out(spk), mem_out)
            spikes.append(spk)
            readout.append(mem_out)
        return torch.stack(spikes), torch.stack(readout)


class NorseModel(nn.Module):
    """Norse ``LIFRecurrent`` → Linear → ``LI``, with ``tau_syn_inv = 1/dt`` (no synaptic
    current: the box LIF of docs/design.md, "The model", with reset to zero) and weights scaled by 1/(1 − α).

    With ``synaptic``, ``tau_syn_inv = (1 − ALPHA_SYN)/dt``: Norse's current-based LIF, whose
    current ``i[t] = β·i[t−1] + I[t]`` enters ``v[t] = α·v[t−1] + (1 − α)·i[t]``, the CubaLIF with
    reset to zero and the same weight scale."""

    def __init__(self, case: Case, weights: Weights, dtype: torch.dtype, synaptic: bool = False):
        super().__init__()
        import norse.torch as norse

        dt = 1e-3
        tau_syn_inv = (1 - ALPHA_SYN) / dt if synaptic else 1 / dt
        tau_mem_inv = (1 - ALPHA) / dt
        scale = 1 / (1 - ALPHA)
        gain = hidden_gain("CubaLIF" if synaptic else "lif")
        w_rec, _ = weights.dense_recurrent(1)
        p = norse.LIFParameters(
            tau_syn_inv=torch.tensor(tau_syn_inv),
            tau_mem_inv=torch.tensor(tau_mem_inv),
            v_leak=torch.tensor(0.0),
            v_th=torch.tensor(THETA),
            v_reset=torch.tensor(0.0),
            method="super",
        )
        self.lif = norse.LIFRecurrent(
            case.inputs,
            case.hidden,
            p=p,
            dt=dt,
            autapses=True,
            # as Parameters: Norse keeps a plain tensor that is passed in as a constant
            input_weights=nn.Parameter(torch.tensor(weights.w_in * scale * gain, dtype=dtype)),
            recurrent_weights=nn.Parameter(torch.tensor(w_rec[0] * scale * gain, dtype=dtype)),
        )
        self.fc_out = nn.Linear(case.hidden, case.outputs, bias=False)
        with torch.no_grad():
            self.fc_out.weight.copy_(torch.tensor(weights.w_out * scale))
        self.readout = norse.LI(p=norse.LIParameters(tau_syn_inv=torch.tensor(1 / dt), tau_mem_inv=tau_mem_inv), dt=dt)
        self.to(dtype)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spikes, _ = self.lif(x)
        readout, _ = self.readout(self.fc_out(spikes))
        return spikes, readout


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


Builder = Callable[[Case, Weights, torch.dtype], nn.Module]
CPU = "snngraph cpu"


@dataclass(frozen=True)
class Contender:
    """How to build a contender, and the snngraph twin it must equal: its hidden neuron kind
    (:data:`NEURONS`) and reset."""

    build: Builder
    neuron: str = "lif"
    reset: str = "subtract"


def _snngraph(backend: str, neuron: str = "lif") -> Contender:
    return Contender(lambda c, w, dt: SnnGraphModel(c, w, dt, backend, neuron=neuron), neuron)


def contenders(case: Case) -> dict[str, Contender]:
    """The contenders of a case (the first is the baseline of the ratios)."""
    table = {CPU: _snngraph("cpu")}
    for neuron in ("CubaLIF", "SE-adLIF"):
        table[f"{CPU}, {neuron}"] = _snngraph("cpu", neuron)
    if case.name == "sparse":
        table["dense torch loop, masked [D,N,N]"] = Contender(lambda c, w, dt: DenseLoop(c, w, dt, masked=True))
    if case.name == "dense":
        table["snngraph reference"] = _snngraph("reference")
        table["best dense torch loop"] = Contender(lambda c, w, dt: DenseLoop(c, w, dt, masked=False))
        if _installed("snntorch"):
            table["snnTorch RLeaky"] = Contender(SnnTorchModel)
            table["snnTorch RSynaptic"] = Contender(lambda c, w, dt: SnnTorchModel(c, w, dt, True), "CubaLIF")
        if _installed("norse"):
            table["Norse LIFRecurrent"] = Contender(NorseModel, reset="zero")
            synaptic = Contender(lambda c, w, dt: NorseModel(c, w, dt, True), "CubaLIF", "zero")
            table["Norse LIFRecurrent, synaptic current"] = synaptic
    return table


# ------------------------------------------------------------------------------------------
# Measurements.


def train_step(model: nn.Module, x: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    _, readout = model(x)
    readout.pow(2).mean().backward()


def _timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def time_models(
    models: dict[str, nn.Module], x: torch.Tensor, repeats: int, budget_s: float = 60.0, round_s: float = 1.0
) -> dict[str, dict[str, Any]]:
    """Forward and forward+backward times (ms) of every model, per round and their medians
    (:func:`time_rounds`); "forward" runs under ``torch.no_grad()``, "train" is :func:`train_step`."""

    def forward(model: nn.Module) -> None:
        with torch.no_grad():
            model(x)

    runs = {
        name: {"forward": lambda m=model: forward(m), "train": lambda m=model: train_step(m, x)}
        for name, model in models.items()
    }
    samples = time_rounds(runs, repeats, budget_s, round_s, warm_up="forward")
    return {
        name: {
            "forward_ms": statistics.median(times["forward"]),
            "train_ms": statistics.median(times["train"]),
            "rounds": len(times["train"]),
            "samples_ms": times,
        }
        for name, times in samples.items()
    }


def time_rounds(
    runs: dict[str, dict[str, Callable[[], Any]]],
    repeats: int,
    budget_s: float = 60.0,
    round_s: float = 1.0,
    warm_up: str | None = None,
) -> dict[str, dict[str, list[float]]]:
    """The times (ms) of every contender's runs ``{kind: run}``, one median per round and kind.

    One warm-up each (plans, caches, allocator: the run ``warm_up``, then the last kind, which
    is timed to size the rounds), then ``repeats`` rounds that time every contender in turn, so
    that all see the same load of the machine: within a round a run repeats until ``round_s``
    has passed (a fast contender is timed over about the same stretch of time as a slow one) and
    the round keeps the median of its runs.  A contender whose warm-up of the last kind takes
    longer than ``budget_s / repeats`` joins fewer rounds.
    """
    rounds = {}
    for name, run in runs.items():
        if warm_up is not None:
            run[warm_up]()
        rounds[name] = max(1, min(repeats, int(budget_s / _timed(list(run.values())[-1]))))
    samples: dict[str, dict[str, list[float]]] = {name: {kind: [] for kind in run} for name, run in runs.items()}
    for r in range(repeats):
        for name, run in runs.items():
            if r < rounds[name]:
                for kind, call in run.items():
                    times, start = [], time.perf_counter()
                    while not times or time.perf_counter() - start < round_s:
                        times.append(1e3 * _timed(call))
                    samples[name][kind].append(statistics.median(times))
    return samples


def round_ratios(mine: list[float], theirs: list[float]) -> list[float]:
    """Per round, the time ``mine`` ÷ the time ``theirs`` of the same round."""
    return [a / b for a, b in zip(mine, theirs, strict=False)]


def paired_ratio(row: dict[str, Any], base: dict[str, Any], kind: str) -> float:
    """The median over rounds of ``row``'s time ÷ ``base``'s time in the same round."""
    return statistics.median(round_ratios(row["samples_ms"][kind], base["samples_ms"][kind]))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def step_peak_rss(model: nn.Module, x: torch.Tensor, runs: int) -> int:
    """Peak RSS (bytes) of a training step of ``model`` after a warm-up over the RSS before the
    warm-up, the least of ``runs``: memory that the steps keep between them (a backend's cached
    arrays) counts."""
    before = _status_kib("VmRSS")
    train_step(model, x)
    peaks = []
    for _ in range(runs):
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        train_step(model, x)
        peaks.append(1024 * (_status_kib("VmHWM") - before))
    return min(peaks)


def peak_memory(case: Case, contender: str, runs: int = 3) -> int:
    """:func:`step_peak_rss` of ``contender`` on ``case``."""
    model = contenders(case)[contender].build(case, make_weights(case), torch.float32)
    return step_peak_rss(model, make_input(case, torch.float32), runs)


def memory_subprocess(script: str, case_json: str, contender: str) -> int | None:
    """The bytes that ``script --memory CASE_JSON CONTENDER`` prints, run by a fresh interpreter
    (None where /proc cannot measure it, or where the run fails)."""
    if not Path("/proc/self/clear_refs").exists():
        return None
    command = [sys.executable, script, "--threads", str(torch.get_num_threads()), "--memory", case_json, contender]
    # large blocks always mmap-ed, so that freed arrays leave the resident set at once
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 16)}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        print(f"  memory of {contender!r} failed: {result.stderr.strip().splitlines()[-1:]}")
        return None
    return int(result.stdout.strip().splitlines()[-1])


def measure_memory(case: Case, contender: str) -> int | None:
    """:func:`peak_memory` in a fresh subprocess."""
    return memory_subprocess(__file__, json.dumps(asdict(case)), contender)


def compare(got: tuple[torch.Tensor, torch.Tensor], want: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
    spikes, readout = got
    differing = int((spikes != want[0]).sum())
    return {
        "spikes_differing": differing,
        "spike_count": int(spikes.sum()),
        "reference_spike_count": int(want[0].sum()),
        "readout_max_abs_diff": float((readout - want[1]).abs().max()),
    }


def equivalence(case: Case, weights: Weights, name: str, contender: Contender) -> dict[str, Any]:
    """Spikes and readout of ``name`` against its snngraph twin (the same neuron kind and reset),
    float64, and the weights a training step reaches: a peer must train its input, recurrent and
    readout weights, as snngraph does, or its backward pass would skip work."""
    x = make_input(case, torch.float64)
    reset, neuron = contender.reset, contender.neuron
    model = contender.build(case, weights, torch.float64)
    with torch.no_grad():
        want = SnnGraphModel(case, weights, torch.float64, "cpu", reset, neuron)(x)
        got = model(x)
    train_step(model, x)
    trained = [param for param, value in model.named_parameters() if value.grad is not None]
    if not name.startswith("snngraph") and len(trained) < 3:
        raise RuntimeError(f"{name}: a training step reaches only {trained}; expected input, recurrent and readout")
    twin = f"snngraph cpu, {neuron}, reset={reset!r}, float64"
    return {"checked_against": twin, "trained": trained, **compare(got, want)}


def hidden_rate(case: Case) -> float:
    model = SnnGraphModel(case, make_weights(case), torch.float32, "cpu")
    with torch.no_grad():
        spikes, _ = model(make_input(case, torch.float32))
    return float(spikes.mean())


def calibrate(case: Case, rate: float, iterations: int = 8) -> Case:
    """The case with the input gain that gives a hidden firing rate near ``rate`` (bisection)."""
    low, high = np.log(0.02), np.log(50.0)
    for _ in range(iterations):
        middle = (low + high) / 2
        if hidden_rate(Case(**{**asdict(case), "gain": float(np.exp(middle))})) < rate:
            low = middle
        else:
            high = middle
    return Case(**{**asdict(case), "gain": float(np.exp((low + high) / 2))})


def describe(case: Case) -> str:
    delays = f"delays 1…{case.max_delay}" if case.max_delay > 1 else "delay 1"
    return (
        f"{case.inputs} → {case.hidden} LIF ({100 * case.density:g}% recurrent, {delays}) → "
        f"{case.outputs} li, B={case.batch}, T={case.steps}"
    )


def run_case(case: Case, repeats: int, round_s: float) -> dict[str, Any]:
    weights = make_weights(case)
    x = make_input(case, torch.float32)
    rate = hidden_rate(case)
    print(f"\n{case.name}: {describe(case)}, hidden firing rate {100 * rate:.1f}%")
    builders = contenders(case)
    models = {name: contender.build(case, weights, torch.float32) for name, contender in builders.items()}
    timings = time_models(models, x, repeats, round_s=round_s)
    rows = []
    for name, contender in builders.items():
        row: dict[str, Any] = {"contender": name, "hidden_rate": rate}
        if name != CPU:
            row.update(equivalence(case, weights, name, contender))
            row["hidden_rate"] = row["spike_count"] / (case.steps * case.batch * case.hidden)
        row.update(timings[name])
        memory = measure_memory(case, name)
        row["peak_rss_mib"] = None if memory is None else memory / 2**20
        rows.append(row)
    base = rows[0]
    for row in rows:
        row["forward_ratio"] = paired_ratio(row, base, "forward")
        row["train_ratio"] = paired_ratio(row, base, "train")
    print_rows(rows)
    net = SnnGraphModel(case, weights, torch.float32, "cpu").net
    predicted = net.memory_bytes(case.steps, case.batch)
    print(f"  CompiledNetwork.memory_bytes (float32): { {k: f'{v / 2**20:.1f} MiB' for k, v in predicted.items()} }")
    return {
        "config": asdict(case),
        "description": describe(case),
        "hidden_rate": rate,
        "rows": rows,
        "memory_bytes_prediction": predicted,
    }


def print_rows(rows: list[dict[str, Any]]) -> None:
    header = ("contender", "rate %", "forward ms", "fwd+bwd ms", "peak RSS MiB", "÷ cpu (fwd, fwd+bwd)")
    print("  {:38s} {:>6s} {:>11s} {:>11s} {:>13s}  {:>23s}  spikes".format(*header))
    for row in rows:
        memory = "n/a" if row["peak_rss_mib"] is None else f"{max(0.0, row['peak_rss_mib']):.0f}"
        if "spikes_differing" not in row:
            check = "(baseline)"
        elif row["spikes_differing"] == 0:
            check = "identical"
        else:
            check = f"{row['spikes_differing']} differ ({row['spike_count']} vs {row['reference_spike_count']} spikes)"
        ratios = f"{row['forward_ratio']:.1f}×, {row['train_ratio']:.1f}×"
        times = f"{row['forward_ms']:11.1f} {row['train_ms']:11.1f}"
        rate = f"{100 * row['hidden_rate']:6.1f}"
        print(f"  {row['contender']:38s} {rate} {times} {memory:>13s}  {ratios:>23s}  {check}")


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The performance targets on forward+backward time, each with the measured ratio it bounds."""
    cuba, adlif = f"{CPU}, CubaLIF", f"{CPU}, SE-adLIF"
    wanted = [  # (case, numerator, denominator of the ratio of fwd+bwd times, relation, bound)
        ("sparse", "dense torch loop, masked [D,N,N]", CPU, ">=", 30.0),
        ("sparse", cuba, CPU, "<=", 1.3),
        ("sparse", adlif, CPU, "<=", 1.3),
        ("dense", "snnTorch RLeaky", CPU, ">=", 2.0),
        ("dense", CPU, "best dense torch loop", "<=", 1.5),
        ("dense", "snnTorch RSynaptic", cuba, ">=", 1.0),
        ("dense", "Norse LIFRecurrent, synaptic current", cuba, ">=", 1.0),
    ]
    targets = []
    for case, top, bottom, relation, bound in wanted:
        rows = {row["contender"]: row for row in results[case]["rows"]}
        value = None
        if top in rows and bottom in rows:
            value = paired_ratio(rows[top], rows[bottom], "train")
        name = f"{top} / {bottom}"
        met = None if value is None else bool(value >= bound if relation == ">=" else value <= bound)
        targets.append({"case": case, "ratio": name, "value": value, "target": f"{relation} {bound:g}", "met": met})
    return targets


def run_scaling(base: Case, rates: list[float], sizes: list[int], repeats: int) -> dict[str, Any]:
    """cpu-backend forward+backward time against the firing rate and against N at fan-out 40."""
    print(f"\nscaling: cpu backend forward+backward, fan-out 40, B={base.batch}, T={base.steps}")
    rows = []
    for rate in rates:
        case = calibrate(base, rate)
        rows.append(scaling_row(case, "rate", repeats))
    for n in sizes:
        case = calibrate(Case(**{**asdict(base), "hidden": n, "density": 40 / n}), rates[len(rates) // 2])
        rows.append(scaling_row(case, "size", repeats))
    print(f"  {'sweep':6s} {'N':>6s} {'synapses':>9s} {'rate %':>7s} {'fwd+bwd ms':>11s} {'ns per spike·synapse':>21s}")
    for row in rows:
        print(
            f"  {row['sweep']:6s} {row['hidden']:6d} {row['recurrent_synapses']:9d} "
            f"{100 * row['rate']:7.2f} {row['train_ms']:11.1f} {row['ns_per_spike_synapse']:21.2f}"
        )
    by_size = [row for row in rows if row["sweep"] == "size"]
    if len(by_size) > 1:
        first, last = by_size[0], by_size[-1]
        n_factor = last["hidden"] / first["hidden"]
        time_factor = last["train_ms"] / first["train_ms"]
        print(
            f"  N × {n_factor:.0f} at fixed fan-out: time × {time_factor:.1f} "
            f"(synapses × {last['recurrent_synapses'] / first['recurrent_synapses']:.1f}, N² × {n_factor**2:.0f})"
        )
    return {"rows": rows}


def scaling_row(case: Case, sweep: str, repeats: int) -> dict[str, Any]:
    weights = make_weights(case)
    model = SnnGraphModel(case, weights, torch.float32, "cpu")
    x = make_input(case, torch.float32)
    timing = time_models({CPU: model}, x, repeats, round_s=0.0)[CPU]  # one contender: nothing to pair
    with torch.no_grad():
        spikes, _ = model(x)
    events = float(spikes.sum())
    synapse_events = events * weights.value.size / case.hidden
    return {
        "sweep": sweep,
        "hidden": case.hidden,
        "recurrent_synapses": int(weights.value.size),
        "gain": case.gain,
        "rate": float(spikes.mean()),
        "forward_ms": timing["forward_ms"],
        "train_ms": timing["train_ms"],
        "ns_per_spike_synapse": 1e6 * timing["train_ms"] / max(1.0, synapse_events),
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = models[0] if models else cpu
    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    versions["scipy"] = scipy.__version__
    for module in ("snntorch", "norse"):
        if _installed(module):
            versions[module] = __import__(module).__version__
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_at_start": os.getloadavg(),
    }


def arguments(description: str, results: Path, repeats: str) -> argparse.Namespace:
    """The command line of a benchmark script (``--quick``, ``--out``, ``--repeats``, ``--threads``
    and the ``--memory CASE_JSON CONTENDER`` of its memory subprocess); applies ``--threads``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in seconds")
    parser.add_argument("--out", type=Path, help=f"JSON results (default {results}; none with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help=repeats)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--memory", nargs=2, metavar=("CASE_JSON", "CONTENDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return args


def write_report(report: dict[str, Any], args: argparse.Namespace, results: Path) -> None:
    """Write ``report`` as JSON to ``--out``, or to ``results`` unless ``--quick``."""
    out = args.out if args.out is not None or args.quick else results
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=float) + "\n")
        print(f"\nwrote {out}")


def main() -> None:
    args = arguments(__doc__.splitlines()[0], RESULTS, "timed runs per measurement (median)")
    if args.memory:
        print(peak_memory(Case(**json.loads(args.memory[0])), args.memory[1]))
        return
    torch.manual_seed(0)
    if args.quick:
        cases = [
            QUICK_SPARSE,
            Case("dense", 32, 128, 4, 1.0, 1, 4, 20, gain=1.0),
        ]
        scaling = Case("scaling", 16, 256, 4, 40 / 256, 4, 4, 20, gain=1.0)
        rates, sizes, repeats = [0.05], [256, 512], args.repeats or 2
    else:
        cases = [
            SPARSE,
            Case("dense", 700, 1024, 20, 1.0, 1, 32, 100, gain=0.5),
        ]
        scaling = Case("scaling", 128, 2048, 10, 40 / 2048, 4, 16, 100, gain=0.5)
        rates, sizes, repeats = [0.01, 0.05, 0.2], [1024, 2048, 4096, 8192], args.repeats or 5
    info = machine()
    print(f"{info['cpu']}, {info['cores']} cores, torch threads {info['torch_threads']}, {info['versions']}")
    print(f"load average at start {info['load_average_at_start']} (a shared machine: other jobs may run)")
    round_s = 0.0 if args.quick else 1.0
    results: dict[str, Any] = {case.name: run_case(case, repeats, round_s) for case in cases}
    results["scaling"] = run_scaling(scaling, rates, sizes, repeats)
    targets = check_targets(results)
    print("\ntargets:")
    for target in targets:
        value = "n/a" if target["value"] is None else f"{target['value']:.2f}"
        verdict = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
        print(f"  {target['case']:7s} {target['ratio']:45s} {value:>6s} (target {target['target']}): {verdict}")
    info["load_average_at_end"] = os.getloadavg()
    info["note"] = (
        f"the {info['cores']} cores were shared with other jobs during the run (see the load averages); "
        "the ratios come from one run: per round, contenders measured side by side, median of the per-round ratios"
    )
    if args.threads == 1:
        info["note"] += (
            "; torch ran one thread (--threads 1): with two threads on the shared cores, every parallel "
            "torch call waited for a descheduled worker (3-8x slower, for every contender)"
        )
    report = {"machine": info, "quick": args.quick, "repeats": repeats, "results": results, "targets": targets}
    write_report(report, args, RESULTS)


if __name__ == "__main__":
    main()
