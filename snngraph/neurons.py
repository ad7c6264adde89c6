"""The one home of the per-neuron quantities: the neuron table.

Every per-neuron number that the layer uses is a row of one table ``[P, N]`` (rows :data:`ROWS`):
the decay α, the threshold θ and three 0/1 flags, s (subtract reset), z (zero reset) and
m (spiking; 0 for leaky readouts).  With them one update covers every neuron
(docs/design.md, "The model"):

    U[t] = α·U[t−1]·(1 − z·S[t−1]) + I[t] − s·θ·S[t−1],        S[t] = m·H(U[t] − θ)

The compiled network keeps the table as float64 NumPy (:attr:`CompiledNetwork.neurons`), the
module as tensors on its device (:class:`NeuronParams`), and the backends and the Triton kernels
read its rows in this order; the reset names of the graph (:data:`RESETS`) are turned into flags
and back only at the graph's boundary (:func:`reset_flags`, :func:`reset_name`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

ROWS = ("alpha", "theta", "subtract", "zero", "spiking")
"""The rows of the neuron table, in order (the kernels read them by this position)."""
ALPHA, THETA, SUBTRACT, ZERO, SPIKING = range(len(ROWS))
FLAGS = slice(SUBTRACT, SPIKING + 1)
"""The constant 0/1 rows s, z, m."""
TRAINABLE = {"alpha": ALPHA, "theta": THETA}
"""The rows that may be learned, by name (the flags are constants)."""
RESETS = ("subtract", "zero", "none")
"""What a spike does to the membrane: subtract θ, set U to zero, or nothing."""


def reset_flags(reset: str) -> tuple[float, float]:
    """``(s, z)`` of a reset name."""
    if reset not in RESETS:
        raise ValueError(f"unknown reset {reset!r}; choose one of {RESETS}")
    return float(reset == "subtract"), float(reset == "zero")


def reset_name(subtract: float, zero: float) -> str:
    """The reset name of the flags ``(s, z)``."""
    return "subtract" if subtract else "zero" if zero else "none"


def population_table(alpha: np.ndarray, theta: np.ndarray, reset: str, spiking: bool) -> np.ndarray:
    """The float64 table ``[P, size]`` of one population: decays, thresholds, its reset and m."""
    subtract, zero = reset_flags(reset)
    flags = [np.full(alpha.size, value) for value in (subtract, zero, float(spiking))]
    return np.stack([alpha, theta, *flags]).astype(float)


@dataclass(frozen=True, eq=False)
class NeuronParams:
    """The neuron table of one call, ``table`` ``[P, N]`` in the compute dtype.

    ``trainable`` names the rows whose gradient the backends compute (a subset of
    :data:`TRAINABLE`); the gradient of the table has zeros in the other rows.
    """

    table: torch.Tensor
    trainable: frozenset[str] = frozenset()

    @classmethod
    def of(cls, alpha: torch.Tensor, theta: torch.Tensor, flags: torch.Tensor) -> NeuronParams:
        """The table of α ``[N]``, θ ``[N]`` and the flags ``[3, N]`` (differentiable in α and θ)."""
        trainable = frozenset(name for name, t in (("alpha", alpha), ("theta", theta)) if t.requires_grad)
        return cls(torch.cat([alpha[None], theta[None], flags.to(alpha.dtype)]), trainable)

    @property
    def alpha(self) -> torch.Tensor:
        return self.table[ALPHA]

    @property
    def theta(self) -> torch.Tensor:
        return self.table[THETA]

    @property
    def subtract(self) -> torch.Tensor:
        return self.table[SUBTRACT]

    @property
    def zero(self) -> torch.Tensor:
        return self.table[ZERO]

    @property
    def spiking(self) -> torch.Tensor:
        return self.table[SPIKING]


def threshold(table: torch.Tensor) -> torch.Tensor:
    """θ where the neuron spikes (m = 1), ∞ for readouts: ``S = H(U − threshold)`` in one comparison."""
    return torch.where(table[SPIKING] > 0, table[THETA], math.inf)


def spikes(u: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """S = m·H(U − θ) as 0/1 values of ``u``'s dtype."""
    return (u > threshold(table)).to(u.dtype)


def table_gradient(like: torch.Tensor, rows: dict[int, torch.Tensor | None]) -> torch.Tensor:
    """The gradient of a table ``like`` ``[P, N]``: ``rows`` where given, zero elsewhere."""
    grad = torch.zeros_like(like)
    for row, value in rows.items():
        if value is not None:
            grad[row] = value
    return grad
