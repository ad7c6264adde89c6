"""GPU benchmark: the triton backend against hand-written PyTorch BPTT and the dense products.

Usage: ``python benchmarks/bench_gpu.py [--out PATH] [--repeats N] [--quick]``

Every contender runs the same network (same weights, same input spikes, same upstream
gradients) in the same process:

1. ``dense-N``: input N → N LIF (dense input weights, no recurrence), batch 16, T = 500,
   N ∈ {4096, 8192}.  snngraph forward and forward+backward next to the dense products that
   no implementation avoids, timed alone (cuBLAS: ``X·W_inᵀ`` forward, ``λUᵀ·X`` for ∂W_in), and
   the same BPTT written by hand in PyTorch.  Target: snngraph ≤ 1.3 × the products.
2. ``sparse-delays``: 700 → 16384 LIF (1 % recurrent density, per-synapse delays 1 … 32) →
   20 li readouts, batch 32, T = 500.  Contenders: the hand-written PyTorch BPTT with the
   recurrent weights in ``torch.sparse`` and as dense masked matrices.  Target: snngraph ≥ 10×
   faster than the best; also the fraction of the HBM bandwidth (4.8 TB/s) that snngraph's
   modelled memory traffic reaches.
3. ``small-dense``/``small-sparse``: 256 LIF, all-to-all recurrence with delay 1 / 5 % with delays
   1 … 4, batch 8, T = 1000.  Target: forward+backward ≤ 5 ms.

The hand-written BPTT (:class:`HandBPTT`) is docs/design.md ("BPTT") in plain PyTorch, without autograd: a
forward loop, then a reverse loop for λS and λU with one product per step for ``Wᵀλ`` and one
for the weight gradient (autograd through ``torch.sparse.mm`` would form a dense ``N × D·N``
gradient per step).  Its recurrent weights are one stacked ``[N, D·N]`` matrix (column
``(d − 1)·N + pre`` reads S[t − d]), dense with zeros off the synapses or ``torch.sparse``.

Exact spikes.  Weights are multiples of 2⁻⁶, α ∈ {1/2, 1}, θ = 1, inputs 0/1: every input
current is a sum of dyadic numbers that float32 holds exactly in any order, and ``α·U`` is
exact, so every contender computes the same float32 membranes and the spikes agree bit for
bit; they are checked equal (and ∂w_rec compared) before timing.

Timing: CUDA events around each call, median of ``--repeats`` after one warm-up run (which
also compiles kernels and records CUDA graphs); ``forward`` under ``torch.no_grad()``,
``fwd+bwd`` a forward and the backward of ``Σ g_s·S + Σ g_u·U`` with fixed random ``g``.
``--quick`` runs tiny sizes: on CPU it needs ``TRITON_INTERPRET=1`` and only checks that the
script runs (interpreter times mean nothing).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

import snngraph
from snngraph import SNN, CompiledNetwork, Graph, random_weight
from snngraph.backends.triton import TritonBackend
from snngraph.neurons import SUBTRACT, ZERO
from snngraph.surrogates import Sigmoid

SURROGATE = Sigmoid(5.0)
WEIGHT_STEP = 2.0**-6
HBM_BYTES_PER_S = 4.8e12
RESULTS = Path(__file__).resolve().parent / "results" / "gpu.json"


# ------------------------------------------------------------------------------------------
# The networks.


@dataclass(frozen=True)
class Case:
    """One benchmark network, its batch and length, and what it is compared with."""

    name: str
    inputs: int
    hidden: int
    readout: int
    density: float  # recurrent synapses per hidden pair (0: none)
    max_delay: int  # recurrent delays uniform in 1 … max_delay
    batch: int
    steps: int
    input_gain: float
    rec_gain: float
    contenders: tuple[str, ...]
    target: tuple[str, float]  # ("products", ratio ≤), ("speedup", ≥) or ("ms", ≤)
    input_rate: float = 0.05
    input_mean: float = 0.0  # mean input weight, in units of its spread: sets the firing rate
    seed: int = 0


def _dyadic(values: np.ndarray) -> np.ndarray:
    """Values rounded to multiples of :data:`WEIGHT_STEP`, none of them zero."""
    rounded = np.round(values / WEIGHT_STEP) * WEIGHT_STEP
    return np.where(rounded == 0, np.copysign(WEIGHT_STEP, values), rounded)


def make_graph(case: Case) -> Graph:
    rng = np.random.default_rng(case.seed)
    g = Graph()
    g.add_input("in", case.inputs)
    alpha = rng.choice([0.5, 1.0], size=case.hidden)
    g.add_lif("hidden", case.hidden, alpha=alpha, theta=1.0, reset="subtract")
    scale = case.input_gain / np.sqrt(case.inputs * case.input_rate)
    w_in = _dyadic(rng.normal(case.input_mean, 1.0, (case.hidden, case.inputs)) * scale)
    g.connect("in", "hidden", weight=w_in, delay=0)
    if case.density > 0:
        pattern = random_weight(case.hidden, case.hidden, case.density, seed=case.seed)
        fan_in = max(case.density * case.hidden, 1.0)
        values = _dyadic(rng.normal(-0.2, 1.0, pattern.nnz) * case.rec_gain / np.sqrt(fan_in))
        weight = sp.coo_array((values, (pattern.row, pattern.col)), shape=pattern.shape)
        delay = rng.integers(1, case.max_delay + 1, size=pattern.nnz)
        g.connect("hidden", "hidden", weight=weight, delay=delay)
    if case.readout:
        g.add_li("readout", case.readout, alpha=0.5)
        w_out = _dyadic(rng.normal(0.0, 1.0, (case.readout, case.hidden)) / np.sqrt(case.hidden))
        g.connect("hidden", "readout", weight=w_out, delay=1)
    return g


def make_data(case: Case, net: CompiledNetwork, device: torch.device) -> dict[str, torch.Tensor]:
    """Input spikes ``x`` and the upstream gradients ``g_u``, ``g_s`` ``[T, B, N]`` (float32)."""
    generator = torch.Generator().manual_seed(case.seed + 1)
    shape = (case.steps, case.batch, net.n_neurons)
    x = (torch.rand(case.steps, case.batch, case.inputs, generator=generator) < case.input_rate).float()
    g_u = torch.randn(shape, generator=generator) / np.sqrt(np.prod(shape))
    g_s = torch.randn(shape, generator=generator) / np.sqrt(np.prod(shape))
    return {name: t.to(device) for name, t in {"x": x, "g_u": g_u, "g_s": g_s}.items()}


# ------------------------------------------------------------------------------------------
# The contenders.


class HandBPTT:
    """The compiled layer's forward and BPTT (docs/design.md, "The model" and "BPTT") written by hand in PyTorch.

    Zero initial state, reset terms kept (no detach), the surrogate of :data:`SURROGATE`.
    Input weights: one dense ``[N, (Din + 1)·C]`` matrix over the stacked delayed inputs.
    Recurrent weights ``W`` ``[N, D·N]`` over the stacked spike history, ``"dense"`` (masked:
    zeros off the synapses) or ``"sparse"`` (``torch.sparse`` COO); per step one product
    forward, and backward one for ``Wᵀ λU`` and one for ∂W (a sampled product on the synapses).
    """

    def __init__(self, net: CompiledNetwork, weights: str, device: torch.device) -> None:
        def tensor(array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.as_tensor(np.asarray(array), dtype=dtype, device=device)

        n, c, d = net.n_neurons, net.n_inputs, net.max_delay
        self.n, self.d, self.d_in, self.weights = n, d, net.max_input_delay, weights
        self.alpha, self.theta = tensor(net.alpha), tensor(net.theta)
        self.subtract, self.zero = tensor(net.neurons[SUBTRACT]), tensor(net.neurons[ZERO])
        self.spiking = tensor(net.spiking)
        self.in_flat = tensor(net.in_post * (self.d_in + 1) * c + net.in_delay * c + net.in_pre, torch.int64)
        w_in = torch.zeros(n * (self.d_in + 1) * c, device=device)
        self.w_in = w_in.index_put_((self.in_flat,), tensor(net.in_weight), accumulate=True).view(n, -1)
        self.rec_post = tensor(net.rec_post, torch.int64)
        self.rec_col = tensor((net.rec_delay - 1) * n + net.rec_pre, torch.int64)
        rec_weight = tensor(net.rec_weight)
        if weights == "dense":
            self.w_rec = torch.zeros(n, d * n, device=device).index_put_(
                (self.rec_post, self.rec_col), rec_weight, accumulate=True
            )
        else:
            indices = torch.stack([self.rec_post, self.rec_col])
            self.w_rec = torch.sparse_coo_tensor(indices, rec_weight, (n, d * n), check_invariants=False).coalesce()
            self.w_rec_t = self.w_rec.t().coalesce()

    def _stacked_input(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, (Din + 1)·C]``: X[t − d] for d = 0 … Din side by side."""
        padded = torch.cat([x.new_zeros(self.d_in, *x.shape[1:]), x])
        steps = x.shape[0]
        return torch.cat([padded[self.d_in - d : self.d_in - d + steps] for d in range(self.d_in + 1)], dim=2)

    def _history(self, spikes: torch.Tensor, t: int) -> torch.Tensor:
        """``[B, D·N]``: S[t − 1], …, S[t − D] side by side (``spikes`` holds S[t] at row D + t)."""
        return spikes[t : t + self.d].flip(0).transpose(0, 1).reshape(spikes.shape[1], -1)

    def _recurrent(self, history: torch.Tensor) -> torch.Tensor:
        if self.weights == "dense":
            return history @ self.w_rec.t()
        return torch.sparse.mm(self.w_rec, history.t()).t()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """U ``[T, B, N]`` and the spikes ``[D + T, B, N]`` (S[t] at row D + t)."""
        steps, batch = x.shape[:2]
        current = self._stacked_input(x) @ self.w_in.t()
        u = x.new_zeros(steps, batch, self.n)
        spikes = x.new_zeros(self.d + steps, batch, self.n)
        u_prev = x.new_zeros(batch, self.n)
        has_rec = self.rec_post.numel() > 0
        for t in range(steps):
            s_prev = spikes[self.d + t - 1]
            total = current[t] + self._recurrent(self._history(spikes, t)) if has_rec else current[t]
            u_prev = self.alpha * u_prev * (1 - self.zero * s_prev) + total - self.subtract * self.theta * s_prev
            u[t] = u_prev
            spikes[self.d + t] = (u_prev > self.theta).float() * self.spiking
        return u, spikes

    def backward(
        self, x: torch.Tensor, u: torch.Tensor, spikes: torch.Tensor, g_u: torch.Tensor, g_s: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """∂w_in and ∂w_rec in the compiled synapse order."""
        steps, batch = x.shape[:2]
        n, d = self.n, self.d
        lam_s_rec = x.new_zeros(d + steps, batch, n)  # Σ_d W_dᵀ λU[t + d] at row D + t
        lam_u_all = x.new_zeros(steps, batch, n)
        lam_next = x.new_zeros(batch, n)
        has_rec = self.rec_post.numel() > 0
        grad_rec = torch.zeros_like(self.w_rec) if self.weights == "dense" else x.new_zeros(self.rec_post.numel())
        for t in reversed(range(steps)):
            u_t, s_t = u[t], spikes[d + t]
            reset = self.subtract * self.theta + self.zero * self.alpha * u_t
            lam_s = g_s[t] + lam_s_rec[d + t] - reset * lam_next
            surrogate = self.spiking * SURROGATE.grad(u_t - self.theta)
            lam_u = g_u[t] + self.alpha * lam_next * (1 - self.zero * s_t) + surrogate * lam_s
            if has_rec:
                history = self._history(spikes, t)
                if self.weights == "dense":
                    back = lam_u @ self.w_rec
                    grad_rec.addmm_(lam_u.t(), history)
                else:
                    back = torch.sparse.mm(self.w_rec_t, lam_u.t()).t()
                    grad_rec += (lam_u[:, self.rec_post] * history[:, self.rec_col]).sum(0)
                lam_s_rec[t : t + d] += back.view(batch, d, n).flip(1).transpose(0, 1)
            lam_u_all[t] = lam_u
            lam_next = lam_u
        grad_in = lam_u_all.reshape(steps * batch, n).t() @ self._stacked_input(x).reshape(steps * batch, -1)
        if self.weights == "dense":
            grad_rec = grad_rec[self.rec_post, self.rec_col]
        return grad_in.view(-1)[self.in_flat], grad_rec

    def run(self, data: dict[str, torch.Tensor], backward: bool) -> tuple[torch.Tensor, Any]:
        u, spikes = self.forward(data["x"])
        grads = self.backward(data["x"], u, spikes, data["g_u"], data["g_s"]) if backward else None
        return spikes[self.d :], grads


class Snngraph:
    """The triton backend through :class:`snngraph.SNN`."""

    def __init__(self, net: CompiledNetwork, device: torch.device) -> None:
        self.model = SNN(net, backend="triton", surrogate=SURROGATE).to(device)

    def run(self, data: dict[str, torch.Tensor], backward: bool) -> tuple[torch.Tensor, Any]:
        if not backward:
            with torch.no_grad():
                return self.model(data["x"]).layer_spikes, None
        self.model.zero_grad(set_to_none=True)
        out = self.model(data["x"])
        loss = (out.layer_spikes * data["g_s"]).sum() + (out.layer_membranes * data["g_u"]).sum()
        loss.backward()
        grads = [self.model.weight_grad(e.pre, e.post).reshape(-1) for e in self.model.net.edges]
        n_in = self.model.net.in_post.size  # every edge is free: its gradient is its synapses' own
        flat = torch.cat(grads)
        return out.layer_spikes, (flat[:n_in], flat[n_in:])


def dense_products(net: CompiledNetwork, data: dict[str, torch.Tensor], backward: bool) -> Callable[[], None]:
    """The unavoidable products of a dense input layer: X·W_inᵀ, and λUᵀ·X for ∂W_in."""
    x = data["x"].reshape(-1, net.n_inputs)
    weight = torch.randn(net.n_neurons, net.n_inputs, device=x.device)
    lam_u = torch.randn(x.shape[0], net.n_neurons, device=x.device)

    def run() -> None:
        x @ weight.t()
        if backward:
            lam_u.t() @ x

    return run


# ------------------------------------------------------------------------------------------
# Measuring.


def median_ms(run: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """Median wall time of ``run`` in ms after one warm-up call (CUDA events on CUDA)."""
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    if time.perf_counter() - start > 5.0:
        repeats = 1
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            run()
            end.record()
            torch.cuda.synchronize()
            times.append(begin.elapsed_time(end))
        else:
            start = time.perf_counter()
            run()
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.double() - want.double()).norm() / want.double().norm().clamp(min=1e-30)).item()


