"""Learned synaptic delays find the lags that define the classes of an interval task.

In :func:`snngraph.datasets.spike_intervals` the class is the interval Δ_k between the spikes
of the two channels (a_p, b_p) of each input pair, Δ_k in (3, 6, 9, 12, 15) steps; spike
counts and onsets carry no information.  A leaky readout neuron (α = 0.6: it forgets 99 % of an
input in 9 steps) that hears a_p through delay d_a and b_p through d_b sees both spikes at once,
and its membrane peaks at their summed weight, when d_a − d_b = Δ: a coincidence detector
tuned to one class.  The network is that alone: input → ``li`` readout, one neuron per class,
the loss the cross-entropy of the readouts' maximum membranes.  The script trains it four times
with the same weights, steps and data, only its delays in [0, ``--max-delay``] differing:

* no delays (all 0);
* fixed random delays (whole steps, drawn once);
* learned delays, linear kernel, starting from those random ones;
* learned delays, Gaussian kernel over the whole range (DCLS-Delays), from the same, its width
  σ annealed from ``--sigma`` to 0.5 over the epochs and to 0 (the linear kernel) at the end.

It prints a table of the test accuracies, and, for the Gaussian kernel, each readout neuron's
learned d_a − d_b next to its class's interval; ``delays_lags.png`` plots them (the pair a
neuron listens to most strongly drawn largest), ``delays_change.png`` and ``delays_histogram.png``
the delays before and after training.  Measured (seed 0, defaults: 100 samples per class,
30 epochs, delay learning rates 0.1 linear and 1.0 Gaussian; 12–45 s for all four on 2 shared
CPU cores)::

    no delays                  0.33
    fixed random delays        0.17
    learned, linear kernel     0.63
    learned, Gaussian kernel   0.98   (chance 0.20)

The Gaussian kernel's readout neurons learn d_a − d_b = 3.9, 5.5, 9.3, 12.4, 15.8 on their
strongest pair for the intervals 3, 6, 9, 12, 15.  The linear kernel's gradient sees only the
neighbouring whole steps, so its delays find a coincidence only where they start close to one
(0.61–0.64 with 60 or 100 epochs); the wide Gaussian, narrowed over the epochs, sees them all.

``--recurrent`` (DelRec-style) trains instead input → recurrent hidden population → readout
with short fixed input delays in [0, 2]: the recurrent synapses must carry the first spike of a
pair until the second arrives.  Their delays are all 1, fixed random in [1, ``--max-delay``], or
learned (linear kernel) from those random ones, with the same weights otherwise.  Measured
(seed 0, defaults: 16 hidden LIF neurons, 256 recurrent synapses, delays in [1, 20], 15 epochs;
15–30 s in all): test accuracy 0.59 with recurrent delays 1, 0.94 fixed random, 0.98
learned (0.78, 0.97, 0.975 with ``--samples 200``)::

    python examples/train_delays.py
    python examples/train_delays.py --recurrent
    python examples/train_delays.py --epochs 1 --samples 8 --hidden 8   # a few seconds
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from train_randman import NEURONS, add_training_args, split, train_and_test

import snngraph
from snngraph import plot
from snngraph.datasets import spike_intervals
from snngraph.delays import SigmaSchedule
from snngraph.train import History

INTERVALS = (3, 6, 9, 12, 15)
"""The class intervals Δ_k (steps) of the task."""

VARIANTS = {
    "none": "no delays",
    "fixed": "fixed random delays",
    "linear": "learned, linear kernel",
    "gaussian": "learned, Gaussian kernel",
}
"""The networks compared (``--variants``), by key, and their names in the table."""

DELAY_LRS = {"linear": 0.1, "gaussian": 1.0}
"""The delays' learning rate per kernel where ``--delay-lr`` is not given (the coincidence task):
the linear kernel's gradient sees only the neighbouring whole steps and follows it in small
steps (0.63 test accuracy at 0.1 and 0.03, 0.59 at 0.3, 0.37 at 1.0, seed 0); the Gaussian
kernel's wide window takes large ones."""

DEFAULTS = {"epochs": 30, "hidden": 16, "max_delay": 16, "lr": 1e-2}
RECURRENT_DEFAULTS = {"epochs": 15, "hidden": 16, "max_delay": 20, "lr": 5e-3}
"""The defaults of ``--epochs``, ``--hidden``, ``--max-delay`` and ``--lr`` without and with
``--recurrent`` (``--hidden`` sizes the recurrent population; the coincidence network has none)."""

