"""Working memory needs adaptation: store and recall a cue across a silent delay.

In :func:`snngraph.datasets.store_recall` a cue (one of ``--classes`` groups of input channels)
fires for 10 steps, then ``--delay`` steps of background noise follow, then a "go" signal that is
the same for every class; the readout is read at the last step.  The delay (60 steps) is far
longer than the membrane time constant (α = 0.9: 10 steps) and the readout's (10 steps), so the
answer must be kept by the hidden neurons.  The script trains the same network (same size,
synapses, initial weights, steps) with each hidden neuron kind and prints the test accuracies;
with ``--no-recurrent`` the hidden neurons have no recurrent synapses, so that only what a
neuron keeps in its own state can carry the cue::

    python examples/train_memory.py                          # lif, cuba, alif and adlif
    python examples/train_memory.py --no-recurrent           # the same without recurrence
    python examples/train_memory.py --neurons alif --epochs 1 --samples 16 --hidden 8   # seconds
"""

from __future__ import annotations

import argparse

import torch
from train_randman import NEURONS, add_training_args, build_graph, save_pictures, split

import snngraph
from snngraph.datasets import store_recall
from snngraph.losses import MembraneLoss
from snngraph.train import evaluate, fit


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_training_args(parser, epochs=20, hidden=64, max_delay=0, lr=5e-3)
    parser.add_argument("--neurons", nargs="+", default=list(NEURONS), choices=list(NEURONS), help="kinds to compare")
    parser.add_argument("--classes", type=int, default=2, help="cues to tell apart")
    parser.add_argument("--delay", type=int, default=60, help="silent steps between cue and recall")
    parser.add_argument("--samples", type=int, default=256, help="samples per class")
    parser.add_argument(
        "--recurrent", action=argparse.BooleanOptionalAction, default=True, help="recurrent hidden synapses"
    )
    args = parser.parse_args(argv)

    data = store_recall(args.classes, args.samples, delay=args.delay, seed=args.seed)
    n_channels = data.tensors[0].shape[2]
    train, test = split(data, args.seed, args.batch_size)
    loss_fn = MembraneLoss("readout", over="last")  # the readout at the end of the recall
    accuracies = {}
    for neuron in args.neurons:
        graph = build_graph(
            n_channels,
            args.hidden,
            args.classes,
            max_delay=args.max_delay,
            neuron=neuron,
            recurrent=args.recurrent,
            seed=args.seed,
        )
        model = snngraph.SNN(
            snngraph.compile(graph), backend=args.backend, surrogate=snngraph.surrogates.FastSigmoid(10.0)
        )
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        history = fit(
            model, train, loss_fn, optimizer, args.epochs, test, seed=args.seed, progress=not args.no_progress
        )
        _, accuracies[neuron] = evaluate(model, test, loss_fn)
        print(f"{neuron}: test accuracy {accuracies[neuron]:.3f}")
        prefix = f"memory_{neuron}" if args.recurrent else f"memory_{neuron}_no_recurrence"
        save_pictures(model, graph, history, test, args.out, prefix)
    for neuron, accuracy in accuracies.items():
        print(f"test accuracy {neuron:5s}: {accuracy:.3f} (chance {1 / args.classes:.3f})")


if __name__ == "__main__":
    main()
