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


NEURON_KINDS = ("lif", "cuba", "alif", "adlif", "neurons")
"""What :func:`random_graph` may draw for a hidden population: plain LIF, LIF with a synaptic
current (CubaLIF), adaptive threshold, adaptation current, a generic two-state neuron."""


def _add_hidden(g: Graph, rng: np.random.Generator, name: str, size: int, kind: str, reset: str) -> None:
    """A hidden population of ``kind`` with random parameters (scalars or one per neuron)."""

    def value(low: float, high: float) -> float | np.ndarray:
        return rng.uniform(low, high, size) if rng.random() < 0.5 else float(rng.uniform(low, high))

    common = {"alpha": value(0.5, 0.98), "theta": value(0.5, 1.5), "reset": reset}
    if kind == "lif":
        g.add_lif(name, size, **common)
    elif kind == "cuba":
        g.add_lif(name, size, **common, alpha_syn=value(0.3, 0.9), bias=value(-0.1, 0.2), v_leak=value(-0.2, 0.2))
    elif kind == "alif":
        synaptic = value(0.3, 0.9) if rng.random() < 0.3 else None
        g.add_alif(name, size, **common, alpha_adapt=value(0.6, 0.99), adapt=value(0.0, 0.5), alpha_syn=synaptic)
    elif kind == "adlif":
        g.add_adlif(
            name, size, **common, alpha_adapt=value(0.6, 0.99), a=value(-0.5, 1.0), b=value(0.0, 1.5),
            bias=value(-0.1, 0.3), symplectic=bool(rng.random() < 0.5),
        )  # fmt: skip
    else:
        a = rng.uniform(-0.3, 0.3, (2, 2)) + np.diag(rng.uniform(0.4, 0.8, 2))
        g.add_neurons(
            name, size, A=a, e=rng.uniform(0.5, 1.5, 2), b=rng.uniform(-0.1, 0.1, 2), c=rng.uniform(-0.3, 0.3, 2),
            r=rng.uniform(0.0, 1.0, 2), g=np.array([0.0, rng.uniform(0.0, 0.4)]), theta=common["theta"], reset=reset,
        )  # fmt: skip


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
    kinds: tuple[str, ...] = ("lif",),
    learn_delays: float = 0.0,
) -> Graph:
    """A random graph: 1–2 inputs, 1–4 hidden populations of the given ``kinds``
    (:data:`NEURON_KINDS`; only plain LIF by default), optionally an ``li`` readout (with a
    synaptic current when the kinds go beyond plain LIF).  Each edge learns its delays with
    probability ``learn_delays`` (a random range and kernel, real delays away from whole steps)."""
    rng = np.random.default_rng(seed)
    g = Graph()
    inputs = [f"in{i}" for i in range(rng.integers(1, 3))]
    for name in inputs:
        g.add_input(name, int(rng.integers(1, max_size + 1)))
    hidden = [f"lif{i}" for i in range(rng.integers(1, 5))]
    for name in hidden:
        size, kind = int(rng.integers(1, max_size + 1)), str(rng.choice(kinds))
        _add_hidden(g, rng, name, size, kind, str(rng.choice(resets)))
    neurons = list(hidden)
    if readout:
        synaptic = float(rng.uniform(0.3, 0.9)) if kinds != ("lif",) and rng.random() < 0.5 else None
        g.add_li("readout", int(rng.integers(1, max_size + 1)), alpha=float(rng.uniform(0.5, 0.98)), alpha_syn=synaptic)
        neurons.append("readout")
    low = 0 if zero_delay else 1
    back_low = 1 + len(neurons) if zero_delay else 1

    def connect(pre: str, post: str, low: int, high: int) -> None:
        weight = _weight(rng, g.population_size(post), g.population_size(pre), gain)
        if learn_delays and rng.random() < learn_delays:
            low = max(low, 0 if pre in inputs else 1)
            high = max(high, low + 1)
            shape = (weight.nnz,) if sp.issparse(weight) else weight.shape
            tau = rng.integers(low, high, size=shape) + rng.uniform(0.1, 0.9, size=shape)
            kernel = {"delay_kernel": "linear"}
            if rng.random() < 0.5:
                window = int(rng.integers(2, high - low + 2))
                kernel = {"delay_kernel": "gaussian", "delay_window": window, "delay_sigma": rng.uniform(0.3, 2.0)}
            g.connect(pre, post, weight=weight, delay=tau, learn_delay=True, delay_range=(low, high), **kernel)
            return
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
