"""Randman: the random-manifold spike-timing task of Zenke & Vogels (2021).

Each class is a smooth random manifold of intrinsic dimension ``D`` embedded in ``C`` channels,
the map f: [0, 1]^D → R^C with, per channel c,

    f_c(z) = Π_{d<D} Σ_{k<F} a_{cdk} (k + 1)^{−α} sin(2π (k b_{cdk} z_d + φ_{cdk}))

where a, b, φ are uniform in [0, 1) (a_{cd0} = 0: no constant offset), ``α`` sets the
smoothness and ``F = ⌈precision^{−1/α}⌉`` truncates the series where (k + 1)^{−α} < precision.
A sample of class k is a point z drawn uniformly from [0, 1)^D; channel c spikes once, at step
⌊T·f̂_c(z)⌋, f̂ being f_c min-max normalised over the class's samples.  Every channel spikes
exactly once in every sample, so spike counts carry no information: only timing does.

Reference: F. Zenke and T. P. Vogels, "The remarkable robustness of surrogate gradient learning
for instilling complex function in spiking neural networks", Neural Computation 33(4), 2021.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import TensorDataset

from snngraph.datasets.events import spike_raster


@dataclass(frozen=True, eq=False)
class RandomManifold:
    """The smooth random map f: [0, 1]^D → R^C of the module docstring.

    ``amplitude`` (a), ``frequency`` (b), ``phase`` (φ) have shape ``[C, D, F]``.
    """

    amplitude: np.ndarray
    frequency: np.ndarray
    phase: np.ndarray
    alpha: float

    @classmethod
    def random(
        cls, n_channels: int, dim: int, rng: np.random.Generator, alpha: float = 2.0, precision: float = 1e-3
    ) -> RandomManifold:
        """Draw a manifold: a, b, φ uniform in [0, 1), F = ⌈precision^{−1/α}⌉ terms, a_{cd0} = 0."""
        if alpha <= 0 or not 0 < precision < 1:
            raise ValueError(f"need alpha > 0 and 0 < precision < 1, got alpha={alpha}, precision={precision}")
        terms = math.ceil(precision ** (-1.0 / alpha))
        amplitude, frequency, phase = rng.random((3, n_channels, dim, terms))
        amplitude[:, :, 0] = 0.0
        return cls(amplitude, frequency, phase, alpha)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """f(z): points ``[n, D]`` in [0, 1)^D → ``[n, C]``."""
        k = np.arange(self.amplitude.shape[2])
        scale = self.amplitude * (k + 1.0) ** -self.alpha  # [C, D, F]
        # angle[n, c, d, f] = 2π (k_f b_cdf z_nd + φ_cdf)
        angle = 2 * np.pi * (k * self.frequency * z[:, None, :, None] + self.phase)
        return np.prod(np.sum(scale * np.sin(angle), axis=3), axis=2)


def _normalised_steps(values: np.ndarray, steps: int) -> np.ndarray:
    """⌊T·f̂⌋ with f̂ = (f − min) / (max − min) over the samples (axis 0), clipped to T − 1."""
    low, high = values.min(axis=0), values.max(axis=0)
    unit = (values - low) / np.where(high > low, high - low, 1.0)
    return np.minimum(np.floor(unit * steps), steps - 1).astype(np.int64)


def randman(
    n_classes: int = 10,
    n_channels: int = 20,
    steps: int = 50,
    samples_per_class: int = 200,
    dim: int = 1,
    alpha: float = 2.0,
    seed: int = 0,
) -> TensorDataset:
    """The Randman classification task: ``(x [n, T, C] float32 0/1, labels [n] int64)``.

    ``n = n_classes · samples_per_class`` samples in random order, classes balanced; each channel
    spikes once per sample (module docstring).  The same ``seed`` gives the same data.  Split one
    dataset into train and test with :func:`torch.utils.data.random_split`: the classes are the
    manifolds drawn in this call, and spike times are normalised over its samples.
    """
    for name, value in (("n_classes", n_classes), ("n_channels", n_channels), ("steps", steps)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if samples_per_class < 2 or dim < 1:
        raise ValueError(f"need samples_per_class >= 2 and dim >= 1, got {samples_per_class} and {dim}")
    rng = np.random.default_rng(seed)
    spike_steps = []
    for _ in range(n_classes):
        manifold = RandomManifold.random(n_channels, dim, rng, alpha)
        spike_steps.append(_normalised_steps(manifold(rng.random((samples_per_class, dim))), steps))
    order = rng.permutation(n_classes * samples_per_class)
    labels = np.repeat(np.arange(n_classes), samples_per_class)[order]
    x = spike_raster(np.concatenate(spike_steps)[order], steps)
    return TensorDataset(x, torch.as_tensor(labels))