RECURRENT_VARIANTS = {
    "one": "recurrent delays 1",
    "fixed": "fixed random recurrent delays",
    "learned": "learned recurrent delays",
}
"""The networks compared with ``--recurrent``."""


def connect_delays(
    g: snngraph.Graph,
    pre: str,
    post: str,
    weight: np.ndarray,
    delays: str,
    start: np.ndarray,
    low: int,
    max_delay: int,
) -> None:
    """Connect ``pre → post`` with ``weight`` and the delays ``delays``: ``"least"`` (every one
    ``low``), ``"fixed"`` (the whole steps ``start``), or a kernel name (learned from ``start``
    in [``low``, ``max_delay``] with that kernel)."""
    if delays == "least":
        g.connect(pre, post, weight=weight, delay=low)
    elif delays == "fixed":
        g.connect(pre, post, weight=weight, delay=start)
    else:
        learning = {"learn_delay": True, "delay_range": (low, max_delay), "delay_kernel": delays}
        g.connect(pre, post, weight=weight, delay=start.astype(float), **learning)


def coincidence_graph(n_channels: int, n_classes: int, variant: str, max_delay: int, seed: int) -> snngraph.Graph:
    """input → ``li`` readout (α = 0.6) whose delays are those of ``variant`` (:data:`VARIANTS`).

    The weights are ``|N(1, 0.2)|``, the same for every variant; the random delays (the fixed
    ones and the learned ones' start) are whole steps uniform in [0, ``max_delay``].
    """
    rng = np.random.default_rng(seed)
    g = snngraph.Graph()
    g.add_input("input", n_channels)
    g.add_li("readout", n_classes, alpha=0.6)
    weight = np.abs(rng.normal(1.0, 0.2, size=(n_classes, n_channels)))
    start = rng.integers(0, max_delay + 1, size=weight.shape)
    connect_delays(g, "input", "readout", weight, {"none": "least"}.get(variant, variant), start, 0, max_delay)
    return g


def recurrent_graph(
    n_channels: int, n_hidden: int, n_classes: int, variant: str, max_delay: int, neuron: str, seed: int
) -> snngraph.Graph:
    """input → dense recurrent hidden population (kind ``neuron``, α = 0.6) → ``li`` readout,
    the recurrent delays those of ``variant`` (:data:`RECURRENT_VARIANTS`), the input delays
    fixed random in [0, 2], every weight the same for every variant."""
    rng = np.random.default_rng(seed)
    g = snngraph.Graph()
    g.add_input("input", n_channels)
    add, params = NEURONS[neuron]
    getattr(g, add)("hidden", n_hidden, alpha=0.6, theta=1.0, **params)
    gain = 1 / (1 - 0.6) if neuron == "adlif" else 1.0  # adLIF scales its input current by 1 − α
    g.add_li("readout", n_classes, alpha=0.6)
    w_in = gain * rng.normal(0.0, 5.0 / np.sqrt(n_channels), size=(n_hidden, n_channels))
    g.connect("input", "hidden", weight=w_in, delay=rng.integers(0, 3, size=w_in.shape))
    w_rec = gain * rng.normal(0.0, 1.0 / np.sqrt(n_hidden), size=(n_hidden, n_hidden))
    start = rng.integers(1, max_delay + 1, size=w_rec.shape)
    delays = {"one": "least", "learned": "linear"}.get(variant, variant)
    connect_delays(g, "hidden", "hidden", w_rec, delays, start, 1, max_delay)
    w_out = rng.normal(0.0, 1.0 / np.sqrt(n_hidden), size=(n_classes, n_hidden))
    g.connect("hidden", "readout", weight=w_out, delay=0)
    return g


def learn_delays(graph: snngraph.Graph, edges: list[tuple[str, str]], max_delay: int, kernel: str) -> None:
    """Make ``edges`` of ``graph`` learn their delays (in place), each starting from its own
    whole delays, in [0, ``max_delay``] from an input and [1, ``max_delay``] between neurons,
    with the delay ``kernel`` (``"linear"``, or ``"gaussian"`` over the whole range)."""
    for pre, post in edges:
        attrs = dict(graph.nx.edges[pre, post])
        low = 0 if graph.nx.nodes[pre]["kind"] == "input" else 1
        graph.nx.remove_edge(pre, post)
        start = np.asarray(attrs.pop("delay"), dtype=float)
        learning = {"learn_delay": True, "delay_range": (low, max_delay), "delay_kernel": kernel}
        graph.connect(pre, post, delay=start, **attrs, **learning)