def modelled_bytes(net: CompiledNetwork, case: Case, rate: float) -> dict[str, float]:
    """snngraph's memory traffic for forward+backward, term by term (float32, uint8 spikes).

    Every ``[T, B, N]`` stream once per read or write; the synapse arrays (index, shift, weight:
    12 bytes) and the gathered source rows (``B`` spikes or ``B`` floats) once per synapse and
    step, in both directions; the weight gradient's λU reads only where a presynaptic spike
    occurred (``rate``); the dense input products' operands once.
    """
    steps, batch, c = case.steps, case.batch, net.n_inputs
    n_rec, n_in, tbn = net.rec_weight.size, net.in_weight.size, case.steps * case.batch * net.n_neurons
    return {
        "input current (write, read)": 8.0 * tbn,
        "membranes (write, read)": 8.0 * tbn,
        "spike history (write, read)": 2.0 * tbn,
        "upstream gradients (read)": 8.0 * tbn,
        "adjoint (write, read twice)": 12.0 * tbn,
        "recurrent synapses per step": 2.0 * 12 * n_rec * steps,
        "recurrent gathers per step": n_rec * steps * batch * (1 + 4),
        "weight gradient (spiking synapses)": 4.0 * rate * n_rec * steps * batch,
        "input products (x twice, W_in twice)": 8.0 * steps * batch * c + 8.0 * n_in,
        "dense gradient scatter": 8.0 * n_in,
    }


