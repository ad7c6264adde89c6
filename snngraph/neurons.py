"""The one home of the per-neuron quantities: the generic neuron and its table.

Every neuron of the layer is a small linear system with ``K`` state variables ``v[t] ∈ R^K``,
``v₀ = U`` the membrane (docs/design.md, "Neurons"):

    v[t]     = A·m(v[t−1]) + e·I[t] + b + (c − s·θ_eff[t−1]·r)·S[t−1]
    θ_eff[t] = θ + g·v[t]
    S[t]     = spiking·H(U[t] − θ_eff[t])

where ``m(v)`` multiplies ``U`` alone by ``1 − z·S[t−1]`` (the zero reset), ``s`` and ``z`` are
the subtract and zero reset flags, ``r`` says which states the subtract reset lowers (``e₀`` for
every named kind but SE-adLIF) and ``spiking`` is 0 for leaky readouts.  ``K = 1``, ``A = [α]``,
``e = r = 1``, ``b = c = g = 0`` is the plain LIF neuron:

    U[t] = α·U[t−1]·(1 − z·S[t−1]) + I[t] − s·θ·S[t−1],        S[t] = H(U[t] − θ)

A neuron is inert before its *onset* step: its drive ``b`` and its spikes (with their
surrogate gradient) are multiplied by ``[t ≥ onset]``.  A population that compile delays by a
lag of ``r`` steps starts at layer step ``r`` of a run from rest; before that, the layered network
has no such neuron, so no bias may act and no gradient may flow through its spikes
(:class:`snngraph.SNN` sets the onsets per call; 0 once the run is past the lags).

All of it lives in one table ``[P, N]``, ``P = 5 + K² + 5K``: the rows θ, s, z, spiking
(:data:`THETA` … :data:`SPIKING`), then the blocks ``A`` (``K²`` rows, row-major), ``e``, ``b``,
``c``, ``r``, ``g`` (``K`` rows each) at :func:`block_rows`, and last the onset row
(:func:`onset_row`).  The compiled network keeps it as
float64 NumPy, the module builds it per call from the named parameters of its populations
(:mod:`snngraph.kinds`), and the backends and kernels read it by these positions.  The reset
names of the graph (:data:`RESETS`) become flags and back only at the graph's boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

THETA, SUBTRACT, ZERO, SPIKING = range(4)
"""The rows θ, s, z, spiking of the table; the generic blocks follow (:func:`block_rows`)."""
FLAGS = slice(SUBTRACT, SPIKING + 1)
"""The constant 0/1 rows s, z, spiking."""
BLOCKS = ("A", "e", "b", "c", "r", "g")
"""The generic blocks, in their order in the table after the four leading rows."""
GROUPS = ("theta", *BLOCKS)
"""What a backend may be asked for the gradient of (``Needs.neurons``): θ and the blocks."""
RESETS = ("subtract", "zero", "none")
"""What a spike does to the membrane: subtract θ_eff, set U to zero, or nothing."""
MAX_STATES = 4


def n_rows(n_states: int) -> int:
    """``P`` of a table with ``K = n_states`` state variables."""
    return 5 + n_states * n_states + 5 * n_states


def n_states_of(table: torch.Tensor | np.ndarray) -> int:
    """``K`` of a table ``[P, N]`` (``P = 5 + K² + 5K``)."""
    rows = table.shape[0]
    k = round((math.sqrt(5 + 4 * rows) - 5) / 2)
    if k < 1 or n_rows(k) != rows:
        raise ValueError(f"a neuron table has 5 + K² + 5K rows (K = 1 … 4: 11, 19, 29, 41); got {rows}")
    return k


def onset_row(n_states: int) -> int:
    """The row of the onsets (the last one)."""
    return n_rows(n_states) - 1


def block_rows(n_states: int) -> dict[str, slice]:
    """The rows of each generic block in a table of ``K = n_states``: ``A`` ``K²`` rows
    (``A[j, k]`` at ``j·K + k``), ``e``, ``b``, ``c``, ``r``, ``g`` ``K`` rows each."""
    rows, start = {}, 4
    for name in BLOCKS:
        size = n_states * n_states if name == "A" else n_states
        rows[name] = slice(start, start + size)
        start += size
    return rows


def reset_flags(reset: str) -> tuple[float, float]:
    """``(s, z)`` of a reset name."""
    if reset not in RESETS:
        raise ValueError(f"unknown reset {reset!r}; choose one of {RESETS}")
    return float(reset == "subtract"), float(reset == "zero")


def reset_name(subtract: float, zero: float) -> str:
    """The reset name of the flags ``(s, z)``."""
    return "subtract" if subtract else "zero" if zero else "none"


@dataclass(frozen=True)
class Generic:
    """One table's columns as named blocks, ``[K, K, N]`` for ``A`` and ``[K, N]`` for the others."""

    A: torch.Tensor
    e: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor
    r: torch.Tensor
    g: torch.Tensor
    theta: torch.Tensor
    subtract: torch.Tensor
    zero: torch.Tensor
    spiking: torch.Tensor
    onset: torch.Tensor

    @classmethod
    def of(cls, table: torch.Tensor) -> Generic:
        k, n = n_states_of(table), table.shape[1]
        rows = block_rows(k)
        blocks = {name: table[rows[name]] for name in BLOCKS}
        blocks["A"] = blocks["A"].reshape(k, k, n)
        rows = {"theta": THETA, "subtract": SUBTRACT, "zero": ZERO, "spiking": SPIKING, "onset": onset_row(k)}
        return cls(**blocks, **{name: table[row] for name, row in rows.items()})