def delay_optimizer(model: snngraph.SNN, lr: float, delay_lr: float) -> torch.optim.Adam:
    """Adam with the learning rate ``lr`` for weights and neuron parameters and ``delay_lr`` for
    the real delays: a delay must move by whole steps in a few hundred updates, a weight by a
    fraction of its size, so delays take a learning rate of order 0.1–1 step."""
    delays = [p for name, p in model.named_parameters() if name.startswith("synapse_delays.")]
    ids = {id(p) for p in delays}
    groups = [{"params": [p for p in model.parameters() if id(p) not in ids]}]
    if delays:
        groups.append({"params": delays, "lr": delay_lr})
    return torch.optim.Adam(groups, lr=lr)


def train_delay_model(
    model: snngraph.SNN, train: DataLoader, test: DataLoader, args: argparse.Namespace
) -> tuple[History, float]:
    """:func:`train_randman.train_and_test` with :func:`delay_optimizer` (``args.lr``,
    ``args.delay_lr``, or when that is ``None`` the :data:`DELAY_LRS` of the model's kernel) and,
    when the model has a Gaussian delay kernel, a :class:`~snngraph.delays.SigmaSchedule` from
    ``args.sigma`` to 0.5 over the epochs (then 0); returns the history and the test accuracy."""
    gaussian = any(e.delays is not None and e.delays.kernel == "gaussian" for e in model.net.edges)
    schedule = SigmaSchedule(model, start=args.sigma, end=0.5, steps=args.epochs) if gaussian else None
    delay_lr = args.delay_lr if args.delay_lr is not None else DELAY_LRS["gaussian" if gaussian else "linear"]
    optimizer = delay_optimizer(model, args.lr, delay_lr)
    return train_and_test(model, train, test, args, optimizer, None if schedule is None else schedule.step)


def add_delay_args(parser: argparse.ArgumentParser, *, delay_lr: float | None, sigma: float) -> argparse.ArgumentParser:
    """The flags of the examples whose delays learn (defaults given per example; a ``delay_lr``
    of ``None`` takes the :data:`DELAY_LRS` of each model's kernel)."""
    given = "per kernel: " + ", ".join(f"{k} {v}" for k, v in DELAY_LRS.items()) if delay_lr is None else delay_lr
    parser.add_argument(
        "--delay-lr", type=float, default=delay_lr, help=f"Adam learning rate of the delays (steps; default {given})"
    )
    parser.add_argument("--sigma", type=float, default=sigma, help="initial width of the Gaussian delay kernels")
    return parser


def pair_differences(model: snngraph.SNN, pre: str, post: str) -> tuple[np.ndarray, np.ndarray]:
    """``d_a − d_b`` ``[post, pairs]`` of a dense learning edge from the interval task's channels
    (a_p = 2p, b_p = 2p + 1), and each pair's weight to each neuron, the smaller of its two."""
    tau = model.delays(pre, post).detach().double().numpy()
    weight = model.weight(pre, post).detach().double().numpy()
    return tau[:, 0::2] - tau[:, 1::2], np.minimum(weight[:, 0::2], weight[:, 1::2])