def check(ours: tuple[torch.Tensor, Any], theirs: tuple[torch.Tensor, Any]) -> dict[str, Any]:
    spikes_equal = torch.equal(ours[0], theirs[0])
    result: dict[str, Any] = {"spikes_equal": spikes_equal}
    if ours[1] is not None and theirs[1] is not None:
        result["grad_w_in_error"] = relative_error(theirs[1][0], ours[1][0])
        if ours[1][1].numel():
            result["grad_w_rec_error"] = relative_error(theirs[1][1], ours[1][1])
    return result


MODES = (("forward", False), ("fwd+bwd", True))


def time_modes(run: Callable[[bool], Any], repeats: int, device: torch.device) -> dict[str, float]:
    """Median ms of ``run(backward)`` for each mode."""
    return {mode: median_ms(lambda backward=backward: run(backward), repeats, device) for mode, backward in MODES}


def run_case(case: Case, device: torch.device, repeats: int) -> dict[str, Any]:
    build_start = time.perf_counter()
    net = snngraph.compile(make_graph(case))
    data = make_data(case, net, device)
    ours = Snngraph(net, device)
    result: dict[str, Any] = {
        "case": asdict(case),
        "neurons": net.n_neurons,
        "input_synapses": int(net.in_weight.size),
        "recurrent_synapses": int(net.rec_weight.size),
        "time_loop": ours.model.plan.backend.time_loop_of(ours.model.plan),
        "build_s": time.perf_counter() - build_start,
    }
    reference = ours.run(data, backward=True)
    hidden = net.population("hidden")
    result["hidden_rate"] = reference[0][:, :, hidden.start : hidden.stop].mean().item()
    timings = {"snngraph (triton)": (time_modes(lambda b: ours.run(data, b), repeats, device), {})}
    if "products" in case.contenders:
        products = {mode: median_ms(dense_products(net, data, b), repeats, device) for mode, b in MODES}
        timings["dense products (cuBLAS)"] = (products, {})
    for weights in (w for w in ("sparse", "dense") if w in case.contenders):
        hand = HandBPTT(net, weights, device)
        agreement = check(reference, hand.run(data, backward=True))
        timings[f"hand BPTT ({weights})"] = (
            time_modes(lambda b, hand=hand: hand.run(data, b), repeats, device),
            agreement,
        )
        del hand
        if device.type == "cuda":
            torch.cuda.empty_cache()
    ours_ms = timings["snngraph (triton)"][0]
    result["rows"] = [
        {"contender": name, "mode": mode, "ms": ms, "vs_snngraph": ms / ours_ms[mode], **agreement}
        for name, (modes, agreement) in timings.items()
        for mode, ms in modes.items()
    ]
    if "bandwidth" in case.contenders:
        traffic = modelled_bytes(net, case, result["hidden_rate"])
        result["modelled_traffic_bytes"] = traffic
        result["bandwidth_fraction"] = sum(traffic.values()) / (ours_ms["fwd+bwd"] / 1e3) / HBM_BYTES_PER_S
    result["target"] = target_met(case, result)
    return result


