"""Surrogate derivatives of the spike function (docs/design.md, "The model").

The forward pass spikes with the Heaviside step ``S = H(U − θ)``; the backward pass replaces
``dS/dU`` by a smooth ``σ'(x)`` with ``x = U − θ`` and a ``slope`` ``k``.  Each surrogate is a
frozen dataclass whose :meth:`~Surrogate.grad` evaluates ``σ'`` on a torch tensor or a numpy
array with the same formula, and :meth:`~Surrogate.grad_into` the same operations in place on a
NumPy array (the CPU backend's per-step buffers); ``code`` names it for the Triton kernels
(``snngraph.kernels.surrogates``), which implement the same formulas.

================  ====================================================  =========================
name              σ'(x)                                                 as in
================  ====================================================  =========================
Sigmoid           k·s(kx)·(1 − s(kx)),  s(z) = 1/(1 + e^{−z})           blog post [1]; snnTorch sigmoid
FastSigmoid       1 / (1 + k|x|)²                                       SuperSpike; snnTorch
ATan              (k/2) / (1 + (π k x / 2)²)                             snnTorch atan (alpha = k)
Triangle          k · max(0, 1 − k|x|)                                  triangular, unit area
================  ====================================================  =========================

[1] the blog post 'Backpropagation for a recurrent LIF layer' (docs/design.md, References).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import numpy as np
import torch

Array = TypeVar("Array", torch.Tensor, np.ndarray)


def _exp(x: Array) -> Array:
    return torch.exp(x) if isinstance(x, torch.Tensor) else np.exp(x)


@dataclass(frozen=True)
class Surrogate:
    """Base class: a surrogate derivative with one ``slope`` parameter."""

    slope: float
    code: ClassVar[int]

    def __post_init__(self) -> None:
        if not (isinstance(self.slope, (int, float)) and math.isfinite(self.slope) and self.slope > 0):
            raise ValueError(f"{type(self).__name__}: slope must be a positive finite number, got {self.slope!r}")

    def grad(self, x: Array) -> Array:
        """σ'(x) elementwise."""
        raise NotImplementedError

    def grad_into(self, x: np.ndarray) -> np.ndarray:
        """``x`` overwritten by σ'(x), the same values as :meth:`grad` (the same operations in
        the same order), and returned."""
        raise NotImplementedError


@dataclass(frozen=True)
class Sigmoid(Surrogate):
    slope: float = 25.0
    code: ClassVar[int] = 0

    def grad(self, x: Array) -> Array:
        s = 1.0 / (1.0 + _exp(-self.slope * x))
        return self.slope * s * (1.0 - s)

    def grad_into(self, x: np.ndarray) -> np.ndarray:
        x *= -self.slope
        np.exp(x, out=x)
        x += 1.0
        np.divide(1.0, x, out=x)  # s
        complement = 1.0 - x
        x *= self.slope
        x *= complement
        return x


@dataclass(frozen=True)
class FastSigmoid(Surrogate):
    slope: float = 25.0
    code: ClassVar[int] = 1

    def grad(self, x: Array) -> Array:
        return 1.0 / (1.0 + self.slope * abs(x)) ** 2

    def grad_into(self, x: np.ndarray) -> np.ndarray:
        np.abs(x, out=x)
        x *= self.slope
        x += 1.0
        np.square(x, out=x)
        return np.divide(1.0, x, out=x)


@dataclass(frozen=True)
class ATan(Surrogate):
    slope: float = 2.0
    code: ClassVar[int] = 2

    def grad(self, x: Array) -> Array:
        return (self.slope / 2.0) / (1.0 + (math.pi / 2.0 * self.slope * x) ** 2)

    def grad_into(self, x: np.ndarray) -> np.ndarray:
        x *= math.pi / 2.0 * self.slope
        np.square(x, out=x)
        x += 1.0
        return np.divide(self.slope / 2.0, x, out=x)


@dataclass(frozen=True)
class Triangle(Surrogate):
    slope: float = 1.0
    code: ClassVar[int] = 3

    def grad(self, x: Array) -> Array:
        return self.slope * (1.0 - self.slope * abs(x)).clip(min=0.0)

    def grad_into(self, x: np.ndarray) -> np.ndarray:
        np.abs(x, out=x)
        x *= self.slope
        np.subtract(1.0, x, out=x)
        np.maximum(x, 0.0, out=x)
        x *= self.slope
        return x