def lags_figure(differences: np.ndarray, weights: np.ndarray, intervals: np.ndarray) -> Any:
    """Each readout neuron's learned ``d_a − d_b`` per pair against its class's interval, a dot
    per (neuron, pair) sized by the pair's weight; on the diagonal a neuron detects its class."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, intervals.max() + 1], [0, intervals.max() + 1], color="gray", linestyle="--", linewidth=0.8)
    sizes = 200 * np.clip(weights, 0, None) / max(weights.max(), 1e-12)
    for pair in range(differences.shape[1]):
        ax.scatter(intervals, differences[:, pair], s=sizes[:, pair] + 5, alpha=0.7, label=f"pair {pair}")
    ax.set_xticks(intervals)
    ax.set_xlabel("class interval Δ (steps)")
    ax.set_ylabel("learned d_a − d_b (steps)")
    ax.set_title("readout delays: coincidence at d_a − d_b = Δ")
    ax.legend(fontsize="small")
    return fig


def report(accuracies: dict[str, float], n_classes: int, seconds: dict[str, float]) -> None:
    """The table of test accuracies and training times, with chance level."""
    width = max(map(len, accuracies))
    print(f"{'variant':{width}s}  test accuracy  seconds")
    for name, accuracy in accuracies.items():
        print(f"{name:{width}s}  {accuracy:13.3f}  {seconds[name]:7.0f}")
    print(f"{'chance':{width}s}  {1 / n_classes:13.3f}")


def run_variants(
    variants: dict[str, str],
    build: Callable[[str], snngraph.Graph],
    data: tuple[DataLoader, DataLoader],
    args: argparse.Namespace,
    prefix: str,
) -> tuple[dict[str, float], dict[str, float], dict[str, tuple[snngraph.SNN, snngraph.SNN]]]:
    """Train the network ``build(key)`` of each variant (key: name) on ``data`` (train, test)
    and save its training curves as ``{prefix}_{key}_training.png``; returns the test accuracies
    and the seconds by name and, by key, the model before and after training of the variants
    whose delays learn."""
    accuracies, seconds, learned = {}, {}, {}
    for key, name in variants.items():
        start = time.perf_counter()
        model = snngraph.SNN(
            snngraph.compile(build(key)), backend=args.backend, surrogate=snngraph.surrogates.FastSigmoid(10.0)
        )
        initial = copy.deepcopy(model) if model.delay_taps is not None else None
        history, accuracies[name] = train_delay_model(model, *data, args)
        seconds[name] = time.perf_counter() - start
        print(f"{name}: test accuracy {accuracies[name]:.3f}")
        plot.save({"training": plot.training(history)}, args.out, f"{prefix}_{key}")
        if initial is not None:
            learned[key] = (initial, model)
    return accuracies, seconds, learned


def save_delay_pictures(initial: snngraph.SNN, model: snngraph.SNN, out: Path, prefix: str) -> list[Path]:
    """The learned delays' histogram over the initial one, and each delay before against after."""
    figures = {"histogram": plot.delays(model, before=initial), "change": plot.delay_change(initial, model)}
    return plot.save(figures, out, prefix)


def main(argv: list[str] | None = None) -> None:
    mode = argparse.ArgumentParser(add_help=False)
    mode.add_argument(
        "--recurrent", action="store_true", help="learn the delays of a recurrent hidden population instead"
    )
    recurrent = mode.parse_known_args(argv)[0].recurrent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], parents=[mode])
    add_training_args(parser, **RECURRENT_DEFAULTS if recurrent else DEFAULTS)
    add_delay_args(parser, delay_lr=0.5 if recurrent else None, sigma=8.0)
    parser.set_defaults(batch_size=32)
    parser.add_argument("--pairs", type=int, default=2, help="input channel pairs")
    parser.add_argument("--samples", type=int, default=100, help="samples per class")
    variants = RECURRENT_VARIANTS if recurrent else VARIANTS
    parser.add_argument("--variants", nargs="+", default=list(variants), choices=list(variants), help="to compare")
    args = parser.parse_args(argv)
    if args.max_delay < 2:
        parser.error("--max-delay must be at least 2: the delays of every variant lie in [0 or 1, max_delay]")

    chosen = {key: variants[key] for key in args.variants}
    data = spike_intervals(INTERVALS, n_pairs=args.pairs, samples_per_class=args.samples, seed=args.seed)
    intervals, n_channels = np.asarray(INTERVALS), data.tensors[0].shape[2]
    loaders = split(data, args.seed, args.batch_size)
    if args.recurrent:

        def build(variant: str) -> snngraph.Graph:
            return recurrent_graph(
                n_channels, args.hidden, intervals.size, variant, args.max_delay, args.neuron, args.seed
            )

        accuracies, seconds, learned = run_variants(chosen, build, loaders, args, "delays_recurrent")
        if "learned" in learned:
            save_delay_pictures(*learned["learned"], args.out, "delays_recurrent")
    else:

        def build(variant: str) -> snngraph.Graph:
            return coincidence_graph(n_channels, intervals.size, variant, args.max_delay, args.seed)

        accuracies, seconds, learned = run_variants(chosen, build, loaders, args, "delays")
        if "gaussian" in learned:
            initial, model = learned["gaussian"]
            save_delay_pictures(initial, model, args.out, "delays")
            differences, weights = pair_differences(model, "input", "readout")
            plot.save({"lags": lags_figure(differences, weights, intervals)}, args.out, "delays")
            for interval, row, strength in zip(intervals, differences, weights, strict=True):
                pairs = ", ".join(f"{d:5.1f} (w {w:.2f})" for d, w in zip(row, strength, strict=True))
                print(f"class interval {interval:2d}: learned d_a - d_b per pair {pairs}")
    report(accuracies, intervals.size, seconds)


if __name__ == "__main__":
    main()