TARGETS = {
    "products": ("snngraph fwd+bwd / dense products fwd+bwd", "<="),
    "speedup": ("best hand BPTT fwd+bwd / snngraph fwd+bwd", ">="),
    "ms": ("snngraph fwd+bwd in ms", "<="),
}


def target_met(case: Case, result: dict[str, Any]) -> dict[str, Any]:
    rows = {(row["contender"], row["mode"]): row["ms"] for row in result["rows"]}
    ours = rows[("snngraph (triton)", "fwd+bwd")]
    kind, bound = case.target
    if kind == "products":
        value = ours / rows[("dense products (cuBLAS)", "fwd+bwd")]
    elif kind == "speedup":
        value = min(ms for (name, mode), ms in rows.items() if name.startswith("hand") and mode == "fwd+bwd") / ours
    else:
        value = ours
    measure, relation = TARGETS[kind]
    met = value <= bound if relation == "<=" else value >= bound
    return {"measure": measure, "goal": f"{relation} {bound:g}", "value": value, "met": met}


# ------------------------------------------------------------------------------------------
# Cases, machine, report.


def cases(quick: bool) -> list[Case]:
    """The benchmark networks (``quick``: the same shapes, tiny)."""
    dense = {"readout": 0, "density": 0.0, "max_delay": 1, "batch": 16, "steps": 500, "input_gain": 1.0}
    dense.update(rec_gain=0.0, contenders=("products", "dense"), target=("products", 1.3))
    small = {"inputs": 32, "hidden": 256, "readout": 0, "batch": 8, "steps": 1000, "input_gain": 1.0}
    small.update(rec_gain=1.0, target=("ms", 5.0))
    full = [  # cheapest first: a stage cut short by its time limit keeps the earlier cases
        Case("small-dense", density=1.0, max_delay=1, contenders=("dense",), **small),
        Case("small-sparse", density=0.05, max_delay=4, contenders=("sparse", "dense"), **small),
        *(Case(f"dense-{n}", n, n, **dense) for n in (4096, 8192)),
        Case(
            "sparse-delays", 700, 16384, 20, 0.01, 32, 32, 500, input_gain=1.0, rec_gain=1.0,
            contenders=("sparse", "dense", "bandwidth"), target=("speedup", 10.0),
        ),
    ]  # fmt: skip
    if not quick:
        return full
    tiny = {
        "dense-4096": (24, 24, 0),
        "sparse-delays": (20, 48, 3),
        "small-dense": (8, 16, 0),
        "small-sparse": (8, 16, 0),
    }
    return [
        replace(
            case, inputs=tiny[case.name][0], hidden=tiny[case.name][1], readout=tiny[case.name][2], batch=3, steps=12
        )
        for case in full
        if case.name in tiny
    ]