def assemble(
    blocks: dict[str, torch.Tensor],
    theta: torch.Tensor,
    subtract: torch.Tensor,
    zero: torch.Tensor,
    spiking: torch.Tensor,
    onset: torch.Tensor | None = None,
) -> torch.Tensor:
    """The table ``[P, N]`` of the blocks (``A`` ``[K, K, N]``, the others ``[K, N]``) and the
    per-neuron rows (differentiable in every argument; ``onset`` defaults to 0)."""
    k, n = blocks["e"].shape
    onset = torch.zeros_like(theta) if onset is None else onset
    parts = [theta[None], subtract[None], zero[None], spiking[None], blocks["A"].reshape(k * k, n)]
    return torch.cat(parts + [blocks[name] for name in BLOCKS[1:]] + [onset[None]])


def onset_gate(table: torch.Tensor, steps: int) -> torch.Tensor | None:
    """``[t ≥ onset]`` ``[T, N]`` in the table's dtype, or ``None`` when every onset is 0."""
    onset = table[onset_row(n_states_of(table))]
    if not bool(onset.any()):
        return None
    return (torch.arange(steps, device=table.device, dtype=table.dtype)[:, None] >= onset).to(table.dtype)


@dataclass(frozen=True, eq=False)
class NeuronParams:
    """The neuron table of one call, ``table`` ``[P, N]`` in the compute dtype.

    ``trainable`` names the groups (:data:`GROUPS`) whose gradient the backends compute; the
    gradient of the table has zeros in the other rows.
    """

    table: torch.Tensor
    trainable: frozenset[str] = frozenset()


def threshold(table: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """θ_eff = θ + g·v where the neuron spikes, ∞ for readouts; ``v`` ``[…, K, B, N]`` (θ alone,
    ``[N]``, when ``g = 0`` everywhere)."""
    g = Generic.of(table)
    theta = g.theta + (g.g[:, None, :] * v).sum(-3) if bool(g.g.any()) else g.theta
    return torch.where(g.spiking > 0, theta, math.inf)


def spikes(v: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """S = spiking·[t ≥ onset]·H(U − θ_eff) ``[T, B, N]`` as 0/1 values of ``v``'s dtype, from the
    states ``v`` ``[T, K, B, N]`` of steps 0 … T − 1."""
    fired = v[:, 0] > threshold(table, v)
    gate = onset_gate(table, v.shape[0])
    if gate is not None:
        fired &= gate[:, None, :] > 0
    return fired.to(v.dtype)


def table_gradient(like: torch.Tensor, groups: dict[str, torch.Tensor | None]) -> torch.Tensor:
    """The gradient of a table ``like`` ``[P, N]``: the given groups (``theta`` ``[N]``, ``A``
    ``[K, K, N]``, the other blocks ``[K, N]``) where not ``None``, zero elsewhere."""
    grad = torch.zeros_like(like)
    rows = {"theta": slice(THETA, THETA + 1), **block_rows(n_states_of(like))}
    for name, value in groups.items():
        if value is not None:
            grad[rows[name]] = value.reshape(-1, like.shape[1])
    return grad


def is_plain(table: np.ndarray) -> bool:
    """Whether a float64 table is that of plain LIF/LI neurons with a bias (``K = 1``,
    ``e = r = 1``, ``c = g = 0``), which a backend may run with a one-state update."""
    if n_states_of(table) != 1:
        return False
    rows = block_rows(1)
    return bool(
        np.all(table[rows["e"]] == 1)
        and np.all(table[rows["r"]] == 1)
        and not table[rows["c"]].any()
        and not table[rows["g"]].any()
    )
