"""The generic neuron of ``K`` state variables in the CPU backend: its per-call constants and the
per-step algebra of the forward recursion and of BPTT (docs/design.md, "Neurons";
:mod:`snngraph.neurons`).

Per neuron, with ``S_p = S[t−1]``, ``m(v)`` = ``v`` with ``m₀ = v₀·(1 − z·S_p)`` and
``θ_eff[t] = θ + g·v[t]``:

    v[t] = A·m(v[t−1]) + e·I[t] + b·[t ≥ onset] + (c − s·θ_eff[t−1]·r)·S_p
    S[t] = spiking·[t ≥ onset]·H(v₀[t] − θ_eff[t])

Backward, with ``λv[t] = dL/dv[t]`` (a ``K``-vector), ``λS[t] = dL/dS[t]``, ``λ = 0`` for
``t ≥ T`` and ``σ'[t] = spiking·[t ≥ onset]·σ'(v₀[t] − θ_eff[t])``:

    λS[t] = ∂L/∂S[t] + Σ_{rec k: j→i, d} w_k·λI_i[t+d] + W[t]·λv[t+1]
    λv[t] = ∂L/∂v[t] + J[t]ᵀ·λv[t+1] + σ'[t]·λS[t]·(e₀ − g)
    λI[t] = e·λv[t]

    W[t]    = c − z·v₀[t]·A[:, 0] − s·θ_eff[t]·r        (the last two terms dropped with ``detach_reset``)
    J[t]ᵀ·λ = Dᵀ·Aᵀ·λ − s·S[t]·g·(r·λ),                 D = diag(1 − z·S[t], 1, …, 1)

``λI`` takes the place of the plain neuron's ``λU`` in everything synaptic
(:mod:`~snngraph.backends.cpu.backward`).  The gradient of the table, summed over the batch and
``t = 0 … T−1`` (``t = −1 … T−2`` where a sum reads ``λv[t+1]``; ``v[−1] = v0``, ``S[−1]`` the
last step of the incoming history):

    ∂A[j, k] = Σ λv_j[t+1]·m_k(v[t]),   ∂c = Σ λv[t+1]·S[t],   ∂r = −Σ λv[t+1]·s·θ_eff[t]·S[t]
    ∂b = Σ_{t ≥ onset} λv[t],   ∂e = Σ λv[t]·I[t]
    ∂g_k = −Σ σ'[t]·λS[t]·v_k[t] − Σ s·S[t]·v_k[t]·(r·λv[t+1])
    ∂θ   = −Σ σ'[t]·λS[t]         − Σ s·S[t]·(r·λv[t+1])

and for the incoming state ``∂v0 = J[−1]ᵀ·λv[0]``, ``∂S[−1] ∋ W[−1]·λv[0]``.

Layout: neuron-major as in the plain path, a step's states ``[K, N, B]``, its spikes and
currents ``[N, B]`` (a run of ``C`` steps ``[C, K, N, B]`` and ``[C, N, B]``).  A sum over the
states skips the coefficients that are zero for every neuron and the multiplication by those
that are one for every neuron; a coefficient that all neurons share is a scalar, the others
contiguous ``[N, B]`` arrays (:func:`coefficient`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from snngraph.backends.cpu.arrays import live, per_value
from snngraph.neurons import SPIKING, SUBTRACT, THETA, ZERO, block_rows, n_states_of, onset_row
from snngraph.surrogates import Surrogate

Term = tuple[int, np.ndarray | np.generic | None]
"""One term of a sum: the index of its operand and its coefficient (:func:`coefficient`)."""


def combine(out: np.ndarray, terms: Sequence[Term], x: Sequence[np.ndarray], scratch: np.ndarray, add: bool) -> None:
    """``out = Σ coefficient·x[k]`` over ``terms`` (``out +=`` with ``add``; zero for no terms),
    in place; ``scratch`` has the shape of ``out``.

    The terms are added in their order, except that a first term of coefficient 1 swaps places
    with the second (``a + b = b + a`` exactly), which saves copying it.
    """
    if not add and terms:
        (k, coefficient), rest = terms[0], terms[1:]
        if coefficient is None and rest:
            (j, other), rest = rest[0], rest[1:]
            if other is None:
                np.add(x[j], x[k], out=out)
            else:
                np.multiply(other, x[j], out=out)
                out += x[k]
        elif coefficient is None:
            np.copyto(out, x[k])
        else:
            np.multiply(coefficient, x[k], out=out)
        terms, add = rest, True
    for k, coefficient in terms:
        if coefficient is None:
            np.add(out, x[k], out=out)
        else:
            np.multiply(coefficient, x[k], out=scratch)
            out += scratch
    if not add:
        out.fill(0)


def coefficient(values: np.ndarray, batch: int) -> np.ndarray | np.generic | None:
    """A per-neuron coefficient ``[N]`` as it multiplies ``[…, N, B]`` arrays: ``None`` when it is
    1 for every neuron, a scalar when it is the same for every neuron (no memory to read), else
    a contiguous ``[N, B]`` array."""
    if np.all(values == 1):
        return None
    if np.all(values == values[0]):
        return values[0]
    return per_value(values, batch)


class LinearMap:
    """``y_j = Σ_k M[j, k]·x_k`` of a per-neuron matrix ``M`` ``[J, K, N]`` on arrays ``[…, N, B]``,
    over the entries that are non-zero for some neuron."""

    def __init__(self, matrix: np.ndarray, batch: int) -> None:
        self.rows: list[list[Term]] = [
            [(k, coefficient(m, batch)) for k, m in enumerate(row) if m.any()] for row in matrix
        ]

    def __call__(self, out: Sequence[np.ndarray], x: Sequence[np.ndarray], scratch: np.ndarray, add: bool) -> None:
        for y, terms in zip(out, self.rows, strict=True):
            combine(y, terms, x, scratch, add)


def rows(a: np.ndarray) -> np.ndarray:
    """The states of ``a`` ``[C, K, …]`` as ``[K, C, …]`` (a view), so that ``rows(a)[k]`` is state ``k``."""
    return a.swapaxes(0, 1)


@dataclass(frozen=True, eq=False)
class Transition:
    """What the step ``t → t + 1`` reads of the states ``v[t]`` and spikes ``S[t]`` of a run of
    ``C`` steps (``[C, N, B]`` unless said), ``None`` where it is not needed."""

    v: np.ndarray  # [C, K, N, B]
    spikes: np.ndarray  # bool, or the float values of the incoming history
    theta: np.ndarray | None  # θ_eff; None when g = 0 (θ)
    keep: np.ndarray | None  # 1 − z·S; None when no neuron resets to zero
    lowered: np.ndarray | None  # s·S; None unless GenericNeurons.subtract_nb
    coupling: np.ndarray | None  # W [C, K', N, B] by row of GenericNeurons.coupling; None when fixed or zero

    @property
    def kept(self) -> list[np.ndarray]:
        """The states ``m(v[t])`` by row: ``U`` times ``1 − z·S[t]``."""
        states = list(rows(self.v))
        if self.keep is not None:
            states[0] = states[0] * self.keep
        return states


class GenericNeurons:
    """The per-neuron constants of one call from the table ``[P, N]`` (:mod:`snngraph.neurons`),
    and the steps of the forward and backward recursions (see the module docstring); ``wants``:
    the groups of the table whose gradient the backward pass computes."""

    def __init__(self, table: np.ndarray, batch: int, detach_reset: bool, wants: frozenset[str] = frozenset()) -> None:
        k, n, dtype = n_states_of(table), table.shape[1], table.dtype
        at = block_rows(k)
        a = table[at["A"]].reshape(k, k, n)
        e, b, c, r, g = (table[at[name]] for name in ("e", "b", "c", "r", "g"))
        theta, spiking = table[THETA], table[SPIKING] > 0
        subtract, zero = (table[SUBTRACT] > 0).astype(dtype), (table[ZERO] > 0).astype(dtype)
        self.k, self.dtype = k, dtype
        self.theta_nb = per_value(theta, batch)
        self.threshold_nb = per_value(np.where(spiking, theta, np.inf).astype(dtype), batch)  # ∞: readouts
        self.spiking_nb = None if spiking.all() else per_value(spiking, batch)  # None: all spike
        self.zero_nb = per_value(zero, batch) if zero.any() else None
        onset = table[onset_row(k)]
        self.onset = onset if onset.any() else None  # None: every neuron lives from step 0
        self.last_onset = int(onset.max())
        # s as [N, B], where a transition needs s·S: for J[t] when g ≠ 0, or for ∂r, ∂θ, ∂g
        lowered = subtract.any() and (g.any() or bool({"r", "theta", "g"} & wants))
        self.subtract_nb = per_value(subtract, batch) if lowered else None
        self.adaptive = bool(g.any())
        sub_r = subtract * r  # s·r [K, N]
        # forward: v[t] = [A | e | c − s·θ·r]·(m, I[t], S_p) + b, and − s·r·(θ_eff[t−1]·S_p) when g ≠ 0
        spike = c if self.adaptive else c - sub_r * theta
        self.update = LinearMap(np.concatenate([a, e[:, None], spike[:, None]], axis=1), batch)
        self.bias_nb = np.repeat(b[:, :, None], batch, axis=2) if b.any() else None
        self.reset = LinearMap(-sub_r[:, None], batch) if self.adaptive else None
        self.adaptation = LinearMap(g[None], batch)  # g·v
        # backward
        self.transposed = LinearMap(a.transpose(1, 0, 2), batch)  # Aᵀ
        self.to_current = LinearMap(e[None], batch)  # λI = e·λv
        self.reset_dot = LinearMap(r[None], batch)  # r·λ
        self.minus_g = LinearMap(-g[:, None], batch)
        unit = np.zeros_like(g)
        unit[0] = 1
        self.spike_gain = LinearMap((unit - g)[:, None], batch)  # (e₀ − g)·σ'·λS
        # W = c − z·v₀·A[:, 0] − s·θ_eff·r: its rows that are non-zero for some neuron, and their
        # terms when W is the same every step (no zero reset in it, θ_eff = θ)
        zero_a, sub_r_w = (np.zeros_like(c), np.zeros_like(c)) if detach_reset else (zero * a[:, 0], sub_r)
        self.coupling = [j for j in range(k) if c[j].any() or zero_a[j].any() or sub_r_w[j].any()]
        fixed = not zero_a.any() and not (self.adaptive and sub_r_w.any())
        self.fixed_coupling = LinearMap((c - sub_r_w * theta)[None], batch).rows[0] if fixed else None
        self._coupling = [(c[j], zero_a[j], sub_r_w[j]) for j in self.coupling]  # [N] each

    def gate(self, t0: int, t1: int) -> np.ndarray | None:
        """``[t ≥ onset]`` ``[t1 − t0, N, 1]`` bool of steps ``t0 … t1−1``: the bias and the spikes
        (with their surrogate) act from each neuron's onset on; ``None`` once every neuron is past it."""
        return None if self.onset is None or t0 >= self.last_onset else live(self.onset, t0, t1)[:, :, None]

    # ------------------------------------------------------------------ the forward step

    def threshold(self, v: Sequence[np.ndarray], out: np.ndarray, scratch: np.ndarray) -> np.ndarray | None:
        """θ_eff = θ + g·v into ``out`` from the states ``v`` by row (``[N, B]`` or ``[C, N, B]``
        each), summed over the states in their order as :func:`snngraph.neurons.threshold` does;
        ``None`` when g = 0 (θ_eff = θ)."""
        if not self.adaptive:
            return None
        self.adaptation((out,), v, scratch, add=False)
        out += self.theta_nb
        return out

    def fire(self, u: np.ndarray, theta: np.ndarray | None, out: np.ndarray, gate: np.ndarray | None) -> np.ndarray:
        """S = spiking·[t ≥ onset]·H(U − θ_eff) as bool into ``out`` (θ_eff ``None``: θ; ``gate``
        of :meth:`gate`, ``None``: all live)."""
        if theta is None:
            np.greater(u, self.threshold_nb, out=out)  # threshold ∞ for readouts
        else:
            np.greater(u, theta, out=out)
            if self.spiking_nb is not None:
                np.logical_and(out, self.spiking_nb, out=out)
        if gate is not None:
            np.logical_and(out, gate, out=out)
        return out

    def advance(
        self,
        out: np.ndarray,
        prev: np.ndarray,
        spikes: np.ndarray,
        theta: np.ndarray | None,
        current: np.ndarray,
        gate: np.ndarray | None,
        work: tuple[np.ndarray, np.ndarray],
    ) -> None:
        """``out`` = v[t] ``[K, N, B]`` from ``prev`` = v[t−1], ``spikes`` = S[t−1] ``[N, B]`` (bool,
        or float for the history), ``theta`` = θ_eff[t−1] (:meth:`threshold`), ``current`` = I[t]
        and ``gate`` = [t ≥ onset] ``[N, 1]`` (``None``: all live); ``work``: two ``[N, B]`` arrays."""
        scratch, kept = work
        states = list(prev)
        if self.zero_nb is not None:  # m₀ = U[t−1]·(1 − z·S[t−1])
            np.multiply(self.zero_nb, spikes, out=kept)
            np.subtract(1, kept, out=kept)
            states[0] = np.multiply(prev[0], kept, out=kept)
        self.update(out, (*states, current, spikes), scratch, add=False)
        if self.bias_nb is not None:
            out += self.bias_nb if gate is None else self.bias_nb * gate
        if self.reset is not None:  # − s·r·θ_eff[t−1]·S[t−1]
            self.reset(out, (np.multiply(theta, spikes, out=kept),), scratch, add=True)

    # ------------------------------------------------------------------ the backward step

    def spikes(self, v: np.ndarray, t0: int) -> tuple[np.ndarray, np.ndarray | None]:
        """S (bool) and θ_eff (``None`` when g = 0) ``[C, N, B]`` of the states ``v`` ``[C, K, N, B]``
        of steps ``t0 …``."""
        shape = (v.shape[0], *v.shape[2:])
        theta = self.threshold(rows(v), np.empty(shape, self.dtype), np.empty(shape, self.dtype))
        return self.fire(v[:, 0], theta, np.empty(shape, bool), self.gate(t0, t0 + v.shape[0])), theta

    def transitions(self, v: np.ndarray, t0: int, spikes: np.ndarray | None = None) -> Transition:
        """The :class:`Transition` of the states ``v`` ``[C, K, N, B]`` of steps ``t0 …``, with
        their own spikes or the given ``spikes`` ``[C, N, B]`` (the incoming history)."""
        fired, theta = self.spikes(v, t0)
        spikes = fired if spikes is None else spikes
        keep = None if self.zero_nb is None else 1 - self.zero_nb * spikes
        lowered = None if self.subtract_nb is None else self.subtract_nb * spikes
        coupling = None
        if self.coupling and self.fixed_coupling is None:
            coupling = np.empty((v.shape[0], len(self.coupling), *v.shape[2:]), self.dtype)
            theta_eff = self.theta_nb if theta is None else theta
            for out, (c, zero_a, sub_r) in zip(rows(coupling), self._coupling, strict=True):
                out[...] = c[:, None]
                if zero_a.any():
                    out -= zero_a[:, None] * v[:, 0]
                if sub_r.any():
                    out -= sub_r[:, None] * theta_eff
        return Transition(v, spikes, theta, keep, lowered, coupling)

    def gain(self, surrogate: Surrogate, u: np.ndarray, theta: np.ndarray | None, t0: int) -> np.ndarray:
        """σ' = spiking·[t ≥ onset]·σ'(U − θ_eff) of a run of steps ``t0 …`` (``u`` ``[C, N, B]``)."""
        with np.errstate(over="ignore", under="ignore"):
            gain = surrogate.grad_into(np.subtract(u, self.theta_nb if theta is None else theta))
        if self.spiking_nb is not None:
            gain *= self.spiking_nb
        gate = self.gate(t0, t0 + u.shape[0])
        if gate is not None:
            gain *= gate
        return gain

    def couple(
        self, step: Transition, i: int, following: np.ndarray, part: np.ndarray | None, scratch: np.ndarray
    ) -> np.ndarray | None:
        """``part + W[t]·λv[t+1]`` (in place; a new array for ``part`` ``None``, and ``None`` for
        neither), ``t`` step ``i`` of ``step``, ``following`` = λv[t+1] ``[K, N, B]``."""
        if step.coupling is not None:
            terms = list(zip(self.coupling, step.coupling[i], strict=True))
        elif self.fixed_coupling:
            terms = self.fixed_coupling
        else:
            return part
        if part is None:
            part = np.empty_like(scratch)
            combine(part, terms, following, scratch, add=False)
        else:
            combine(part, terms, following, scratch, add=True)
        return part

    def pull_back(
        self,
        step: Transition,
        i: int,
        following: np.ndarray,
        out: np.ndarray,
        work: tuple[np.ndarray, np.ndarray],
        add: bool,
    ) -> None:
        """``out = J[t]ᵀ·λv[t+1]`` ``[K, N, B]`` (``out +=`` with ``add``; ``following`` = λv[t+1],
        ``t`` step ``i`` of ``step``); ``work``: two ``[N, B]`` arrays."""
        scratch, part = work
        for j, terms in enumerate(self.transposed.rows):
            if j == 0 and step.keep is not None:  # (Dᵀ·Aᵀ·λ)₀ = (1 − z·S)·(Aᵀ·λ)₀
                combine(part, terms, following, scratch, add=False)
                if add:
                    part *= step.keep[i]
                    out[0] += part
                else:
                    np.multiply(part, step.keep[i], out=out[0])
            else:
                combine(out[j], terms, following, scratch, add=add)
        if self.adaptive and step.lowered is not None:  # − s·S·g·(r·λ)
            self.reset_dot((part,), following, scratch, add=False)
            part *= step.lowered[i]
            self.minus_g(out, (part,), scratch, add=True)