def machine(device: torch.device) -> dict[str, Any]:
    import triton

    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info.update(gpu=properties.name, multiprocessors=properties.multi_processor_count)
        info["memory_gib"] = round(properties.total_memory / 2**30, 1)
    return info


AGREEMENT = ("spikes_equal", "grad_w_in_error", "grad_w_rec_error")


def print_case(result: dict[str, Any]) -> None:
    case = result["case"]
    print(
        f"\n{case['name']}: {result['neurons']} neurons, {result['input_synapses']} input + "
        f"{result['recurrent_synapses']} recurrent synapses, batch {case['batch']}, T = {case['steps']}, "
        f"time loop {result['time_loop']}, hidden firing rate {result['hidden_rate']:.3f}"
    )
    print(f"  {'contender':<26} {'mode':<8} {'ms':>10} {'× snngraph':>11}  agreement")
    for row in result["rows"]:
        agreement = ", ".join(
            f"{key}={row[key]:.1e}" if isinstance(row[key], float) else f"{key}={row[key]}"
            for key in AGREEMENT
            if key in row
        )
        print(f"  {row['contender']:<26} {row['mode']:<8} {row['ms']:>10.2f} {row['vs_snngraph']:>11.2f}  {agreement}")
    if "bandwidth_fraction" in result:
        total = sum(result["modelled_traffic_bytes"].values())
        print(f"  modelled traffic {total / 1e9:.1f} GB: {result['bandwidth_fraction']:.1%} of 4.8 TB/s")
    target = result["target"]
    verdict = "met" if target["met"] else "NOT met"
    print(f"  target: {target['measure']} = {target['value']:.2f}, goal {target['goal']} ({verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke check (CPU: TRITON_INTERPRET=1)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not args.quick:
        sys.exit("no CUDA device: run with --quick (and TRITON_INTERPRET=1) for a smoke check on CPU")
    reason = TritonBackend().unavailable_reason(device)
    if reason is not None:
        sys.exit(f"the triton backend cannot run on {device}: {reason}")
    results = {"machine": machine(device), "quick": args.quick, "cases": []}
    print(json.dumps(results["machine"]))
    if args.quick:
        print("--quick: tiny sizes, a smoke check; the times mean nothing")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for case in cases(args.quick):
        result = run_case(case, device, 1 if args.quick else args.repeats)
        print_case(result)
        results["cases"].append(result)
        args.out.write_text(json.dumps(results, indent=2) + "\n")  # after every case: partial runs keep theirs
    print(f"\nwrote {args.out}")
    if not all(row.get("spikes_equal", True) for result in results["cases"] for row in result["rows"]):
        sys.exit("some contender's spikes differ from snngraph's (see the table)")


if __name__ == "__main__":
    main()
