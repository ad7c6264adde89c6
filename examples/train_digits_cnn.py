"""Train a spiking convolutional network on scikit-learn's 8×8 handwritten digits.

Data (:func:`snngraph.datasets.digits`): the 1797 images of ``sklearn.datasets.load_digits``
(no download), a fixed stratified split of 1347 training and 450 held-out test images
(``train_test_split(test_size=0.25, stratify=labels, random_state=0)``, the same for every
``--seed``).  Latency coding: pixel intensity x ∈ {0, …, 16} becomes one spike at step
``round((1 − x/16)·(W − 1))`` of a window of ``W = --window`` steps (the brightest first), a dark
pixel (x = 0) none; the ``--steps`` − W steps after the window are silent.  The code has no
randomness, so ``--seed`` only seeds the initial weights and the shuffling.

The network is a graph of shaped populations, all LIF (α = 0.9, θ = 1, subtract reset) but the
readout::

    input (1, 8, 8) → conv 3×3, pad 1 → c1 (C1, 8, 8) → sum pool 2×2 → p1 (C1, 4, 4)
                    → conv 3×3, pad 1 → c2 (C2, 4, 4) → sum pool 2×2 → p2 (C2, 2, 2)
                    → dense → out (li, 10)

A pool needs a population of its own: a sum of 2×2 spikes into a LIF neuron with θ = 1 fires
when any of the four did (about a max pooling of spikes).  Every edge has delay 0, so a spike
crosses the whole stack within its step as in a layer-by-layer simulation (snnTorch's
semantics); the compiler retimes the zero-delay hops into lags, and the network still compiles
into one sparse recurrent layer, which the script prints first.  The kernels start as PyTorch
initialises a ``Conv2d`` (uniform on ±1/√fan_in) times ``--gain``: one spike per pixel is too
little drive for θ = 1 at PyTorch's scale, and no neuron would fire.

Training: Adam on the cross-entropy of the readout's maximum membrane over time
(:class:`snngraph.losses.MembraneLoss`), full BPTT with a fast-sigmoid surrogate, the last
``--anneal`` epochs at a tenth of the learning rate.  The script prints the test accuracy and
the training time and saves pictures under ``examples/output/``::

    python examples/train_digits_cnn.py            # defaults: test accuracy about 0.96, 2 to 3 min on 2 CPU cores
    python examples/train_digits_cnn.py --quick    # a few seconds: 1 epoch on 64 images, 2 and 4 channels
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

import snngraph
from snngraph import plot
from snngraph.convolution import default_kernel
from snngraph.datasets import DIGITS_SHAPE, digits
from snngraph.losses import MembraneLoss
from snngraph.train import History, evaluate, fit

CLASSES = 10
QUICK_IMAGES = 64
"""Training and test images of a ``--quick`` run."""


def build_graph(
    channels: Sequence[int] = (16, 32), *, gain: Sequence[float] = (4.0, 3.0), alpha: float = 0.9, seed: int = 0
) -> snngraph.Graph:
    """The spiking CNN of the module docstring with ``channels = (C1, C2)``.

    Kernel ``i`` is PyTorch's default ``Conv2d`` initialisation (``U(±1/√(C_in·9))``, drawn from
    ``seed + i``) times ``gain[i]``; the dense readout weights are ``U(±1/√fan_in)``.
    """
    c1, c2 = channels
    g = snngraph.Graph()
    g.add_input("input", DIGITS_SHAPE)
    for name in ("c1", "p1", "c2", "p2"):
        g.add_lif(name, alpha=alpha, theta=1.0)  # sized by the convolution or pooling into it
    g.add_li("out", CLASSES, alpha=alpha)
    conv = {"padding": 1, "delay": 0}  # 3×3 kernels (their shape)
    g.connect_conv("input", "c1", kernel=gain[0] * default_kernel((c1, DIGITS_SHAPE[0], 3, 3), seed), **conv)
    g.connect_pool("c1", "p1", kind="sum", kernel_size=2, delay=0)
    g.connect_conv("p1", "c2", kernel=gain[1] * default_kernel((c2, c1, 3, 3), seed + 1), **conv)
    g.connect_pool("c2", "p2", kind="sum", kernel_size=2, delay=0)
    fan_in = g.population_size("p2")
    readout = np.random.default_rng(seed + 2).uniform(-1.0, 1.0, size=(CLASSES, fan_in)) / np.sqrt(fan_in)
    g.connect("p2", "out", weight=readout, delay=0)
    return g


def schedule(epochs: int, lr: float, anneal: int) -> list[tuple[int, float]]:
    """``(epochs, learning rate)`` per phase: ``lr``, then ``lr/10`` for the last ``anneal`` epochs
    (the test accuracy wanders by about ±0.01 between epochs at the full rate)."""
    phases = [(epochs - anneal, lr), (anneal, lr / 10)]
    return [(n, rate) for n, rate in phases if n > 0]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30, help="passes over the training set")
    parser.add_argument("--batch-size", type=int, default=64, help="images per optimizer step")
    parser.add_argument("--lr", type=float, default=5e-3, help="Adam learning rate")
    parser.add_argument("--anneal", type=int, default=5, help="last epochs at a tenth of the learning rate")
    parser.add_argument("--steps", type=int, default=10, help="time steps per image (T)")
    parser.add_argument("--window", type=int, default=8, help="steps of the latency code (W <= T)")
    parser.add_argument("--channels", type=int, nargs=2, default=[16, 32], metavar=("C1", "C2"))
    parser.add_argument("--gain", type=float, nargs=2, default=[4.0, 3.0], help="scale of the initial kernels")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the layer is small)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the initial weights and the shuffling")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "output", help="folder for the PNGs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--quick", action="store_true", help=f"1 epoch on {QUICK_IMAGES} images, channels 2 and 4 (a smoke test)"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.anneal <= args.epochs:
        parser.error(f"--anneal must lie in [0, --epochs], got {args.anneal}")
    if args.quick:
        args.epochs, args.anneal, args.channels = 1, 0, [2, 4]
    return args


def save_pictures(model: snngraph.SNN, graph: snngraph.Graph, history: History, test: Dataset, out: Path) -> list[Path]:
    """Training curves, the graph, the spikes of every layer for one test image, the readout."""
    x, label = test[0]
    x = x[:, None]  # [T, 1, 1, 8, 8]: one image, time-major
    with torch.no_grad():
        output = model(x)
    figures = {
        "training": plot.training(history),
        "graph": plot.graph(graph),
        "spikes": plot.raster(output, inputs=x.flatten(2)),
        "readout": plot.membranes(output, "out"),
    }
    figures["spikes"].suptitle(f"spikes of every layer, a test image of the digit {int(label)}")
    return plot.save(figures, out, "digits_cnn")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    train, test = digits(args.steps, window=args.window)
    if args.quick:
        train, test = Subset(train, range(QUICK_IMAGES)), Subset(test, range(QUICK_IMAGES))
    graph = build_graph(args.channels, gain=args.gain, seed=args.seed)
    net = snngraph.compile(graph)
    print(net.summary(steps=args.steps, batch=args.batch_size))
    model = snngraph.SNN(net, surrogate=snngraph.surrogates.FastSigmoid(10.0))
    loss_fn = MembraneLoss("out", over="max")
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(test, batch_size=256)
    start = time.perf_counter()
    history = History()
    for phase, (epochs, lr) in enumerate(schedule(args.epochs, args.lr, args.anneal)):
        for group in optimizer.param_groups:
            group["lr"] = lr
        seed = args.seed if phase == 0 else None  # the shuffling continues
        part = fit(
            model, train_loader, loss_fn, optimizer, epochs, test_loader, seed=seed, progress=not args.no_progress
        )
        for name, values in vars(part).items():
            getattr(history, name).extend(values)
    seconds = time.perf_counter() - start
    _, accuracy = evaluate(model, test_loader, loss_fn)
    print(f"test accuracy {accuracy:.3f} ({len(test)} held-out images, chance {1 / CLASSES:.3f})")
    print(f"trained in {seconds:.0f} s ({args.epochs} epochs of {len(train)} images, {args.threads} thread(s))")
    for path in save_pictures(model, graph, history, test, args.out):
        print(f"saved {path}")


if __name__ == "__main__":
    main()
