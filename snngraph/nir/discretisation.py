"""NIR's continuous time as snngraph steps of length ``dt``, and back.

NIR describes a network in continuous time and stores no timestep.  Its leaky neurons follow

    τ·dv/dt = (v_leak − v) + R·I                       (nir.LIF, nir.LI)
    dv/dt   = R·I                                       (nir.IF, nir.I)

and spike/reset as ``z = H(v − v_threshold)``, ``v ← v_reset``.  snngraph steps (see
docs/design.md, The model):

    U[t] = α·U[t−1]·(1 − S[t−1]) + I[t],   S[t] = H(U[t] − θ)     (lif, reset="zero")
    U[t] = α·U[t−1] + I[t] − θ·S[t−1]                             (lif, reset="subtract")
    U[t] = α·U[t−1] + I[t]                                        (li, and lif with reset="none")

where I[t] is the plain weighted sum of the presynaptic signals.  A :class:`Discretisation`
says how one becomes the other for a step ``dt``:

    α = exp(−dt/τ)            decay="exp"      (exact for the leak)
    α = 1 − dt/τ              decay="euler"    (forward Euler)

    κ = R·(1 − α)             input_scale="1-alpha"   (exact for an input held over the step)
    κ = R·dt/τ                input_scale="dt/tau"    (forward Euler)
    κ = R                     input_scale="r"         (the input charges the membrane directly)

(for ``IF``/``I``, which have no τ, ``κ = R·dt`` for the first two and ``κ = R`` for "r").  Every
synaptic weight into a node is multiplied by the node's κ on import and divided by it on
export; a leak towards ``v_leak`` is the constant current ``(1 − α)·v_leak``.  NIR's
reset-to-``v_reset`` is snngraph's ``"zero"`` reset when ``v_reset = 0``: resetting right after
the spike (NIR, Norse) or one step later (snngraph) gives the same spikes, with snngraph's
membrane the pre-reset value.  Delays are in time units: ``steps = delay / dt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

DECAYS = ("exp", "euler")
INPUT_SCALES = ("1-alpha", "dt/tau", "r")


@dataclass(frozen=True)
class Discretisation:
    """How NIR's continuous time becomes snngraph steps of length ``dt`` (module doc).

    ``decay``: ``"exp"`` (α = exp(−dt/τ)) or ``"euler"`` (α = 1 − dt/τ).  ``input_scale``:
    ``"1-alpha"`` (κ = R·(1 − α)), ``"dt/tau"`` (κ = R·dt/τ) or ``"r"`` (κ = R).
    ``delay_tolerance``: how far (in steps) ``delay / dt`` may lie from an integer.
    """

    dt: float
    decay: str = "exp"
    input_scale: str = "1-alpha"
    delay_tolerance: float = 1e-6

    def __post_init__(self) -> None:
        if isinstance(self.dt, bool) or not isinstance(self.dt, (int, float)) or not 0 < self.dt < np.inf:
            raise ValueError(f"dt must be a positive number (the step in NIR's time unit), got {self.dt!r}")
        if self.decay not in DECAYS:
            raise ValueError(f"unknown decay {self.decay!r}; choose one of {DECAYS}")
        if self.input_scale not in INPUT_SCALES:
            raise ValueError(f"unknown input_scale {self.input_scale!r}; choose one of {INPUT_SCALES}")
        if not self.delay_tolerance >= 0:
            raise ValueError(f"delay_tolerance must be >= 0 (steps), got {self.delay_tolerance!r}")

    def alpha(self, node: str, tau: np.ndarray) -> np.ndarray:
        """α per neuron from τ: exp(−dt/τ) or 1 − dt/τ."""
        if np.any(tau <= 0) or not np.all(np.isfinite(tau)):
            raise ValueError(f"node {node!r}: tau must be positive and finite, got {tau}")
        if self.decay == "exp":
            return np.exp(-self.dt / tau)
        ratio = self.dt / tau
        if np.any(ratio > 1):
            raise ValueError(
                f"node {node!r}: dt/tau = {ratio.max():g} > 1 makes the forward-Euler decay "
                "1 - dt/tau negative; use a smaller dt or decay='exp'"
            )
        return 1 - ratio

    def tau(self, population: Any, alpha: np.ndarray) -> np.ndarray:
        """τ per neuron from α, the inverse of :meth:`alpha`."""
        exp = self.decay == "exp"
        valid = (alpha > 0 if exp else alpha >= 0) & (alpha < 1)  # forward Euler reaches α = 0 at τ = dt
        if not np.all(valid):
            bounds = "0 < alpha < 1" if exp else "0 <= alpha < 1"
            raise ValueError(
                f"population {population!r}: a NIR leaky node with decay={self.decay!r} needs "
                f"{bounds} for every neuron, got alpha in [{alpha.min():g}, {alpha.max():g}]; "
                "alpha = 0 (nir.Threshold / a plain output) and alpha = 1 (nir.IF / nir.I) export "
                "only when the whole population shares it"
            )
        return -self.dt / np.log(alpha) if exp else self.dt / (1 - alpha)

    def leaky_scale(self, tau: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """κ/R of a leaky node (LIF, LI): 1 − α, dt/τ or 1."""
        scales = {"1-alpha": 1 - alpha, "dt/tau": self.dt / tau, "r": np.ones_like(tau)}
        return scales[self.input_scale]

    def integrator_scale(self, size: int) -> np.ndarray:
        """κ/R of an integrator (IF, I): dt, or 1 for input_scale="r"."""
        return np.full(size, 1.0 if self.input_scale == "r" else self.dt)

    def steps(self, node: str, delay: np.ndarray) -> np.ndarray:
        """Integer delays in steps, ``delay / dt``; an error when they are not integers."""
        steps = delay / self.dt
        rounded = np.round(steps)
        if not np.all(np.isfinite(steps)) or np.any(np.abs(steps - rounded) > self.delay_tolerance):
            worst = float(np.max(np.abs(steps - rounded))) if np.all(np.isfinite(steps)) else np.inf
            raise ValueError(
                f"node {node!r}: delay / dt is not an integer number of steps (off by up to "
                f"{worst:g} steps with dt={self.dt:g}); choose a dt that divides every delay "
                "or raise delay_tolerance"
            )
        if np.any(rounded < 0):
            raise ValueError(f"node {node!r}: delays must be >= 0, got {delay.min():g}")
        return rounded.astype(np.int64)


__all__ = ["DECAYS", "INPUT_SCALES", "Discretisation"]
