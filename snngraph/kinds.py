"""Named neuron kinds and their map onto the generic neuron (docs/design.md, "Neurons").

A population of neurons has a kind, a reset and named parameters, each a scalar or one value per
neuron.  Its state ``v`` holds ``U`` first and the kind's other state variables after it
(:meth:`NeuronModel.states`).  ``I[t]`` is the synaptic input current, ``S[t]`` the spikes, and
every update uses the state after the zero reset of ``S[t − 1]`` (``U·(1 − z·S[t − 1])``):

* ``lif`` — ``U[t] = α·U[t−1] + (1 − α)·v_leak + I[t] + bias − reset``;  with ``alpha_syn = β``
  a current-based synapse (CubaLIF), ``J[t] = β·J[t−1] + I[t] + bias``,
  ``U[t] = α·U[t−1] + (1 − α)·v_leak + J[t] − reset``;
* ``li`` — the same without spikes (a readout; CubaLI with ``alpha_syn``);
* ``alif`` — ``lif`` with an adaptive threshold, ``a[t] = ρ·a[t−1] + S[t−1]``,
  ``θ_eff[t] = θ + γ·a[t]`` (``alpha_adapt = ρ``, ``adapt = γ``);
* ``adlif`` — an adaptation current ``W`` (``alpha_adapt = β``):
  ``U[t] = α·U[t−1] + (1 − α)·(I[t] + bias − W[t−1]) − reset`` and
  ``W[t] = β·W[t−1] + (1 − β)·(a·U[t−1] + b·S[t−1])``, or with ``symplectic`` (SE-adLIF) the new
  membrane ``U[t]`` in place of ``U[t−1]``;
* ``neurons`` — the generic neuron itself, given by its blocks ``A, e, b, c, r, g``.

``reset = "subtract"`` lowers U by the threshold that was crossed, θ_eff[t−1]·S[t−1] (with
``symplectic``, W sees that lowered U); ``"zero"`` sets it to zero; ``"none"`` does nothing.
Decays are clamped to [0, 1] and ``adapt`` to ≥ 0 where the map reads them, so a learned
parameter that an optimizer step pushed outside acts as the nearest valid value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from snngraph.neurons import BLOCKS, MAX_STATES, Generic, assemble, reset_flags

NEURON_KINDS = ("lif", "li", "alif", "adlif", "neurons")
DECAYS = ("alpha", "alpha_syn", "alpha_adapt")
"""Named parameters that are decays per step, in [0, 1]."""
PARAMETERS: dict[str, tuple[str, ...]] = {
    "lif": ("alpha", "theta", "bias", "v_leak", "alpha_syn"),
    "li": ("alpha", "bias", "v_leak", "alpha_syn"),
    "alif": ("alpha", "theta", "bias", "v_leak", "alpha_syn", "alpha_adapt", "adapt"),
    "adlif": ("alpha", "theta", "bias", "alpha_adapt", "a", "b"),
    "neurons": ("theta",),
}
"""The named parameters of each kind (``alpha_syn`` only when the population has a synaptic current)."""
NAMED = ("alpha", "theta", "bias", "v_leak", "alpha_syn", "alpha_adapt", "adapt", "a", "b")
"""Every named parameter, in the order the module registers them."""
DEFAULTS = {"alpha": 0.9, "theta": 1.0, "bias": 0.0, "v_leak": 0.0}
"""Values of the named parameters that a node may leave out; the others are required where they apply."""


@dataclass(frozen=True)
class NeuronModel:
    """What a population's neurons are, besides their parameter values: the kind, the reset, and
    whether it has a synaptic current (``synaptic``) or uses SE-adLIF's update (``symplectic``).
    ``n_states`` is K of the population (for ``neurons``, given by its ``A``)."""

    kind: str
    reset: str
    synaptic: bool = False
    symplectic: bool = False
    n_states: int = 1

    @classmethod
    def named(cls, kind: str, reset: str, synaptic: bool = False, symplectic: bool = False) -> NeuronModel:
        """The model of a named kind (K follows from it)."""
        k = {"lif": 1, "li": 1, "alif": 2, "adlif": 2}[kind] + (synaptic and kind != "adlif")
        return cls(kind, reset, synaptic, symplectic, k)

    @property
    def spiking(self) -> bool:
        return self.kind != "li"

    @property
    def parameters(self) -> tuple[str, ...]:
        """The named parameters that this population reads."""
        names = PARAMETERS[self.kind]
        return tuple(n for n in names if n != "alpha_syn" or self.synaptic)

    @property
    def states(self) -> tuple[str, ...]:
        """The names of the state variables, ``U`` first."""
        if self.kind == "neurons":
            return ("U", *(f"v{k}" for k in range(1, self.n_states)))
        synaptic = ("J",) if self.synaptic else ()
        return {"lif": ("U", *synaptic), "li": ("U", *synaptic), "alif": ("U", *synaptic, "a"), "adlif": ("U", "W")}[
            self.kind
        ]

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "reset": self.reset,
            "synaptic": self.synaptic,
            "symplectic": self.symplectic,
            "n_states": self.n_states,
        }


def _blocks(model: NeuronModel, p: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The generic blocks of a named kind at its own K (``A`` ``[K, K, n]``, the others ``[K, n]``)."""
    alpha = p["alpha"].clamp(0.0, 1.0)
    zero, one = torch.zeros_like(alpha), torch.ones_like(alpha)
    bias = p["bias"]
    if model.kind == "adlif":
        beta, a, b = p["alpha_adapt"].clamp(0.0, 1.0), p["a"], p["b"]
        gain = 1 - alpha  # (1 − α) on the input, the bias and W
        if model.symplectic:  # W[t] sees U[t] = α·U[t−1] − gain·W[t−1] + gain·(I + bias) − reset
            k = (1 - beta) * a
            a_matrix = [[alpha, -gain], [k * alpha, beta - k * gain]]
            e, b_vec, r = [gain, k * gain], [gain * bias, k * gain * bias], [one, k]
        else:
            a_matrix = [[alpha, -gain], [(1 - beta) * a, beta]]
            e, b_vec, r = [gain, zero], [gain * bias, zero], [one, zero]
        c, g = [zero, (1 - beta) * b], [zero, zero]
    else:
        v_leak = p["v_leak"]
        leaks = v_leak.requires_grad or bool(v_leak.any())  # (1 − α)·v_leak: no term, no dependence on α
        leak = (1 - alpha) * v_leak + bias if leaks else bias
        if model.synaptic:
            beta = p["alpha_syn"].clamp(0.0, 1.0)
            a_matrix = [[alpha, beta], [zero, beta]]
            e, b_vec = [one, one], [leak, bias]
        else:
            a_matrix, e, b_vec = [[alpha]], [one], [leak]
        k = len(e)
        r = [one] + [zero] * (k - 1)
        c, g = [zero] * k, [zero] * k
        if model.kind == "alif":
            rho, gamma = p["alpha_adapt"].clamp(0.0, 1.0), p["adapt"].clamp(min=0.0)
            a_matrix = [[*row, zero] for row in a_matrix] + [[zero] * k + [rho]]
            e, b_vec, r = [*e, zero], [*b_vec, zero], [*r, zero]
            c, g = [*c, one], [*g, gamma]
    stack = torch.stack
    return {
        "A": stack([stack(row) for row in a_matrix]),
        "e": stack(e),
        "b": stack(b_vec),
        "c": stack(c),
        "r": stack(r),
        "g": stack(g),
    }


