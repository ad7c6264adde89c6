"""Seeded random convolutional graphs for the tests: awkward geometry on every edge.

``input (C, L) or (C, H, W) → conv → c1 (with a 'same' conv onto itself: a convolution inside
a recurrent loop) → sum or avg pool → p1 → conv → c2 → dense → out`` (and, with ``feedback``, a
dense edge ``c2 → c1``).  Kernel sizes odd and even, strides, paddings (ints, pairs, "same"),
dilations, groups and non-square inputs are drawn per seed, as are delays (zero-delay hops,
one delay per kernel tap).  Weights are scaled so that every population fires now and then.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snngraph import Graph
from snngraph.convolution import conv_spec


def _geometry(rng: np.random.Generator, in_shape: tuple[int, ...], out_channels: int) -> dict[str, Any]:
    """Random ``connect_conv`` keywords whose output is at least 2 wide in every dimension (as wide
    as the input where that is less)."""
    n_dims = len(in_shape) - 1
    while True:
        groups = int(rng.choice([g for g in (1, 2, 3) if in_shape[0] % g == 0 and out_channels % g == 0]))
        kernel = tuple(int(k) for k in rng.integers(1, 4, n_dims))
        stride = tuple(int(s) for s in rng.integers(1, 3, n_dims))
        dilation = tuple(int(d) for d in rng.integers(1, 3, n_dims))
        draw = rng.random()
        if draw < 0.2 and all(s == 1 for s in stride):
            padding: Any = "same"
        elif draw < 0.4:
            padding = tuple((int(lo), int(hi)) for lo, hi in rng.integers(0, 3, (n_dims, 2)))
        else:
            padding = int(rng.integers(0, 3))
        keywords = {"kernel_size": kernel, "stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        try:
            spec = conv_spec(in_shape, edge="draw", out_channels=out_channels, **keywords)
        except ValueError:  # the kernel does not fit this input: draw again
            continue
        if min(spec.out_shape[1:]) >= min(2, *in_shape[1:]):
            return keywords


def _kernel(rng: np.random.Generator, shape: tuple[int, ...], gain: float) -> np.ndarray:
    fan_in = int(np.prod(shape[1:]))
    return gain * rng.uniform(-0.5, 1.0, size=shape) / np.sqrt(fan_in)


def _tap_delays(rng: np.random.Generator, shape: tuple[int, ...], low: int, high: int) -> int | np.ndarray:
    if rng.random() < 0.5:
        return int(rng.integers(low, high + 1))
    return rng.integers(low, high + 1, size=shape)


def random_cnn(seed: int, *, feedback: bool = False, small: bool = False) -> Graph:
    """A random convolutional graph (see the module docstring); ``small`` keeps every population
    at a few dozen neurons (for Triton's interpreter)."""
    rng = np.random.default_rng(seed)
    n_dims = 1 + seed % 2
    channels = int(rng.integers(1, 3)) if small else int(rng.integers(1, 4))
    spatial = tuple(int(n) for n in rng.integers(4, 6 if small else 10, n_dims))
    g = Graph()
    g.add_input("x", (channels, *spatial))

    def neurons(name: str) -> None:
        alpha, theta = float(rng.uniform(0.6, 0.95)), float(rng.uniform(0.4, 1.0))
        if rng.random() < 0.3:
            g.add_lif(name, alpha=alpha, theta=theta, alpha_syn=float(rng.uniform(0.3, 0.8)))
        else:
            g.add_lif(name, alpha=alpha, theta=theta, reset=str(rng.choice(["subtract", "zero"])))

    def conv(pre: str, post: str, out_channels: int, low: int, high: int) -> None:
        in_shape = g.population_shape(pre)
        keywords = _geometry(rng, in_shape, out_channels)
        shape = (out_channels, in_shape[0] // keywords["groups"], *keywords["kernel_size"])
        kernel = _kernel(rng, shape, gain=3.0)
        g.connect_conv(pre, post, kernel=kernel, delay=_tap_delays(rng, shape, low, high), **keywords)

    neurons("c1")
    conv("x", "c1", 2 if small else int(rng.integers(2, 4)), 0, 2)
    c1 = g.population_shape("c1")
    loop = (c1[0], c1[0], *(3,) * n_dims)
    g.connect_conv("c1", "c1", kernel=_kernel(rng, loop, gain=1.0), padding="same", delay=_tap_delays(rng, loop, 1, 3))
    neurons("p1")
    window = tuple(int(k) for k in rng.integers(1, 3, n_dims))
    if max(window) == 1:
        window = (2, *window[1:])
    stride = None if rng.random() < 0.5 else 1
    g.connect_pool("c1", "p1", kind=str(rng.choice(["sum", "avg"])), kernel_size=window, stride=stride,
                   padding=int(rng.integers(0, 2)), delay=int(rng.integers(0, 2)))  # fmt: skip
    neurons("c2")
    conv("p1", "c2", 2 if small else int(rng.integers(2, 4)), 0, 2)
    g.add_li("out", 3, alpha=float(rng.uniform(0.7, 0.95)))
    size = int(np.prod(g.population_shape("c2")))
    g.connect("c2", "out", weight=rng.uniform(-0.5, 1.0, (3, size)) / np.sqrt(size), delay=int(rng.integers(0, 2)))
    if feedback:
        c1_size = int(np.prod(c1))
        g.connect("c2", "c1", weight=rng.uniform(-0.5, 1.0, (c1_size, size)) / np.sqrt(size), delay=4)
    return g
