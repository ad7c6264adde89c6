"""Train the recurrent delay network on the Spiking Heidelberg Digits (SHD).

SHD: 20 classes of spoken digits as spikes of 700 channels (Cramer et al. 2022).  Download
``shd_train.h5.gz`` and ``shd_test.h5.gz`` from https://zenkelab.org/datasets/, unpack them
with ``gunzip`` into one folder and pass it as ``--data``.  Samples are binned to ``--steps``
steps over 1.4 s; the readout is the maximum membrane of an ``li`` population.  ``--tbptt K``
trains with truncated BPTT over chunks of K steps::

    python examples/train_shd.py --data ~/data/shd
    python examples/train_shd.py --data ~/data/shd --hidden 256 --max-delay 25 --epochs 30
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from torch.utils.data import DataLoader
from train_randman import add_training_args, build_graph, save_pictures, train_and_test

import snngraph
from snngraph.datasets import SHD_CHANNELS, SHD_CLASSES, shd


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_training_args(parser, epochs=20, hidden=128, max_delay=10, lr=2e-3)
    parser.add_argument("--data", type=Path, required=True, help="folder with shd_train.h5 and shd_test.h5")
    parser.add_argument("--steps", type=int, default=100, help="time bins over 1.4 s")
    parser.add_argument("--input-scale", type=float, default=1.0, help="std of input weights · sqrt(700)")
    args = parser.parse_args(argv)

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
    net = snngraph.compile(graph)
    print(net.summary(steps=args.steps, batch=args.batch_size))
    model = snngraph.SNN(net, backend=args.backend, surrogate=snngraph.surrogates.FastSigmoid(10.0))
    history, accuracy = train_and_test(model, train, test, args)
    print(f"SHD test accuracy {accuracy:.3f} (chance {1 / SHD_CLASSES:.3f}), {time.perf_counter() - start:.0f} s")
    for path in save_pictures(model, graph, history, test, args.out, "shd"):
        print(f"saved {path}")


if __name__ == "__main__":
    main()
