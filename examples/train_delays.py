"""Synaptic delays matter: the same network with and without delays on an interval task.

In :func:`snngraph.datasets.spike_intervals` the class is the interval between the spikes of
two input channels, up to 15 steps, far longer than the hidden neurons' memory
(α = 0.6: a membrane forgets 99 % of an input in 9 steps).  Spike counts and onsets carry no
information.  A network whose synapses have delays in [0, max_delay] can line the two spikes
up on one neuron (a coincidence detector); the same network with every delay at its minimum
has to carry the interval in recurrent activity.  Both have the same neurons, synapses and
initial weights; only the delays differ.  The script trains both and prints their test
accuracies::

    python examples/train_delays.py
    python examples/train_delays.py --epochs 1 --samples 8 --hidden 8   # a few seconds
"""

from __future__ import annotations

import argparse

from train_randman import add_training_args, build_graph, save_pictures, split, train_and_test

import snngraph
from snngraph.datasets import spike_intervals


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_training_args(parser, epochs=15, hidden=64, max_delay=16, lr=5e-3)
    parser.add_argument("--pairs", type=int, default=2, help="input channel pairs")
    parser.add_argument("--samples", type=int, default=200, help="samples per class")
    args = parser.parse_args(argv)

    data = spike_intervals(n_pairs=args.pairs, samples_per_class=args.samples, seed=args.seed)
    n_classes, n_channels = int(data.tensors[1].max()) + 1, data.tensors[0].shape[2]
    train, test = split(data, args.seed, args.batch_size)
    accuracies = {}
    for name, max_delay in (("with delays", args.max_delay), ("without delays", 0)):
        graph = build_graph(
            n_channels,
            args.hidden,
            n_classes,
            max_delay=max_delay,
            input_scale=5.0,
            alpha=0.6,
            neuron=args.neuron,
            seed=args.seed,
        )
        model = snngraph.SNN(
            snngraph.compile(graph), backend=args.backend, surrogate=snngraph.surrogates.FastSigmoid(10.0)
        )
        print(f"{name}: {model.w_in.numel()} input + {model.w_rec.numel()} recurrent synapses")
        history, accuracies[name] = train_and_test(model, train, test, args)
        save_pictures(model, graph, history, test, args.out, "delays" if max_delay else "no_delays")
    for name, accuracy in accuracies.items():
        print(f"test accuracy {name}: {accuracy:.3f} (chance {1 / n_classes:.3f})")


if __name__ == "__main__":
    main()