def _pad(blocks: Mapping[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Blocks at a population's K, zero-padded to the layer's ``k`` (the extra states stay zero)."""
    own = blocks["e"].shape[0]
    extra = k - own
    return {
        name: torch.nn.functional.pad(value, (0, 0, 0, extra, 0, extra) if name == "A" else (0, 0, 0, extra))
        for name, value in blocks.items()
    }


def population_columns(
    model: NeuronModel, params: Mapping[str, torch.Tensor], n_states: int, generic: Mapping[str, torch.Tensor] | None
) -> tuple[torch.Tensor, frozenset[str]]:
    """The table columns ``[P, n]`` of one population in a layer of ``n_states`` states,
    differentiable in the named parameters ``params`` (``[n]`` each), and the groups of the
    table (:data:`~snngraph.neurons.GROUPS`) that depend on a parameter that requires grad.

    ``generic`` holds the blocks of a ``neurons`` population (its own K); named kinds build
    theirs from ``params``.
    """
    theta = params["theta"] if "theta" in params else torch.zeros_like(params["alpha"])
    blocks = _blocks(model, params) if generic is None else dict(generic)
    subtract, zero = reset_flags(model.reset)
    flags = [torch.full_like(theta, value) for value in (subtract, zero, float(model.spiking))]
    groups = {name for name, value in blocks.items() if value.requires_grad}
    if theta.requires_grad and model.spiking:
        groups.add("theta")
    return assemble(_pad(blocks, n_states), theta, *flags), frozenset(groups)


def layer_columns(
    populations: Sequence[Any],
    values: Mapping[str, torch.Tensor],
    n_states: int,
    generic: Mapping[Any, Mapping[str, torch.Tensor]],
) -> tuple[torch.Tensor, frozenset[str]]:
    """The table ``[P, N]`` of a layer's populations (each with ``name``, ``model`` and ``slice``,
    as :class:`snngraph.network.PopulationInfo`) from the named parameters ``values`` ``[N]``
    and the blocks of its ``neurons`` populations in ``generic`` (by name), and the groups that
    depend on a parameter that requires grad (:func:`population_columns`, population by
    population)."""
    columns, groups = [], set()
    for p in populations:
        params = {name: values[name][p.slice] for name in p.model.parameters}
        part, trainable = population_columns(p.model, params, n_states, generic.get(p.name))
        columns.append(part)
        groups |= trainable
    return torch.cat(columns, dim=1), frozenset(groups)


def check_states(n_states: int, name: object) -> None:
    if not 1 <= n_states <= MAX_STATES:
        raise ValueError(f"node {name!r}: a neuron has 1 to {MAX_STATES} state variables, got {n_states}")


__all__ = [
    "BLOCKS",
    "DECAYS",
    "NAMED",
    "NEURON_KINDS",
    "PARAMETERS",
    "NeuronModel",
    "layer_columns",
    "population_columns",
]


def neuron_blocks(columns: torch.Tensor, n_states: int) -> dict[str, torch.Tensor]:
    """The blocks of a ``neurons`` population at its own K from its table columns ``[P, n]``."""
    full = Generic.of(columns)
    k = n_states
    return {name: getattr(full, name)[:k, :k] if name == "A" else getattr(full, name)[:k] for name in BLOCKS}
