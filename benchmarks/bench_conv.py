"""CPU benchmark of convolutional SNNs: the cpu backend against snnTorch and Norse.

Usage: ``python benchmarks/bench_conv.py [--quick] [--out PATH] [--repeats N] [--threads N]``

Every contender runs the same feed-forward spiking CNN (same weights, same input spikes), built
layer by layer: snngraph as a graph of shaped populations (``connect_conv``, ``connect_pool``,
``connect``, all with delay 0, so that the compiler's retiming gives the layered semantics) and
the peers as ``torch.nn.functional.conv2d`` / ``avg_pool2d(divisor_override=1)`` (a sum pooling)
/ ``linear`` with their neurons in a Python loop over time:

* ``digits``: (1, 8, 8) → conv 8 ch 3×3 pad 1 → LIF → sum pool 2 → LIF → conv 16 ch 3×3 pad 1
  → LIF → dense 10 li; B = 64, T = 25, Bernoulli input at 20% (the rate coding of the 8×8
  digits, whose mean intensity is about 0.3).
* ``nmnist``: (2, 34, 34) → conv 16 ch 5×5 → LIF → sum pool 2 → LIF → conv 32 ch 5×5 → LIF →
  sum pool 2 → LIF → dense 10 li (the snnTorch N-MNIST tutorial's network, 14 400 + 3 600 +
  3 872 + 800 + 10 neurons); B = 32, T = 100, Bernoulli input swept over 0.5%, 2%, 5% and 10%
  of the pixels per step (N-MNIST has roughly 1–5% per 1 ms bin).

Weights: PyTorch's default init of each layer (``seed``) times a gain per layer.  The gains
of the convolutions are calibrated (bisection, for each input rate) so that the LIF population
after each convolution fires about :data:`TARGET_RATE` of its neuron-steps; the LIF after a sum
pooling then fires at whatever rate its 2×2 window of spikes gives it.  The hidden rates are
reported per population.

Neurons: LIF with α = 0.9, θ = 1 and reset to zero, ``U[t] = α·U[t−1]·(1 − S[t−1]) + I[t]``
(docs/model.md), the reset that both peers implement exactly: snnTorch ``Leaky(beta=α,
reset_mechanism="zero")`` and Norse ``LIFBoxCell`` (``v_reset = 0``, ``tau_mem_inv = (1 − α)/dt``,
its input scaled by ``1/(1 − α)``).  Norse's subtractive reset lowers the membrane before the
decay (``α·(U − θ)``), which is not snngraph's (nor snnTorch's) ``α·U − θ``.  The readout is a
leaky integrator (snnTorch ``Leaky(reset_mechanism="none")``, Norse ``LIBoxCell``).  snngraph
and snnTorch detach the reset and use the ATan surrogate of slope 2; Norse differentiates its
reset and uses its own SuperSpike surrogate (which changes gradient values, not the work).

Equivalence: before timing, each peer's spikes in every LIF population and its readout
membrane are compared with snngraph's in float64; a case whose spikes differ is not timed.
Timing (float32): :func:`bench_cpu.time_models`, which runs the contenders in turn within each
round, and ratios are medians over rounds of the ratio within a round (``paired_ratio``);
"fwd+bwd" is one training step: forward, loss = mean squared readout membrane, backward.
Memory: the peak resident set size (VmHWM) during one training step after a warm-up, over the
resident set before the warm-up (what the steps keep between them counts), in a fresh
subprocess per contender (glibc's mmap threshold at 64 KiB).
Then one snngraph training step of the N-MNIST network at 2% input is profiled (cProfile).
"""

from __future__ import annotations

import cProfile
import json
import math
import os
import pstats
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cpu import (
    ATanSpike,
    _installed,
    _timed,
    arguments,
    machine,
    memory_subprocess,
    paired_ratio,
    step_peak_rss,
    time_models,
    train_step,
    write_report,
)

import snngraph
from snngraph import SNN, Graph
from snngraph.backends import CpuOptions
from snngraph.surrogates import ATan

ALPHA, THETA, SLOPE, DT = 0.9, 1.0, 2.0, 1e-3
TARGET_RATE = 0.03
"""The firing rate of the LIF populations right after a convolution that the gains aim at."""
RESULTS = Path(__file__).resolve().parent / "results" / "conv.json"


# ------------------------------------------------------------------------------------------
# The networks.


