"""CPU benchmark of learnable synaptic delays: a training step with fixed integer delays against
the same network whose recurrent synapses learn their delays.

Usage: ``python benchmarks/bench_delays.py [--quick] [--out PATH] [--repeats N] [--threads N]``

The network is the sparse one of ``bench_cpu.py`` (128 inputs → 2048 LIF, 2% recurrent, delays
1…4 → 10 li, B = 16, T = 100, cpu backend, the same weights and input spikes); a training step
is forward, loss = mean squared readout membrane, backward and an Adam step (weights at lr
:data:`WEIGHT_LR`, real delays at lr :data:`DELAY_LR`).  Rows:

* ``fixed``: the integer delays, which do not train.
* ``linear``: the recurrent edge learns its delays (``delay_range=(1, 4)``, 2 taps per synapse)
  from the same integer delays, so that its first forward equals the fixed row's (checked).
  Adam moves a delay by up to about ``DELAY_LR`` a step, which carries some across a whole step
  on every step (the table's last column): the step includes the rebuild of the compiled delays
  and of the backend's plan before the next forward.
* ``linear, delay lr 0``: the same with the delays' learning rate 0: the taps' cost without
  the rebuild.
* ``gaussian, n taps``: the Gaussian kernel (σ = n/4, the default) with windows of n taps in
  ``delay_range=(1, 16)``, from the same integer delays.  A window starts where its delay lies
  less half the window, clamped to the range: the windows of 8 and 16 taps start at 1 for all
  delays below 5, so they rarely move (the rows report how many do).

Timing: float32, :func:`bench_cpu.time_rounds` (every row in turn within a round, each for at
least a second; medians over rounds, ratios are medians over rounds of the ratio within the
round).  Then, per row, :data:`BREAKDOWN_STEPS` steps timed in parts: the delay update
(clamping the real delays, computing the taps' compiled delays and, where they moved, preparing
the new plan from the previous one, which the module does at the start of a call), forward,
backward and the Adam step, the rows in turn step by step; with how many synapses' windows
moved per step, and the time of gathering the synapse weights with the kernels' factors and of
its backward (a part of forward and backward).  Then one rebuild of the linear row (every delay
moved by a whole step) under cProfile: where the rebuild's time goes.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cpu import (
    ALPHA,
    QUICK_SPARSE,
    SLOPE,
    SPARSE,
    Case,
    Weights,
    _timed,
    arguments,
    describe,
    machine,
    make_graph,
    make_input,
    make_weights,
    round_ratios,
    time_rounds,
    write_report,
)

import snngraph
from snngraph import SNN
from snngraph.surrogates import ATan

RESULTS = Path(__file__).resolve().parent / "results" / "delays.json"
WEIGHT_LR, DELAY_LR = 1e-3, 0.5
BREAKDOWN_STEPS = 10
WINDOWS = (2, 4, 8, 16)
"""The Gaussian rows' taps per synapse."""
GAUSSIAN_RANGE = (1, 16)
"""The Gaussian rows' delay range, which holds the largest window."""
TARGET = 1.5
"""The bound on the linear row's step time over the fixed row's."""


@dataclass(frozen=True)
class Row:
    """A row of the table: the recurrent edge's delay attributes (none: fixed delays) and the
    delays' learning rate."""

    name: str
    learning: dict[str, Any] | None = None
    delay_lr: float = DELAY_LR

    def attributes(self, weights: Weights) -> dict[str, Any] | None:
        """The attributes of the recurrent edge: the integer delays as the initial real ones."""
        if self.learning is None:
            return None
        return {"delay": weights.delay.astype(np.float64), "learn_delay": True, **self.learning}


def rows(windows: tuple[int, ...], max_delay: int) -> list[Row]:
    """The fixed row (the baseline of the ratios), the linear one, the linear one whose delays
    do not move (learning rate 0: the taps without the rebuild) and a Gaussian one per window."""
    linear = {"delay_range": (1, max_delay)}
    table = [Row("fixed integer delays"), Row("linear, learnable", linear), Row("linear, delay lr 0", linear, 0.0)]
    for taps in windows:
        learning = {"delay_range": GAUSSIAN_RANGE, "delay_kernel": "gaussian", "delay_window": taps}
        table.append(Row(f"gaussian, {taps} taps, learnable", learning))
    return table


