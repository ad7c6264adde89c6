"""Train the recurrent delay network on the Spiking Heidelberg Digits (SHD).

SHD: 20 classes of spoken digits as spikes of 700 channels (Cramer et al. 2022).  Download
``shd_train.h5.gz`` and ``shd_test.h5.gz`` from https://zenkelab.org/datasets/, unpack them
with ``gunzip`` into one folder and pass it as ``--data``.  Samples are binned to ``--steps``
steps over 1.4 s; the readout is the maximum membrane of an ``li`` population.  ``--tbptt K``
trains with truncated BPTT over chunks of K steps.

``--learn-delays`` trains the delays of the input → hidden synapses too (DCLS-Delays style,
Hammouamri et al. 2023; ``--learn-delays recurrent`` those of hidden → hidden as well): each
starts at its random whole delay and moves in [0, ``--max-delay``] (recurrent ones in
[1, ``--max-delay``]) with the learning rate ``--delay-lr``.  ``--delay-kernel gaussian``
spreads each delay over every step of the range with a Gaussian whose width is annealed from
``--sigma`` to 0.5 over the epochs and to 0 (the linear kernel) at the end; ``linear`` (the
default) uses the two whole steps around it::

    python examples/train_shd.py --data ~/data/shd
    python examples/train_shd.py --data ~/data/shd --hidden 256 --max-delay 25 --epochs 30
    python examples/train_shd.py --data ~/data/shd --learn-delays --delay-kernel gaussian --max-delay 25
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

from torch.utils.data import DataLoader
from train_delays import add_delay_args, learn_delays, save_delay_pictures, train_delay_model
from train_randman import add_training_args, build_graph, save_pictures

import snngraph
from snngraph.datasets import SHD_CHANNELS, SHD_CLASSES, shd
from snngraph.delays import DELAY_KERNELS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_training_args(parser, epochs=20, hidden=128, max_delay=10, lr=2e-3)
    parser.add_argument("--data", type=Path, required=True, help="folder with shd_train.h5 and shd_test.h5")
    parser.add_argument("--steps", type=int, default=100, help="time bins over 1.4 s")
    parser.add_argument("--input-scale", type=float, default=1.0, help="std of input weights · sqrt(700)")
    parser.add_argument(
        "--learn-delays",
        nargs="?",
        const="input",
        choices=["input", "recurrent"],
        help="train the input delays (and with 'recurrent' the recurrent ones too)",
    )
    parser.add_argument(
        "--delay-kernel", default="linear", choices=list(DELAY_KERNELS), help="kernel of learned delays"
    )
    add_delay_args(parser, delay_lr=0.1, sigma=5.0)
    args = parser.parse_args(argv)
    if args.learn_delays and args.max_delay < 2:
        parser.error("--learn-delays needs --max-delay >= 2 (the range the delays move in)")

    start = time.perf_counter()
    train = DataLoader(shd(args.data / "shd_train.h5", args.steps), batch_size=args.batch_size, shuffle=True)
    test = DataLoader(shd(args.data / "shd_test.h5", args.steps), batch_size=256)
    graph = build_graph(
        SHD_CHANNELS,
        args.hidden,
        SHD_CLASSES,
        max_delay=args.max_delay,
        input_scale=args.input_scale,
        neuron=args.neuron,
        seed=args.seed,
    )
    if args.learn_delays:
        edges = [("input", "hidden")] + ([("hidden", "hidden")] if args.learn_delays == "recurrent" else [])
        learn_delays(graph, edges, args.max_delay, args.delay_kernel)
    net = snngraph.compile(graph)
    print(net.summary(steps=args.steps, batch=args.batch_size))
    model = snngraph.SNN(net, backend=args.backend, surrogate=snngraph.surrogates.FastSigmoid(10.0))
    initial = copy.deepcopy(model) if args.learn_delays else None
    history, accuracy = train_delay_model(model, train, test, args)
    print(f"SHD test accuracy {accuracy:.3f} (chance {1 / SHD_CLASSES:.3f}), {time.perf_counter() - start:.0f} s")
    paths = save_pictures(model, graph, history, test, args.out, "shd")
    if initial is not None:
        paths += save_delay_pictures(initial, model, args.out, "shd_delays")
    for path in paths:
        print(f"saved {path}")


if __name__ == "__main__":
    main()