@dataclass(frozen=True)
class Layer:
    """One projection: ``conv`` (``channels``, ``kernel``, ``padding``), ``pool`` (a 2×2 sum) or
    ``dense`` (``channels`` outputs), into a population named ``name`` (LIF, or the li readout
    for the last layer)."""

    name: str
    kind: str
    channels: int = 0
    kernel: int = 2
    padding: int = 0


@dataclass(frozen=True)
class ConvCase:
    name: str
    in_shape: tuple[int, int, int]
    layers: tuple[Layer, ...]
    batch: int
    steps: int
    input_rate: float
    gains: tuple[float, ...] = ()  # one per conv or dense layer; () = not calibrated yet (all 1)
    seed: int = 0

    @classmethod
    def from_json(cls, text: str) -> ConvCase:
        d = json.loads(text)
        d.update(in_shape=tuple(d["in_shape"]), gains=tuple(d["gains"]), layers=tuple(Layer(**x) for x in d["layers"]))
        return cls(**d)

    def shapes(self) -> list[tuple[int, ...]]:
        """The output shape of every layer."""
        shape, shapes = self.in_shape, []
        for layer in self.layers:
            if layer.kind == "conv":
                h, w = (n + 2 * layer.padding - layer.kernel + 1 for n in shape[1:])
                shape = (layer.channels, h, w)
            elif layer.kind == "pool":
                shape = (shape[0], shape[1] // 2, shape[2] // 2)
            else:
                shape = (layer.channels,)
            shapes.append(shape)
        return shapes

    def describe(self) -> str:
        parts = [f"{self.in_shape}"]
        for layer, shape in zip(self.layers, self.shapes(), strict=True):
            op = {"conv": f"conv {layer.channels}×{layer.kernel}²" + (f" pad {layer.padding}" * bool(layer.padding))}
            op.update(pool="sum pool 2", dense=f"dense {layer.channels}")
            neuron = "li" if layer is self.layers[-1] else "LIF"
            parts.append(f"{op[layer.kind]} → {neuron} {shape}")
        return " → ".join(parts) + f", B={self.batch}, T={self.steps}, input {100 * self.input_rate:g}%"


def digits_case() -> ConvCase:
    layers = (
        Layer("c1", "conv", 8, 3, 1),
        Layer("p1", "pool"),
        Layer("c2", "conv", 16, 3, 1),
        Layer("out", "dense", 10),
    )
    return ConvCase("digits", (1, 8, 8), layers, batch=64, steps=25, input_rate=0.2)


def nmnist_case(rate: float) -> ConvCase:
    layers = (
        Layer("c1", "conv", 16, 5),
        Layer("p1", "pool"),
        Layer("c2", "conv", 32, 5),
        Layer("p2", "pool"),
        Layer("out", "dense", 10),
    )
    return ConvCase(f"nmnist {100 * rate:g}%", (2, 34, 34), layers, batch=32, steps=100, input_rate=rate)


def make_weights(case: ConvCase) -> list[np.ndarray | None]:
    """The kernel ``(C_out, C_in, k, k)`` or dense ``(post, pre)`` weight of each layer (None for a
    pooling): PyTorch's default init (uniform on ±1/√fan_in) times the layer's gain."""
    rng = np.random.default_rng(case.seed)
    gains = iter(case.gains or (1.0,) * len(case.layers))
    weights, pre_shape = [], case.in_shape
    for layer, shape in zip(case.layers, case.shapes(), strict=True):
        if layer.kind == "pool":
            weights.append(None)
        else:
            size = (layer.channels, pre_shape[0], layer.kernel, layer.kernel)
            if layer.kind == "dense":
                size = (layer.channels, math.prod(pre_shape))
            bound = 1 / math.sqrt(math.prod(size[1:]))
            weights.append(next(gains) * rng.uniform(-bound, bound, size))
        pre_shape = shape
    return weights


def make_input(case: ConvCase, dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(case.seed + 1)
    shape = (case.steps, case.batch, *case.in_shape)
    return (torch.rand(shape, generator=generator) < case.input_rate).to(dtype)


def make_graph(case: ConvCase, weights: list[np.ndarray | None]) -> Graph:
    g = Graph()
    g.add_input("x", case.in_shape)
    pre = "x"
    for layer, weight in zip(case.layers, weights, strict=True):
        if layer is case.layers[-1]:
            g.add_li(layer.name, layer.channels, alpha=ALPHA)
        else:
            g.add_lif(layer.name, alpha=ALPHA, theta=THETA, reset="zero")
        if layer.kind == "conv":
            g.connect_conv(pre, layer.name, kernel=weight, padding=layer.padding, delay=0)
        elif layer.kind == "pool":
            g.connect_pool(pre, layer.name, kind="sum", kernel_size=2, delay=0)
        else:
            g.connect(pre, layer.name, weight=weight, delay=0)
        pre = layer.name
    return g


# ------------------------------------------------------------------------------------------
# The contenders: each maps x [T, B, C, H, W] to ({LIF population: spikes [T, B, size]} when
# ``record`` is set, else {}; readout membrane [T, B, 10]).


class SnnGraphConv(nn.Module):
    """snngraph's CPU backend with its default options (the large convolution edges run as
    convolutions, ``CpuOptions.conv_min_synapses``)."""

    options = CpuOptions()

    def __init__(self, case: ConvCase, weights: list[np.ndarray | None], dtype: torch.dtype):
        super().__init__()
        self.case, self.record = case, False
        self.net = snngraph.compile(make_graph(case, weights))
        self.snn = SNN(self.net, backend=self.options, surrogate=ATan(SLOPE), detach_reset=True, dtype=dtype)

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        out = self.snn(x)
        hidden = self.case.layers[:-1]
        spikes = {layer.name: out.spikes(layer.name) for layer in hidden} if self.record else {}
        return spikes, out.membrane(self.case.layers[-1].name)


class SnnGraphSynapses(SnnGraphConv):
    """The same, its convolution edges run as sparse synapses (``CpuOptions(conv_min_synapses=math.inf)``)."""

    options = CpuOptions(conv_min_synapses=math.inf)


class LayeredConv(nn.Module):
    """The network as a torch user writes it: one ``conv2d`` / sum pooling / ``linear`` and one
    neuron step per layer and time step.  Subclasses give the neurons (:meth:`neuron`) and the
    factor ``scale`` on every layer's input current."""

    scale = 1.0

    def __init__(self, case: ConvCase, weights: list[np.ndarray | None], dtype: torch.dtype):
        super().__init__()
        self.case, self.record = case, False
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.tensor(self.scale * w, dtype=dtype)) for w in weights if w is not None]
        )
        self.weight_index = list(np.cumsum([w is not None for w in weights]) - 1)
        self.to(dtype)

    def current(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """The input current of layer ``index`` from the spikes ``x`` of the layer before."""
        layer = self.case.layers[index]
        if layer.kind == "pool":
            return F.avg_pool2d(x, 2, divisor_override=1) * self.scale
        weight = self.weights[self.weight_index[index]]
        if layer.kind == "conv":
            return F.conv2d(x, weight, padding=layer.padding)
        return F.linear(x.flatten(1), weight)

    def neuron(self, index: int, current: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """(spikes or readout membrane, new state) of layer ``index``; ``state`` None at t = 0."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        layers = self.case.layers
        states: list[Any] = [None] * len(layers)
        spikes: dict[str, list[torch.Tensor]] = {layer.name: [] for layer in layers[:-1]}
        readout = []
        for t in range(x.shape[0]):
            out = x[t]
            for i, layer in enumerate(layers):
                out, states[i] = self.neuron(i, self.current(i, out), states[i])
                if self.record and i < len(layers) - 1:
                    spikes[layer.name].append(out.flatten(1))
            readout.append(out)
        return {k: torch.stack(v) for k, v in spikes.items() if v}, torch.stack(readout)


class SnnTorchConv(LayeredConv):
    """snnTorch ``Leaky`` neurons (reset to zero; the readout without reset), the spike function
    :class:`bench_cpu.ATanSpike` (snnTorch's ATan formula, keeping the input's dtype)."""

    def __init__(self, case: ConvCase, weights: list[np.ndarray | None], dtype: torch.dtype):
        import snntorch

        super().__init__(case, weights, dtype)
        beta = torch.tensor(ALPHA, dtype=dtype)  # snnTorch makes a float32 tensor of a float: 0.9 + 2.4e-8
        neurons = [
            snntorch.Leaky(beta=beta, threshold=THETA, spike_grad=ATanSpike.apply, reset_mechanism="zero")
            for _ in case.layers[:-1]
        ]
        self.lifs = nn.ModuleList([*neurons, snntorch.Leaky(beta=beta, reset_mechanism="none")])
        self.to(dtype)

    def neuron(self, index: int, current: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        lif = self.lifs[index]
        spk, mem = lif(current, lif.reset_mem() if state is None else state)
        return (mem if index == len(self.lifs) - 1 else spk), mem


class NorseConv(LayeredConv):
    """Norse ``LIFBoxCell`` (reset to zero) and a ``LIBoxCell`` readout, ``tau_mem_inv = (1 − α)/dt``;
    every current scaled by ``1/(1 − α)`` (Norse integrates ``(1 − α)·i``)."""

    scale = 1 / (1 - ALPHA)

    def __init__(self, case: ConvCase, weights: list[np.ndarray | None], dtype: torch.dtype):
        import norse.torch as norse

        super().__init__(case, weights, dtype)
        tau = torch.tensor((1 - ALPHA) / DT, dtype=dtype)
        zero, theta = torch.tensor(0.0, dtype=dtype), torch.tensor(THETA, dtype=dtype)
        p = norse.LIFBoxParameters(tau_mem_inv=tau, v_leak=zero, v_th=theta, v_reset=zero, method="super")
        cells = [norse.LIFBoxCell(p, dt=DT) for _ in case.layers[:-1]]
        self.cells = nn.ModuleList([*cells, norse.LIBoxCell(norse.LIBoxParameters(tau, zero), dt=DT)])

    def neuron(self, index: int, current: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return self.cells[index](current, state)


CONTENDERS = {
    "snngraph cpu": SnnGraphConv,
    "snngraph cpu, conv as synapses": SnnGraphSynapses,
    "snnTorch Leaky": SnnTorchConv,
    "Norse LIFBoxCell": NorseConv,
}
BASE = "snngraph cpu"


def contenders() -> dict[str, type[nn.Module]]:
    modules = {"snnTorch Leaky": "snntorch", "Norse LIFBoxCell": "norse"}
    return {name: cls for name, cls in CONTENDERS.items() if name not in modules or _installed(modules[name])}


# ------------------------------------------------------------------------------------------
# Calibration, equivalence, memory.


def hidden_rates(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    return {name: float(s.mean()) for name, s in recorded(model, x)[0].items()}


def calibrate(case: ConvCase, iterations: int = 7) -> ConvCase:
    """The case with the gains that make each LIF population after a convolution fire near
    :data:`TARGET_RATE` (bisection on the log gain, layer by layer, on snnTorch's model in float32
    with a quarter of the batch); the readout's gain stays 1."""
    probe = replace(case, batch=max(1, case.batch // 4))
    x = make_input(probe, torch.float32)
    weighted = [layer for layer in case.layers if layer.kind != "pool"]
    gains = [1.0] * len(weighted)
    for i, layer in enumerate(weighted[:-1]):
        low, high = np.log(0.1), np.log(100.0)
        for _ in range(iterations):
            gains[i] = float(np.exp((low + high) / 2))
            trial = replace(probe, gains=tuple(gains))
            model = SnnTorchConv(trial, make_weights(trial), torch.float32)
            if hidden_rates(model, x)[layer.name] < TARGET_RATE:
                low = np.log(gains[i])
            else:
                high = np.log(gains[i])
        gains[i] = float(np.exp((low + high) / 2))
    return replace(case, gains=tuple(gains))


def recorded(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The model's spikes of every LIF population and its readout membrane, without autograd."""
    model.record = True
    with torch.no_grad():
        result = model(x)
    model.record = False
    return result


def equivalence(case: ConvCase, weights: list[np.ndarray | None]) -> dict[str, dict[str, Any]]:
    """Each peer's spikes (every LIF population) and readout against snngraph's, in float64."""
    x = make_input(case, torch.float64)
    want_spikes, want_out = recorded(SnnGraphConv(case, weights, torch.float64), x)
    checks = {}
    for name, build in list(contenders().items())[1:]:
        got_spikes, got_out = recorded(build(case, weights, torch.float64), x)
        checks[name] = {
            "spikes_differing": {k: int((got_spikes[k] != want_spikes[k]).sum()) for k in want_spikes},
            "spike_counts": {k: int(got_spikes[k].sum()) for k in got_spikes},
            "reference_spike_counts": {k: int(want_spikes[k].sum()) for k in want_spikes},
            "readout_max_abs_diff": float((got_out - want_out).abs().max()),
        }
    return checks


def peak_rss_increase(case: ConvCase, name: str, runs: int = 1) -> int:
    """:func:`bench_cpu.step_peak_rss` of a new model of contender ``name``, the least of ``runs``."""
    model = contenders()[name](case, make_weights(case), torch.float32)
    return step_peak_rss(model, make_input(case, torch.float32), runs)


def memory_in_subprocess(case: ConvCase, name: str) -> float | None:
    """:func:`peak_rss_increase` in MiB, measured by a fresh interpreter (None where /proc can't)."""
    peak = memory_subprocess(__file__, json.dumps(asdict(case)), name)
    return None if peak is None else peak / 2**20


# ------------------------------------------------------------------------------------------
# The runs.


def run_case(case: ConvCase, repeats: int, round_s: float) -> dict[str, Any]:
    case = calibrate(case)
    weights = make_weights(case)
    x = make_input(case, torch.float32)
    start = time.perf_counter()
    base_model = SnnGraphConv(case, weights, torch.float32)
    build_s = time.perf_counter() - start
    rates = hidden_rates(base_model, x)
    net = base_model.net
    print(f"\n{case.name}: {case.describe()}")
    rate_text = ", ".join(f"{k} {100 * v:.2f}%" for k, v in rates.items())
    print(f"  gains {[round(g, 2) for g in case.gains]}; hidden rates {rate_text}")
    print(
        f"  compiled: {net.n_neurons} neurons, {net.n_inputs} inputs, {len(net.in_post)} input + "
        f"{len(net.rec_post)} recurrent synapses, max lag {net.max_lag}; compile + SNN {1e3 * build_s:.0f} ms"
    )
    result: dict[str, Any] = {"config": asdict(case), "description": case.describe(), "hidden_rates": rates}
    result.update(neurons=net.n_neurons, synapses=len(net.in_post) + len(net.rec_post), build_ms=1e3 * build_s)
    names = list(contenders())
    checks = equivalence(case, weights)
    differing = {name: c for name, c in checks.items() if any(c["spikes_differing"].values())}
    if differing:
        print(f"  NOT TIMED: spikes differ from snngraph's: {differing}")
        return {**result, "equivalence": checks, "rows": []}
    models = {BASE: base_model, **{name: contenders()[name](case, weights, torch.float32) for name in names[1:]}}
    timings = time_models(models, x, repeats, round_s=round_s)
    rows = []
    for name in names:
        row = {"contender": name, **checks.get(name, {}), **timings[name]}
        row["peak_rss_mib"] = memory_in_subprocess(case, name)
        rows.append(row)
    for row in rows:
        row["forward_ratio"] = paired_ratio(rows[0], row, "forward")  # snngraph ÷ this contender
        row["train_ratio"] = paired_ratio(rows[0], row, "train")
    print_rows(rows)
    return {**result, "rows": rows, **faster_peer(rows)}


def faster_peer(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The peer that snngraph's paired fwd+bwd ratio says is the faster one, and that ratio."""
    peers = [row for row in rows if not row["contender"].startswith("snngraph")]
    if not peers:
        return {}
    fastest = max(peers, key=lambda row: row["train_ratio"])
    return {"faster_peer": fastest["contender"], "snngraph_over_faster_peer": fastest["train_ratio"]}


def print_rows(rows: list[dict[str, Any]]) -> None:
    header = ("contender", "forward ms", "fwd+bwd ms", "peak RSS MiB", "snngraph ÷ it (fwd, fwd+bwd)")
    print("  {:18s} {:>11s} {:>11s} {:>13s}  {:>29s}  check".format(*header))
    for row in rows:
        memory = "n/a" if row["peak_rss_mib"] is None else f"{max(0.0, row['peak_rss_mib']):.0f}"
        check = "(baseline)"
        if "readout_max_abs_diff" in row:
            check = f"spikes identical, readout within {row['readout_max_abs_diff']:.1e}"
        ratios = f"{row['forward_ratio']:.2f}×, {row['train_ratio']:.2f}×"
        times = f"{row['forward_ms']:11.1f} {row['train_ms']:11.1f}"
        print(f"  {row['contender']:18s} {times} {memory:>13s}  {ratios:>29s}  {check}")


PHASES = {
    "module forward (gather, backend forward, outputs)": ("snngraph/module.py", "forward"),
    "  gather of the synapse weights from the kernels": ("snngraph/synapses.py", "forward"),
    "  backend forward": ("cpu/forward.py", "forward"),
    "    input projection (per-delay products, all steps)": ("cpu/forward.py", "input_current"),
    "    sparse structures built from this call's weights": ("cpu/forward.py", "__init__"),
    "autograd backward (all of it)": ("", "'run_backward'"),
    "  backend backward": ("cpu/backward.py", "backward"),
    "    adjoint products W^T lambda per step": ("cpu/backward.py", "backprop"),
    "    weight gradient (sampled products)": ("cpu/backward.py", "sample"),
}
"""Functions of one step whose cumulative time the profile reports: (end of the file's path, name)."""


def profile_step(case: ConvCase, top: int = 25) -> dict[str, Any]:
    """cProfile of one snngraph training step (after a warm-up): the functions by own time."""
    case = calibrate(case)
    weights = make_weights(case)
    x = make_input(case, torch.float32)
    start = time.perf_counter()
    net = snngraph.compile(make_graph(case, weights))
    compile_s = time.perf_counter() - start
    model = SnnGraphConv(case, weights, torch.float32)
    train_step(model, x)
    gather_s = min(_timed(lambda: (model.snn.w_in, model.snn.w_rec)) for _ in range(3))
    profiler = cProfile.Profile()
    step_s = _timed(lambda: profiler.runcall(train_step, model, x))
    stats = pstats.Stats(profiler)
    entries, phases = [], dict.fromkeys(PHASES, 0.0)
    for (path, line, function), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(path).parent.name}/{Path(path).name}:{line}({function})" if line else function
        entries.append({"function": where, "calls": calls, "own_ms": 1e3 * own, "cumulative_ms": 1e3 * cumulative})
        for label, (file, name) in PHASES.items():
            if (path.endswith(file) and function == name) if file else name in function:
                phases[label] += 1e3 * cumulative
    entries.sort(key=lambda e: -e["own_ms"])
    print(f"\nprofile: one snngraph training step of {case.describe()}")
    print(f"  compile {1e3 * compile_s:.0f} ms ({net.n_neurons} neurons); gather w_in + w_rec {1e3 * gather_s:.1f} ms")
    print(f"  step under cProfile {1e3 * step_s:.0f} ms; cumulative time of its parts:")
    for label, ms in phases.items():
        print(f"  {ms:9.1f} ms  {label}")
    print("  functions by own time:")
    for e in entries[:top]:
        print(f"  {e['own_ms']:9.1f} ms {e['cumulative_ms']:9.1f} ms cum {e['calls']:7d}×  {e['function']}")
    return {"case": case.describe(), "compile_ms": 1e3 * compile_s, "gather_ms": 1e3 * gather_s,
            "step_ms_profiled": 1e3 * step_s, "phases_ms": phases, "top_own_time": entries[:top]}  # fmt: skip


def main() -> None:
    args = arguments(__doc__.splitlines()[0], RESULTS, "timing rounds (median)")
    if args.memory:
        print(peak_rss_increase(ConvCase.from_json(args.memory[0]), args.memory[1]))
        return
    torch.manual_seed(0)
    digits = digits_case()
    if args.quick:
        cases = [replace(digits, batch=4, steps=8), replace(nmnist_case(0.05), in_shape=(2, 16, 16), batch=2, steps=10)]
        profiled, repeats, round_s = cases[-1], args.repeats or 1, 0.0
    else:
        cases = [digits, *(nmnist_case(rate) for rate in (0.005, 0.02, 0.05, 0.1))]
        profiled, repeats, round_s = nmnist_case(0.02), args.repeats or 3, 1.0
    info = machine()
    print(f"{info['cpu']}, {info['cores']} cores, torch threads {info['torch_threads']}, {info['versions']}")
    print(f"load average at start {info['load_average_at_start']} (a shared machine: other jobs may run)")
    results = {case.name: run_case(case, repeats, round_s) for case in cases}
    profile = profile_step(profiled)
    info["load_average_at_end"] = os.getloadavg()
    report = {"machine": info, "quick": args.quick, "repeats": repeats, "results": results, "profile": profile}
    write_report(report, args, RESULTS)


if __name__ == "__main__":
    main()
