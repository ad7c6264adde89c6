"""NIR's continuous time as snngraph steps of length ``dt``, and back.

NIR describes a network in continuous time and stores no timestep.  Its leaky neurons follow

    τ·dv/dt = (v_leak − v) + R·I                       (nir.LIF, nir.LI)
    dv/dt   = R·I                                       (nir.IF, nir.I)
    τ_syn·dJ/dt = −J + w_in·I,  τ_mem·dv/dt = (v_leak − v) + R·J     (nir.CubaLIF, nir.CubaLI)

and spike/reset as ``z = H(v − v_threshold)``, ``v ← v_reset``.  snngraph steps (see
:mod:`snngraph.kinds`):

    U[t] = α·U[t−1]·(1 − S[t−1]) + (1 − α)·v_leak + I[t] + bias        (lif, reset="zero")
    J[t] = β·J[t−1] + I[t] + bias,  U[t] = α·U[t−1]·(1 − S[t−1]) + (1 − α)·v_leak + J[t]
                                                                         (lif with alpha_syn = β)

where I[t] is the plain weighted sum of the presynaptic signals (``li`` is the same without
spikes).  A :class:`Discretisation` says how one becomes the other for a step ``dt``; each
decay (α from τ or τ_mem, β from τ_syn) follows ``decay``:

    α = exp(−dt/τ)            decay="exp"      (exact for the leak)
    α = 1 − dt/τ              decay="euler"    (forward Euler)

and the input of each equation is scaled by κ (``input_scale`` for the membrane, ``synapse_scale``
for the synaptic current, the same rule unless given):

    κ = R·(1 − α)             "1-alpha"   (exact for an input held over the step)
    κ = R·dt/τ                "dt/tau"    (forward Euler)
    κ = R                     "r"         (the input charges the membrane directly)

with ``w_in`` in the place of R for the synaptic current (for ``IF``/``I``, which have no τ,
``κ = R·dt`` for the first two and ``κ = R`` for "r").  A synaptic neuron's gain is the product
``κ_mem·κ_syn``: it scales J, which enters U unscaled.  Each equation is stepped on its own, the
membrane with the new current J[t]; for a synaptic neuron ``"exp"`` with ``"1-alpha"`` is
therefore exact for each equation with its input held over the step, not for the pair (the
exact two-state step would weigh J[t−1] and I[t] differently).  Every synaptic weight and
``Affine`` bias into a node is multiplied by the node's gain on import and divided by it on
export; ``v_leak`` is the same number in both.  NIR's reset-to-``v_reset`` is snngraph's
``"zero"`` reset when ``v_reset = 0``: resetting right after the spike (NIR, Norse) or one step
later (snngraph) gives the same spikes, with snngraph's membrane the pre-reset value.  Delays
are in time units: ``steps = delay / dt``.
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
    ``synapse_scale``: the same rule for the synaptic current of ``CubaLIF``/``CubaLI``, with
    ``w_in`` for R (``None``: as ``input_scale``).  ``delay_tolerance``: how far (in steps)
    ``delay / dt`` may lie from an integer.
    """

    dt: float
    decay: str = "exp"
    input_scale: str = "1-alpha"
    delay_tolerance: float = 1e-6
    synapse_scale: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.dt, bool) or not isinstance(self.dt, (int, float)) or not 0 < self.dt < np.inf:
            raise ValueError(f"dt must be a positive number (the step in NIR's time unit), got {self.dt!r}")
        if self.decay not in DECAYS:
            raise ValueError(f"unknown decay {self.decay!r}; choose one of {DECAYS}")
        if self.input_scale not in INPUT_SCALES:
            raise ValueError(f"unknown input_scale {self.input_scale!r}; choose one of {INPUT_SCALES}")
        if self.synapse_scale is not None and self.synapse_scale not in INPUT_SCALES:
            raise ValueError(f"unknown synapse_scale {self.synapse_scale!r}; choose one of {INPUT_SCALES} or None")
        if not self.delay_tolerance >= 0:
            raise ValueError(f"delay_tolerance must be >= 0 (steps), got {self.delay_tolerance!r}")

    def alpha(self, node: str, tau: np.ndarray, what: str = "tau") -> np.ndarray:
        """α per neuron from τ (the parameter ``what`` of NIR node ``node``): exp(−dt/τ) or 1 − dt/τ."""
        if np.any(tau <= 0) or not np.all(np.isfinite(tau)):
            raise ValueError(f"node {node!r}: {what} must be positive and finite, got {tau}")
        if self.decay == "exp":
            return np.exp(-self.dt / tau)
        ratio = self.dt / tau
        if np.any(ratio > 1):
            raise ValueError(
                f"node {node!r}: dt/{what} = {ratio.max():g} > 1 makes the forward-Euler decay "
                f"1 - dt/{what} negative; use a smaller dt or decay='exp'"
            )
        return 1 - ratio

    def tau(self, population: Any, alpha: np.ndarray, what: str = "alpha") -> np.ndarray:
        """τ per neuron from the decay ``what`` (α or β), the inverse of :meth:`alpha`."""
        exp = self.decay == "exp"
        valid = (alpha > 0 if exp else alpha >= 0) & (alpha < 1)  # forward Euler reaches α = 0 at τ = dt
        if not np.all(valid):
            bounds = f"0 < {what} < 1" if exp else f"0 <= {what} < 1"
            raise ValueError(
                f"population {population!r}: a NIR leaky node with decay={self.decay!r} needs "
                f"{bounds} for every neuron, got {what} in [{alpha.min():g}, {alpha.max():g}]; "
                "alpha = 0 (nir.Threshold / a plain output) and alpha = 1 (nir.IF / nir.I) export "
                "only when the whole population shares it and has no synaptic current"
            )
        return -self.dt / np.log(alpha) if exp else self.dt / (1 - alpha)

    def leaky_scale(self, tau: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """κ/R of a membrane (LIF, LI, CubaLIF, CubaLI): 1 − α, dt/τ or 1 (``input_scale``)."""
        return self._scale(self.input_scale, tau, alpha)

    def synaptic_scale(self, tau_syn: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """κ/w_in of a synaptic current (CubaLIF, CubaLI): 1 − β, dt/τ_syn or 1 (``synapse_scale``)."""
        return self._scale(self.input_scale if self.synapse_scale is None else self.synapse_scale, tau_syn, beta)

    def _scale(self, rule: str, tau: np.ndarray, decay: np.ndarray) -> np.ndarray:
        scales = {"1-alpha": 1 - decay, "dt/tau": self.dt / tau, "r": np.ones_like(tau)}
        return scales[rule]

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