class TableGradient:
    """The running sums (float64) of the wanted groups of the table's gradient (module docstring)."""

    def __init__(self, neurons: GenericNeurons, wants: frozenset[str], n: int) -> None:
        k = neurons.k
        shapes = {"theta": (n,), "A": (k, k, n)}
        self.neurons = neurons
        self.sums = {name: np.zeros(shapes.get(name, (k, n))) for name in wants}

    def _add(self, name: str, terms: np.ndarray, sign: float = 1.0) -> None:
        """Add ``sign`` times the sum of ``terms`` ``[C, …, N, B]`` over the steps and the batch to group ``name``."""
        total = terms.sum(axis=(0, terms.ndim - 1), dtype=np.float64)
        self.sums[name] += total if sign > 0 else -total

    def add_steps(
        self, t0: int, v: np.ndarray, lam_v: np.ndarray, gain_lam_s: np.ndarray | None, current: np.ndarray | None
    ) -> None:
        """The terms of steps ``t0 …``: ``v[t]``, ``λv[t]`` ``[C, K, N, B]``, ``σ'·λS[t]`` and
        ``I[t]`` ``[C, N, B]`` (``gain_lam_s`` ``None``: zero; ``current`` ``None``: ``e`` is not
        wanted); the bias acts from each neuron's onset on."""
        sums = self.sums
        if "b" in sums:
            gate = self.neurons.gate(t0, t0 + lam_v.shape[0])
            self._add("b", lam_v if gate is None else lam_v * gate[:, None])
        if "e" in sums:
            self._add("e", lam_v * current[:, None])
        if gain_lam_s is not None and "theta" in sums:
            self._add("theta", gain_lam_s, -1)
        if gain_lam_s is not None and "g" in sums:
            self._add("g", v * gain_lam_s[:, None], -1)

    def add_transitions(self, step: Transition, following: np.ndarray) -> None:
        """The terms of the transitions of ``step`` with λv[t+1] = ``following`` ``[C, K, N, B]``."""
        sums, neurons = self.sums, self.neurons
        if "A" in sums:
            kept = np.stack(step.kept, axis=1)
            for j in range(neurons.k):
                sums["A"][j] += (following[:, j, None] * kept).sum(axis=(0, 3), dtype=np.float64)
        if "c" in sums:
            self._add("c", following * step.spikes[:, None])
        if step.lowered is None:
            return
        if "r" in sums:  # s·θ_eff·S
            theta = neurons.theta_nb if step.theta is None else step.theta
            self._add("r", following * (step.lowered * theta)[:, None], -1)
        if "theta" in sums or "g" in sums:  # s·S·(r·λv[t+1])
            lowered = np.empty_like(step.lowered)
            neurons.reset_dot((lowered,), rows(following), np.empty_like(lowered), add=False)
            lowered *= step.lowered
            if "theta" in sums:
                self._add("theta", lowered, -1)
            if "g" in sums:
                self._add("g", step.v * lowered[:, None], -1)

    def result(self, dtype: np.dtype) -> dict[str, np.ndarray]:
        return {name: total.astype(dtype) for name, total in self.sums.items()}