class Trainer:
    """An snngraph model of the sparse network and its Adam optimizer; :meth:`step` is one
    training step, :meth:`timed_step` the same step timed in parts."""

    def __init__(self, case: Case, weights: Weights, row: Row) -> None:
        graph = make_graph(case, weights, recurrent=row.attributes(weights))
        self.model = SNN(snngraph.compile(graph), backend="cpu", surrogate=ATan(SLOPE), detach_reset=True)
        groups = [{"params": list(self.model.weights.parameters()), "lr": WEIGHT_LR}]
        if self.model.synapse_delays is not None:
            groups.append({"params": list(self.model.synapse_delays.parameters()), "lr": row.delay_lr})
        self.optimizer = torch.optim.Adam(groups)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        return self.model(x).membrane("out").pow(2).mean()

    def step(self, x: torch.Tensor) -> None:
        self.loss(x).backward()
        self.optimizer.step()

    def windows_moved(self, before: torch.Tensor) -> int:
        """How many synapses of the learning edges have taps whose compiled delays differ from ``before``."""
        after = self.model.rec_delay
        taps = self.model.delay_taps
        moved = 0
        for e in [] if taps is None else taps.edges["recurrent"]:
            changed = (after[e.start : e.stop] != before[e.start : e.stop]).reshape(e.taps, -1)
            moved += int(changed.any(dim=0).sum())
        return moved

    def timed_step(self, x: torch.Tensor) -> dict[str, float]:
        """One step with the time (ms) of each part and the synapses whose windows moved.

        The delay update is the module's own (``_follow_delays``, which its forward runs first:
        there it then finds the delays current): clamping, the taps' compiled delays and, where
        they moved, the ``prepare`` of the new plan from the previous one.
        """
        model, before, plan = self.model, self.model.rec_delay, self.model.plan
        parts = {"delay_update_ms": _timed(model._follow_delays)}
        rebuilt = model.plan is not plan
        start = time.perf_counter()
        loss = self.loss(x)
        parts["forward_ms"] = time.perf_counter() - start
        parts["backward_ms"] = _timed(loss.backward)
        parts["adam_ms"] = _timed(self.optimizer.step)
        times = {name: 1e3 * seconds for name, seconds in parts.items()}
        return {**times, "rebuilt": float(rebuilt), "windows_moved": float(self.windows_moved(before))}


def first_forward_check(case: Case, weights: Weights, trainers: dict[str, Trainer], x: torch.Tensor) -> dict[str, Any]:
    """The hidden spikes of the fixed and the linear rows before training (float64): a learnable
    linear kernel at whole delays is the synapse of that delay."""
    spikes = {}
    for row in rows((), case.max_delay)[:2]:
        model = Trainer(case, weights, row).model.double()
        with torch.no_grad():
            spikes[row.name] = model(x.double()).spikes("h")
    fixed, linear = spikes.values()
    with torch.no_grad():
        rate = float(next(iter(trainers.values())).model(x).spikes("h").mean())
    return {"spikes_differing": int((fixed != linear).sum()), "spike_count": int(fixed.sum()), "hidden_rate": rate}


def gather_step(model: SNN) -> None:
    """The synapse weights a call gathers (the edges' weights times the taps' kernel factors, as
    ``w_in``/``w_rec`` give them but without their delay update, which belongs to the next step)
    and the backward pass through them."""
    weights = [model._synapse_weights(target) for target in ("input", "recurrent")]
    torch.autograd.backward([w.sum() for w in weights])


def breakdowns(trainers: dict[str, Trainer], x: torch.Tensor, steps: int) -> dict[str, dict[str, Any]]:
    """Per row: medians over ``steps`` timed steps of each part (the rows in turn, step by step,
    so that all see the same load), the share of steps that rebuilt the plan, the windows moved
    per step (median, least, most), and the time of :func:`gather_step`."""
    records: dict[str, list[dict[str, float]]] = {name: [] for name in trainers}
    for _ in range(steps):
        for name, trainer in trainers.items():
            records[name].append(trainer.timed_step(x))
            records[name][-1]["gather_ms"] = 1e3 * _timed(lambda m=trainer.model: gather_step(m))
    result = {}
    for name, runs in records.items():
        moved = [int(r["windows_moved"]) for r in runs]
        result[name] = {
            **{key: statistics.median(r[key] for r in runs) for key in runs[0] if key.endswith("_ms")},
            "rebuilt_share": statistics.fmean(r["rebuilt"] for r in runs),
            "windows_moved_median": statistics.median(moved),
            "windows_moved_range": (min(moved), max(moved)),
            "samples": runs,
        }
    return result


def profile_rebuild(trainer: Trainer, top: int = 12) -> dict[str, Any]:
    """cProfile of one rebuild of ``trainer``'s taps and plan, every delay moved by a whole step:
    the functions by cumulative time."""
    model = trainer.model
    model.plan  # noqa: B018 (the plan the rebuild starts from)
    with torch.no_grad():
        for edge in model.delay_taps.edges["recurrent"]:
            model.delays(edge.pre, edge.post).add_(1.0)
    profiler = cProfile.Profile()
    total = _timed(lambda: profiler.runcall(model._follow_delays))
    entries = []
    for (path, line, function), (_, calls, own, cumulative, _) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        where = f"{Path(path).parent.name}/{Path(path).name}:{line}({function})" if line else function
        entries.append({"function": where, "calls": calls, "own_ms": 1e3 * own, "cumulative_ms": 1e3 * cumulative})
    entries.sort(key=lambda e: -e["cumulative_ms"])
    print(f"\nprofile: one rebuild of the linear row, {1e3 * total:.0f} ms under cProfile; by cumulative time:")
    for e in entries[:top]:
        print(f"  {e['cumulative_ms']:9.1f} ms cum {e['own_ms']:9.1f} ms own {e['calls']:5d}×  {e['function']}")
    return {"rebuild_ms_profiled": 1e3 * total, "top_cumulative": entries[:top]}


