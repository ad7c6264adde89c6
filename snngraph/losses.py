"""Losses and readouts on the output of an :class:`~snngraph.SNN` (notation of docs/design.md, "The model").

A *readout* reduces one population's spikes ``S`` or membrane ``U`` (``[T, B, N]``, graph time)
to scores ``[B, N]``:

==========  ===========================  ==========================================
readout     scores                       usual use
==========  ===========================  ==========================================
``count``   ŷ = Σ_t S[t]                 the blog post's loss, rate codes (``lif``)
``max``     max_t U[t]                   SHD / Randman classification (``li``)
``mean``    (1/T) Σ_t U[t]               smoother than max
``last``    U[T−1]                       decision at the end of the sequence
==========  ===========================  ==========================================

A *criterion* compares scores with targets: ``difference`` E = ŷ − y (eq. 4 of the blog post
'Backpropagation for a recurrent LIF layer', docs/design.md, References; a signed error whose
gradient is dŷ/dW), ``mse`` (ŷ − y)², and ``cross_entropy``
−log softmax(scores)_y for integer class labels ``y`` ``[B]``.

The loss objects :class:`SpikeCountLoss` and :class:`MembraneLoss` bind a readout population by
name and follow the contract of :func:`snngraph.train.fit`: ``loss(output, target)`` returns a
scalar and ``loss.predict(output)`` the predicted class ``[B]``.  The functions below them work on
plain tensors, for a training loop of your own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from snngraph.module import SNNOutput

REDUCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"mean": torch.mean, "sum": torch.sum}


def _check_choice(value: str, choices: dict[str, Any], what: str) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {list(choices)}")


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    _check_choice(reduction, REDUCTIONS, "reduction")
    return REDUCTIONS[reduction](values)


def spike_count(spikes: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """ŷ = Σ_t S[t]: spikes ``[T, B, N]`` → counts ``[B, N]`` (time along ``dim``)."""
    return spikes.sum(dim=dim)


def membrane_max(membrane: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """max_t U[t]: ``[T, B, N]`` → ``[B, N]`` (time along ``dim``; the gradient goes to the first maximum)."""
    return membrane.max(dim=dim).values


def membrane_mean(membrane: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """(1/T) Σ_t U[t]: ``[T, B, N]`` → ``[B, N]`` (time along ``dim``)."""
    return membrane.mean(dim=dim)


def membrane_last(membrane: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """U[T−1]: ``[T, B, N]`` → ``[B, N]`` (time along ``dim``)."""
    return membrane.select(dim, -1)


MEMBRANE_READOUTS: dict[str, Callable[..., torch.Tensor]] = {
    "max": membrane_max,
    "mean": membrane_mean,
    "last": membrane_last,
}


def _check_same_shape(scores: torch.Tensor, target: torch.Tensor) -> None:
    if target.shape != scores.shape:
        raise ValueError(
            f"target must have the shape of the spike counts [B, N] = {tuple(scores.shape)}, got {tuple(target.shape)}"
        )


def count_difference(counts: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The post's loss E = ŷ − y (eq. 4), reduced over ``[B, N]``; dE/dW = dŷ/dW."""
    _check_same_shape(counts, target)
    return _reduce(counts - target, reduction)


def count_mse(counts: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """(ŷ − y)², reduced over ``[B, N]``."""
    _check_same_shape(counts, target)
    return _reduce((counts - target) ** 2, reduction)


def cross_entropy(scores: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """−log softmax(scores)_y: scores ``[B, K]``, integer labels ``[B]`` in ``[0, K)``."""
    if labels.shape != scores.shape[:1] or labels.dtype.is_floating_point:
        raise ValueError(
            f"labels must be integer class indices of shape [B] = [{scores.shape[0]}], "
            f"got {labels.dtype} {tuple(labels.shape)}"
        )
    return _reduce(F.cross_entropy(scores, labels, reduction="none"), reduction)


COUNT_CRITERIA: dict[str, Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]] = {
    "difference": count_difference,
    "mse": count_mse,
    "cross_entropy": cross_entropy,
}


@dataclass(frozen=True)
class _ReadoutLoss:
    """A loss on the scores ``[B, N]`` of the population ``population``; predicts their argmax."""

    population: Any

    def scores(self, output: SNNOutput) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, output: SNNOutput) -> torch.Tensor:
        """argmax_k scores ``[B]``: the class, one neuron per class."""
        return self.scores(output).argmax(dim=-1)


@dataclass(frozen=True)
class SpikeCountLoss(_ReadoutLoss):
    """A criterion on the spike counts ŷ = Σ_t S[t] ``[B, N]`` of a ``lif`` population.

    ``criterion``: ``"cross_entropy"`` (labels ``[B]``; the population has one neuron per
    class), ``"mse"`` or ``"difference"`` (E = ŷ − y, eq. 4 of the blog post; targets ``[B, N]`` of counts).
    """

    criterion: str = "cross_entropy"
    reduction: str = "mean"

    def __post_init__(self) -> None:
        _check_choice(self.criterion, COUNT_CRITERIA, "criterion")
        _check_choice(self.reduction, REDUCTIONS, "reduction")

    def scores(self, output: SNNOutput) -> torch.Tensor:
        """ŷ ``[B, N]``."""
        kind = output.net.population(self.population).kind
        if kind != "lif":
            raise ValueError(
                f"SpikeCountLoss: population {self.population!r} is {kind!r} and never spikes; "
                "count the spikes of a 'lif' population or use MembraneLoss for an 'li' readout"
            )
        return spike_count(output.spikes(self.population), output.time_dim)

    def __call__(self, output: SNNOutput, target: torch.Tensor) -> torch.Tensor:
        return COUNT_CRITERIA[self.criterion](self.scores(output), target, self.reduction)


@dataclass(frozen=True)
class MembraneLoss(_ReadoutLoss):
    """Cross-entropy on a readout's membrane reduced over time: ``over`` ∈ {max, mean, last}.

    scores[b, k] = max_t U[t, b, k] (or the mean over t, or U[T−1]), then
    L = −log softmax(scores)_y with labels ``[B]``.  The population (usually an ``li`` readout)
    has one neuron per class.
    """

    over: str = "max"
    reduction: str = "mean"

    def __post_init__(self) -> None:
        _check_choice(self.over, MEMBRANE_READOUTS, "readout 'over'")
        _check_choice(self.reduction, REDUCTIONS, "reduction")

    def scores(self, output: SNNOutput) -> torch.Tensor:
        """The reduced membrane ``[B, N]``."""
        return MEMBRANE_READOUTS[self.over](output.membrane(self.population), output.time_dim)

    def __call__(self, output: SNNOutput, target: torch.Tensor) -> torch.Tensor:
        return cross_entropy(self.scores(output), target, self.reduction)


__all__ = [
    "COUNT_CRITERIA",
    "MEMBRANE_READOUTS",
    "MembraneLoss",
    "SpikeCountLoss",
    "count_difference",
    "count_mse",
    "cross_entropy",
    "membrane_last",
    "membrane_max",
    "membrane_mean",
    "spike_count",
]
