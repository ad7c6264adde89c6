"""Seeded random graphs for the tests: populations, sizes, densities, delays, resets, readouts.

Edges go forward in population order (delay 0 allowed: zero-delay hops and skips), and
backward or onto themselves (feedback and recurrence).  A backward edge gets a delay of at
least ``1 + number of neuron populations``, so every cycle has as many delay steps as hops
and the graph is retimable.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from snngraph import Graph
from snngraph.graph import RESETS


def _weight(rng: np.random.Generator, post: int, pre: int, gain: float) -> np.ndarray | sp.coo_array:
    """Weights that make the populations fire now and then: mostly excitatory, some inhibition."""
    values = gain * rng.uniform(-0.6, 1.4, size=(post, pre)) / np.sqrt(pre)
    if rng.random() < 0.5:
        return values
    mask = rng.random((post, pre)) < rng.uniform(0.3, 0.9)
    return sp.coo_array(np.where(mask, values, 0.0))


def _delay(rng: np.random.Generator, weight: np.ndarray | sp.coo_array, low: int, high: int) -> int | np.ndarray:
    if rng.random() < 0.4:
        return int(rng.integers(low, high + 1))
    shape = (weight.nnz,) if sp.issparse(weight) else weight.shape
    return rng.integers(low, high + 1, size=shape)


def random_graph(
    seed: int,
    *,
    max_delay: int = 8,
    max_size: int = 6,
    zero_delay: bool = True,
    recurrent: bool = True,
    readout: bool = True,
    resets: tuple[str, ...] = RESETS,
    gain: float = 1.5,
) -> Graph:
    """A random graph: 1–2 inputs, 1–4 LIF populations, optionally an ``li`` readout."""
    rng = np.random.default_rng(seed)
    g = Graph()
    inputs = [f"in{i}" for i in range(rng.integers(1, 3))]
    for name in inputs:
        g.add_input(name, int(rng.integers(1, max_size + 1)))
    hidden = [f"lif{i}" for i in range(rng.integers(1, 5))]
    for name in hidden:
        size = int(rng.integers(1, max_size + 1))
        alpha = rng.uniform(0.5, 0.98, size) if rng.random() < 0.5 else float(rng.uniform(0.5, 0.98))
        theta = rng.uniform(0.5, 1.5, size) if rng.random() < 0.5 else float(rng.uniform(0.5, 1.5))
        g.add_lif(name, size, alpha=alpha, theta=theta, reset=str(rng.choice(resets)))
    neurons = list(hidden)
    if readout:
        g.add_li("readout", int(rng.integers(1, max_size + 1)), alpha=float(rng.uniform(0.5, 0.98)))
        neurons.append("readout")
    low = 0 if zero_delay else 1
    back_low = 1 + len(neurons) if zero_delay else 1

    def connect(pre: str, post: str, low: int, high: int) -> None:
        weight = _weight(rng, g.population_size(post), g.population_size(pre), gain)
        g.connect(pre, post, weight=weight, delay=_delay(rng, weight, low, high))

    for name in inputs:
        connect(name, hidden[0], 0, max_delay)
        for other in neurons[1:]:
            if rng.random() < 0.3:
                connect(name, other, 0, max_delay)
    for i, pre in enumerate(hidden):
        for j, post in enumerate(neurons):
            if j == i + 1 or (j > i + 1 and rng.random() < 0.4):  # the chain
                connect(pre, post, low, max_delay)
            elif recurrent and j <= i and post != "readout" and rng.random() < 0.5:
                connect(pre, post, back_low if j < i else 1, max(back_low, max_delay) + 3 if j < i else max_delay)
    return g