def print_table(table: list[dict[str, Any]]) -> None:
    header = ("row", "step ms", "÷ fixed", "spread", "update", "fwd", "gather", "bwd", "adam", "rebuilt")
    print("  {:34s} {:>8s} {:>7s} {:>13s} {:>7s} {:>7s} {:>7s} {:>7s} {:>6s} {:>8s}  moved".format(*header))
    for row in table:
        parts = row["breakdown"]
        low, high = row["ratio_range"]
        print(
            f"  {row['row']:34s} {row['step_ms']:8.1f} {row['ratio']:6.2f}× {f'{low:.2f}–{high:.2f}×':>13s} "
            f"{parts['delay_update_ms']:7.1f} {parts['forward_ms']:7.1f} "
            f"{parts['gather_ms']:7.1f} {parts['backward_ms']:7.1f} {parts['adam_ms']:6.1f} "
            f"{100 * parts['rebuilt_share']:7.0f}% {parts['windows_moved_median']:6.0f}"
        )


def run(case: Case, windows: tuple[int, ...], repeats: int, round_s: float, steps: int) -> dict[str, Any]:
    weights = make_weights(case)
    x = make_input(case, torch.float32)
    trainers = {row.name: Trainer(case, weights, row) for row in rows(windows, case.max_delay)}
    check = first_forward_check(case, weights, trainers, x)
    print(f"\n{describe(case)}, hidden firing rate {100 * check['hidden_rate']:.1f}%")
    print(f"  fixed vs linear learnable at the same whole delays: {check['spikes_differing']} spikes differ")
    runs: dict[str, dict[str, Callable[[], Any]]] = {
        name: {"step": lambda t=trainer: t.step(x)} for name, trainer in trainers.items()
    }
    samples = time_rounds(runs, repeats, round_s=round_s)
    base = next(iter(samples.values()))
    parts = breakdowns(trainers, x, steps)
    table = []
    for name, trainer in trainers.items():
        ratios = round_ratios(samples[name]["step"], base["step"])
        table.append(
            {
                "row": name,
                "synapses": int(trainer.model.rec_post.numel()),
                "step_ms": statistics.median(samples[name]["step"]),
                "ratio": statistics.median(ratios),
                "ratio_range": (min(ratios), max(ratios)),
                "samples_ms": samples[name]["step"],
                "breakdown": parts[name],
            }
        )
    print(f"  train step = forward + backward + Adam; parts: medians of {steps} steps (ms);")
    print("  update: clamp, the taps' delays and, where they moved, the new plan; gather: w_in, w_rec and")
    print("  their backward (part of fwd, bwd); rebuilt: share of steps that prepared a new plan;")
    print("  moved: synapses whose window moved, median per step")
    print_table(table)
    linear = table[1]
    met = bool(linear["ratio"] <= TARGET)
    verdict = "met" if met else "NOT met"
    print(f"\ntarget: linear learnable ÷ fixed {linear['ratio']:.2f} (target <= {TARGET}): {verdict}")
    profile = profile_rebuild(trainers[linear["row"]])
    target = {"ratio": "linear, learnable / fixed integer delays", "value": linear["ratio"], "target": f"<= {TARGET}"}
    return {
        "config": asdict(case),
        "description": describe(case),
        "alpha": ALPHA,
        "lr": {"weights": WEIGHT_LR, "delays": DELAY_LR},
        "gaussian_range": GAUSSIAN_RANGE,
        "first_forward": check,
        "rows": table,
        "target": {**target, "met": met},
        "profile_rebuild": profile,
    }


def main() -> None:
    args = arguments(__doc__.splitlines()[0], RESULTS, "timing rounds (median)")
    torch.manual_seed(0)
    if args.quick:
        case, windows, repeats, round_s, steps = QUICK_SPARSE, (2, 4), args.repeats or 1, 0.0, 2
    else:
        case, windows, repeats, round_s, steps = SPARSE, WINDOWS, args.repeats or 5, 1.0, BREAKDOWN_STEPS
    info = machine()
    print(f"{info['cpu']}, {info['cores']} cores, torch threads {info['torch_threads']}, {info['versions']}")
    print(f"load average at start {info['load_average_at_start']} (a shared machine: other jobs may run)")
    results = run(case, windows, repeats, round_s, steps)
    info["load_average_at_end"] = os.getloadavg()
    report = {"machine": info, "quick": args.quick, "repeats": repeats, "results": results}
    write_report(report, args, RESULTS)


if __name__ == "__main__":
    main()
