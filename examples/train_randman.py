"""Train a recurrent spiking network with synaptic delays on Randman, a spike-timing task.

The network is a graph: input channels → a recurrent population (``--neuron``: LIF by default,
CubaLIF, ALIF or SE-adLIF) whose input and recurrent synapses each have their own delay → an
``li`` readout, one neuron per class.
It compiles into one sparse recurrent layer and trains with exact BPTT and a surrogate
gradient; the loss is the cross-entropy of the readout's maximum membrane over time.

Randman (Zenke & Vogels 2021): every input channel spikes exactly once per sample, so only
spike *timing* tells the classes apart.  The script shows a progress bar per epoch, prints
the test accuracy and saves pictures under ``examples/output/``::

    python examples/train_randman.py                    # defaults: about a minute on 2 CPU cores
    python examples/train_randman.py --epochs 1 --samples 8 --hidden 8   # a few seconds

Other examples reuse :func:`build_graph` and :func:`add_training_args` from here.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, random_split

import snngraph
from snngraph import plot
from snngraph.datasets import randman
from snngraph.losses import MembraneLoss
from snngraph.train import History, evaluate, fit

NEURONS = {
    "lif": ("add_lif", {}),
    "cuba": ("add_lif", {"alpha_syn": 0.8}),
    "alif": ("add_alif", {"alpha_adapt": 0.98, "adapt": 0.3}),
    "adlif": ("add_adlif", {"alpha_adapt": 0.99, "a": 0.5, "b": 30.0}),
}
"""The hidden neuron kinds of the examples (``--neuron``): plain LIF, current-based LIF
(synaptic time constant 5 steps), adaptive threshold (each spike raises it by 0.3, decaying
over about 50 steps) and SE-adLIF (each spike adds (1 − β)·b = 0.3 to the adaptation current,
decaying over about 100 steps)."""


def build_graph(
    n_inputs: int,
    n_hidden: int,
    n_classes: int,
    *,
    max_delay: int,
    density: float = 0.2,
    input_scale: float = 3.0,
    alpha: float = 0.9,
    neuron: str = "lif",
    recurrent: bool = True,
    seed: int = 0,
) -> snngraph.Graph:
    """input → recurrent hidden population of kind ``neuron`` (:data:`NEURONS`; sparse,
    ``density``; no recurrent synapses unless ``recurrent``) → li readout.

    Input synapses get random delays in [0, max_delay], recurrent ones in [1, max_delay];
    ``max_delay=0`` gives the same network without delays (input 0, recurrent 1 step).
    Input weights are normal with std ``input_scale / sqrt(n_inputs)``, so that sparse input
    spikes drive the hidden neurons over threshold now and then; adLIF neurons scale their
    input current by ``1 − alpha``, so their input and recurrent weights are ``1 / (1 − alpha)``
    times larger.
    """
    rng = np.random.default_rng(seed)
    g = snngraph.Graph()
    g.add_input("input", n_inputs)
    add, params = NEURONS[neuron]
    getattr(g, add)("hidden", n_hidden, alpha=alpha, theta=1.0, **params)
    gain = 1 / (1 - alpha) if neuron == "adlif" else 1.0  # adLIF scales its input current by 1 − α
    g.add_li("readout", n_classes, alpha=0.9)
    w_in = gain * rng.normal(0.0, input_scale / np.sqrt(n_inputs), size=(n_hidden, n_inputs))
    g.connect("input", "hidden", weight=w_in, delay=snngraph.random_delays(w_in, 0, max_delay, seed=seed + 1))
    w_rec = gain * snngraph.random_weight(n_hidden, n_hidden, density=density, seed=seed + 2)
    rec_delay = snngraph.random_delays(w_rec, 1, max(1, max_delay), seed=seed + 3)
    if recurrent:
        g.connect("hidden", "hidden", weight=w_rec, delay=rec_delay)
    w_out = rng.normal(0.0, 1.0 / np.sqrt(n_hidden), size=(n_classes, n_hidden))
    g.connect("hidden", "readout", weight=w_out, delay=0)
    return g


def add_training_args(
    parser: argparse.ArgumentParser, *, epochs: int, hidden: int, max_delay: int, lr: float
) -> argparse.ArgumentParser:
    """The flags every training example shares (defaults given per example)."""
    parser.add_argument("--epochs", type=int, default=epochs, help="passes over the training set")
    parser.add_argument("--batch-size", type=int, default=64, help="samples per optimizer step")
    parser.add_argument("--lr", type=float, default=lr, help="Adam learning rate")
    parser.add_argument("--hidden", type=int, default=hidden, help="hidden neurons")
    parser.add_argument("--neuron", default="lif", choices=list(NEURONS), help="kind of the hidden neurons")
    parser.add_argument("--max-delay", type=int, default=max_delay, help="largest synaptic delay (steps); 0: none")
    parser.add_argument("--tbptt", type=int, default=None, help="truncated BPTT: chunk length in steps")
    parser.add_argument("--clip-grad", type=float, default=None, help="clip the gradient norm to this")
    parser.add_argument("--backend", default="auto", choices=["auto", *snngraph.backends.BACKENDS])
    parser.add_argument("--seed", type=int, default=0, help="seeds data, weights, delays and shuffling")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "output", help="folder for the PNGs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def split(data: Dataset, seed: int, batch_size: int) -> tuple[DataLoader, DataLoader]:
    """80 % train (shuffled) / 20 % test loaders, the split fixed by ``seed``."""
    train, test = random_split(data, [0.8, 0.2], generator=torch.Generator().manual_seed(seed))
    return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(test, batch_size=256)


def train_and_test(
    model: snngraph.SNN,
    train: DataLoader,
    test: DataLoader,
    args: argparse.Namespace,
    optimizer: torch.optim.Optimizer | None = None,
    epoch_end: Callable[[int], Any] | None = None,
) -> tuple[History, float]:
    """:func:`snngraph.train.fit` with the max-membrane cross-entropy and ``optimizer`` (default:
    Adam at ``args.lr``), ``epoch_end`` called after each epoch; the history and the test accuracy."""
    loss_fn = MembraneLoss("readout", over="max")
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr) if optimizer is None else optimizer
    history = fit(
        model,
        train,
        loss_fn,
        optimizer,
        args.epochs,
        test,
        tbptt=args.tbptt,
        clip_grad_norm=args.clip_grad,
        seed=args.seed,
        progress=not args.no_progress,
        epoch_end=epoch_end,
    )
    _, accuracy = evaluate(model, test, loss_fn)
    return history, accuracy


def save_pictures(
    model: snngraph.SNN, graph: snngraph.Graph, history: History, test: DataLoader, out: Path, prefix: str
) -> list[Path]:
    """Training curves, the graph, W_rec by delay, and spikes/membranes of one test sample."""
    x, _ = next(iter(test))
    with torch.no_grad():
        output = model(x.transpose(0, 1).to(model.w_rec.dtype))
    figures = {
        "training": plot.training(history),
        "graph": plot.graph(graph),
        "w_rec": plot.connectivity(model),
        "spikes": plot.raster(output, inputs=x.transpose(0, 1)),
        "readout": plot.membranes(output, "readout"),
    }
    return plot.save(figures, out, prefix)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_training_args(parser, epochs=30, hidden=64, max_delay=8, lr=5e-3)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50, help="time steps per sample")
    parser.add_argument("--samples", type=int, default=200, help="samples per class")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    data = randman(args.classes, args.channels, args.steps, args.samples, seed=args.seed)
    train, test = split(data, args.seed, args.batch_size)
    graph = build_graph(
        args.channels, args.hidden, args.classes, max_delay=args.max_delay, neuron=args.neuron, seed=args.seed
    )
    net = snngraph.compile(graph)
    print(net.summary(steps=args.steps, batch=args.batch_size))
    model = snngraph.SNN(net, backend=args.backend, surrogate=snngraph.surrogates.FastSigmoid(10.0))
    history, accuracy = train_and_test(model, train, test, args)
    print(f"test accuracy {accuracy:.3f} ({args.classes} classes, chance {1 / args.classes:.3f})")
    print(f"trained in {time.perf_counter() - start:.0f} s")
    for path in save_pictures(model, graph, history, test, args.out, "randman"):
        print(f"saved {path}")


if __name__ == "__main__":
    main()
