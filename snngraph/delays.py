"""Learnable synaptic delays: a real delay per synapse spread over integer taps (docs/design.md,
"Learnable delays").

A synapse of weight ``w`` and real delay ``τ ∈ [low, high]`` is compiled as ``n`` taps: synapses
of the same pre and post with the integer delays ``d_j = start(τ) + j`` (``j < n``) and the weights
``w·h_j(τ)``, so that its current is ``Σ_j h_j(τ)·w·S[t − d_j]``.  The kernel ``h``:

* ``"linear"`` (``n = 2``): ``start = min(⌊τ⌋, high − 1)``, ``h = (1 − f, f)`` with
  ``f = τ − start``; at a whole ``τ`` the synapse is the one of that integer delay.
* ``"gaussian"`` (``n`` taps, the window): ``start = clamp(⌊τ⌋ − ⌊(n − 1)/2⌋, low, high − n + 1)``,
  ``h_j = softmax_j(−(d_j − τ)²/(2σ²))``, the normalised Gaussian of DCLS-Delays (Hammouamri et
  al. 2023) over the window; ``σ`` is annealed by the user (:meth:`snngraph.SNN.set_delay_sigma`,
  :class:`SigmaSchedule`) and ``σ = 0`` is the linear kernel on the window's taps.

``∂L/∂τ = w·Σ_j h_j'(τ)·g_j`` and ``∂L/∂w = Σ_j h_j(τ)·g_j`` from the per-tap weight gradients
``g_j`` that every backend returns; autograd carries them through :func:`tap_factors`.  When
``start(τ)`` moves, the taps' delays change: the module rebuilds its delay indices (and the
plan) before the next call.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from snngraph.network import CompiledNetwork

TARGETS = ("input", "recurrent")

DELAY_KERNELS = ("linear", "gaussian")


@dataclass(frozen=True)
class DelaySpec:
    """How an edge learns its delays: the range ``[low, high]`` (whole steps), the ``kernel``,
    its ``taps`` per synapse and, for ``"gaussian"``, the initial width ``sigma`` (steps)."""

    low: int
    high: int
    kernel: str = "linear"
    taps: int = 2
    sigma: float = 0.0

    def attributes(self) -> dict[str, Any]:
        """The edge attributes that give this spec (:func:`delay_spec` reads them back)."""
        attrs: dict[str, Any] = {"learn_delay": True, "delay_range": (self.low, self.high)}
        if self.kernel != "linear":
            attrs.update(delay_kernel=self.kernel, delay_window=self.taps, delay_sigma=self.sigma)
        return attrs


def delay_spec(attrs: dict[str, Any], edge: str, lowest: int) -> DelaySpec:
    """The :class:`DelaySpec` of an edge's attributes ``learn_delay``, ``delay_range``,
    ``delay_kernel``, ``delay_window`` and ``delay_sigma``; ``lowest`` is the smallest delay the
    edge may have (1 between neurons, 0 from an input)."""
    given = attrs.get("delay_range")
    if given is None:
        raise ValueError(f"edge {edge}: learn_delay needs delay_range=(low, high), the whole steps the delays span")
    try:
        low, high = given
    except (TypeError, ValueError):
        raise ValueError(f"edge {edge}: delay_range must be a pair (low, high), got {given!r}") from None
    if not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) for b in (low, high)):
        raise ValueError(f"edge {edge}: delay_range must be two ints (whole steps), got {given!r}")
    low, high = int(low), int(high)
    if high <= low:
        raise ValueError(f"edge {edge}: delay_range ({low}, {high}) is empty; give low < high")
    if low < lowest:
        what = "between neurons" if lowest else "from an input"
        raise ValueError(
            f"edge {edge}: delay_range starts at {low}, below the smallest delay {what} ({lowest}); "
            f"give low >= {lowest}"
        )
    kernel = attrs.get("delay_kernel") or "linear"
    if kernel not in DELAY_KERNELS:
        raise ValueError(f"edge {edge}: delay_kernel must be one of {DELAY_KERNELS}, got {kernel!r}")
    window, sigma = attrs.get("delay_window"), attrs.get("delay_sigma")
    if kernel == "linear":
        if window is not None or sigma is not None:
            raise ValueError(f"edge {edge}: delay_window and delay_sigma belong to delay_kernel='gaussian'")
        return DelaySpec(low, high)
    span = high - low + 1
    taps = span if window is None else window
    if not isinstance(taps, (int, np.integer)) or isinstance(taps, bool) or not 2 <= taps <= span:
        raise ValueError(
            f"edge {edge}: delay_window must be an int in [2, {span}] (the taps in the range), got {window!r}"
        )
    sigma = taps / 4 if sigma is None else sigma
    if not _is_width(sigma):
        raise ValueError(f"edge {edge}: delay_sigma must be a number >= 0, got {sigma!r}")
    return DelaySpec(low, high, kernel, int(taps), float(sigma))


def _is_width(sigma: Any) -> bool:
    """Whether ``sigma`` is a Gaussian kernel's width: a finite real number ≥ 0 (numpy's too)."""
    return isinstance(sigma, numbers.Real) and not isinstance(sigma, bool) and math.isfinite(sigma) and sigma >= 0


def initial_delays(delay: Any, shape: tuple[int, ...], spec: DelaySpec, edge: str) -> np.ndarray:
    """The initial real delays of a learning edge, float64 of its parameter's ``shape``: a number
    for all, or an array of that shape, each in the range."""
    raw = np.asarray(delay.detach().cpu() if isinstance(delay, torch.Tensor) else delay)
    if raw.dtype.kind not in "iuf" or raw.dtype.kind == "b":
        raise ValueError(f"edge {edge}: delay must be real (steps), got dtype {raw.dtype}")
    if raw.ndim == 0:
        raw = np.full(shape, float(raw))
    if raw.shape != shape:
        raise ValueError(
            f"edge {edge}: with learn_delay, delay is a number or one real delay per entry of the edge's "
            f"parameter, shape {shape} (for a sparse edge also a (post, pre) matrix); got shape {raw.shape}"
        )
    values = raw.astype(np.float64)
    if (
        not np.all(np.isfinite(values))
        or values.min(initial=spec.low) < spec.low
        or values.max(initial=spec.high) > spec.high
    ):
        raise ValueError(f"edge {edge}: the initial delays must lie in delay_range [{spec.low}, {spec.high}]")
    return values


def window_starts(tau: torch.Tensor, spec: DelaySpec) -> torch.Tensor:
    """The first tap's delay ``start(τ)`` of every delay (int64, module docstring), of ``τ`` in range."""
    floor = torch.floor(tau).long()
    if spec.kernel == "linear":
        return floor.clamp(max=spec.high - 1)
    return (floor - (spec.taps - 1) // 2).clamp(spec.low, spec.high - spec.taps + 1)


def tap_factors(tau: torch.Tensor, starts: torch.Tensor, spec: DelaySpec, sigma: float) -> torch.Tensor:
    """``h_j(τ)`` ``[n, taps]`` of the delays ``τ`` ``[n]`` (in range) whose windows begin at ``starts``."""
    offset = tau - starts.to(tau.dtype)  # τ's place in its window, in [0, taps − 1]
    if spec.kernel == "gaussian" and sigma > 0:
        steps = torch.arange(spec.taps, dtype=tau.dtype, device=tau.device)
        return torch.softmax(-((steps - offset[:, None]) ** 2) / (2 * sigma**2), dim=1)
    if spec.kernel == "linear":
        return torch.stack([1 - offset, offset], dim=1)
    lower = torch.floor(offset).clamp(max=spec.taps - 2)  # the linear kernel on the window's taps
    frac = offset - lower
    taps = torch.arange(spec.taps, device=tau.device)[None]
    below = (taps == lower.long()[:, None]).to(tau.dtype)
    above = (taps == lower.long()[:, None] + 1).to(tau.dtype)
    return below * (1 - frac)[:, None] + above * frac[:, None]


def edge_tap_factors(tau: torch.Tensor, index: torch.Tensor, spec: DelaySpec, sigma: float) -> torch.Tensor:
    """The factors ``h_j(τ[index_k])`` of an edge's taps ``[taps·m]``, tap-major, from its delays
    ``τ`` (flat, in range) and its ``m`` base synapses' ``index`` into them."""
    factors = tap_factors(tau, window_starts(tau.detach(), spec), spec, sigma)
    return factors.index_select(0, index).t().reshape(-1)


def tap_delays(starts: torch.Tensor, index: torch.Tensor, taps: int, offset: int) -> torch.Tensor:
    """The compiled delays of an edge's taps, tap-major (``taps`` blocks of its base synapses, whose
    delays' windows begin at ``starts[index]``), plus the compile ``offset`` (lag of post − lag of pre)."""
    steps = torch.arange(taps, device=index.device)[:, None]
    return (starts.index_select(0, index)[None, :] + steps + offset).reshape(-1)


class DelayTaps(nn.Module):
    """The taps of the edges that learn their delays, in a module's synapse arrays: their kernel
    factors on the gathered weights (:meth:`forward`), their compiled delays from the current
    real ones (:meth:`compiled_delays`) and the Gaussian kernels' widths (:meth:`set_sigma`,
    kept in ``state_dict``)."""

    def __init__(self, net: CompiledNetwork) -> None:
        super().__init__()
        self.edges = {target: [e for e in net.edges_of(target) if e.delays is not None] for target in TARGETS}
        self.sigma = {e: e.delays.sigma for edges in self.edges.values() for e in edges}
        self.offsets = {e: net.population(e.post).lag - net.population(e.pre).lag for e in self.sigma}
        self.names = {e: f"index{i}" for i, e in enumerate(self.sigma)}
        for e, name in self.names.items():
            index = net.synapse_index(e.target)[e.start : e.start + e.base_synapses]
            self.register_buffer(name, torch.as_tensor(index, dtype=torch.long), persistent=False)

    def __bool__(self) -> bool:
        return bool(self.sigma)

    def forward(self, delays: Any, target: str, weights: torch.Tensor) -> torch.Tensor:
        """``weights`` (the gathered ``[n]`` of ``target``) times the taps' factors ``h_j(τ)``,
        from the real delays in ``delays`` (an :class:`~snngraph.synapses.EdgeParameters`)."""
        parts, at = [], 0
        for e in self.edges[target]:
            if e.start > at:
                parts.append(weights.new_ones(e.start - at))
            tau = delays.edge(e).reshape(-1)
            parts.append(edge_tap_factors(tau, getattr(self, self.names[e]), e.delays, self.sigma[e]).to(weights))
            at = e.stop
        if not parts:
            return weights
        if at < weights.numel():
            parts.append(weights.new_ones(weights.numel() - at))
        return weights * torch.cat(parts)

    def compiled_delays(self, delays: Any, target: str, current: torch.Tensor) -> torch.Tensor | None:
        """``target``'s compiled delays with the taps of the current real delays, or ``None`` when
        they are ``current`` already."""
        new = None
        for e in self.edges[target]:
            starts = window_starts(delays.edge(e).detach().reshape(-1), e.delays)
            wanted = tap_delays(starts, getattr(self, self.names[e]), e.taps, self.offsets[e])
            if not torch.equal(current[e.start : e.stop], wanted):
                new = current.clone() if new is None else new
                new[e.start : e.stop] = wanted
        return new

    def project_(self, delays: Any) -> None:
        """Clamp every real delay into its range, in place (only those outside: a delay that a
        graph of an earlier call still reads keeps its version)."""
        with torch.no_grad():
            for e in self.sigma:
                tau = delays.edge(e)
                if bool(((tau < e.delays.low) | (tau > e.delays.high)).any()):
                    tau.clamp_(e.delays.low, e.delays.high)

    def set_sigma(self, sigma: float) -> None:
        """Set the width of every Gaussian kernel (0: the linear kernel on its window's taps)."""
        gaussian = [e for e in self.sigma if e.delays.kernel == "gaussian"]
        if not gaussian:
            raise ValueError("no edge learns its delays with delay_kernel='gaussian'; there is no width to set")
        if not _is_width(sigma):
            raise ValueError(f"the delay kernel's width sigma must be a number >= 0, got {sigma!r}")
        self.sigma.update(dict.fromkeys(gaussian, float(sigma)))

    def get_extra_state(self) -> list[float]:
        return list(self.sigma.values())

    def set_extra_state(self, state: list[float]) -> None:
        if len(state) != len(self.sigma):
            raise ValueError(f"the state holds {len(state)} delay kernel widths; this model has {len(self.sigma)}")
        self.sigma = dict(zip(self.sigma, map(float, state), strict=True))


class SigmaSchedule:
    """Anneals the Gaussian delay kernels' width from ``start`` to ``end`` over ``steps`` calls of
    :meth:`step` (linearly, as ``σ = end + (start − end)·(1 − i/steps)``), then to 0, the linear
    kernel, on the last: ``schedule = SigmaSchedule(model, start=4.0, end=0.5, steps=epochs)`` and
    ``schedule.step()`` after each epoch (``fit(..., epoch_end=schedule.step)``)."""

    def __init__(self, model: Any, start: float, end: float, steps: int, collapse: bool = True) -> None:
        if steps < 1 or not 0 <= end <= start:
            raise ValueError(f"SigmaSchedule needs steps >= 1 and 0 <= end <= start, got {steps}, {end}, {start}")
        self.model, self.start, self.end, self.steps, self.collapse = model, start, end, steps, collapse
        self.done = 0
        model.set_delay_sigma(start)

    @property
    def sigma(self) -> float:
        """The width set now."""
        if self.collapse and self.done >= self.steps:
            return 0.0
        return self.end + (self.start - self.end) * (1 - min(self.done, self.steps) / self.steps)

    def step(self, *_: Any) -> None:
        self.done += 1
        self.model.set_delay_sigma(self.sigma)


__all__ = [
    "DELAY_KERNELS",
    "DelaySpec",
    "DelayTaps",
    "SigmaSchedule",
    "delay_spec",
    "edge_tap_factors",
    "initial_delays",
    "tap_delays",
    "tap_factors",
    "window_starts",
]
