"""What flows along a chain of stateless NIR nodes, as a linear function of population outputs.

Between two neuron nodes NIR may put any chain of ``Linear``, ``Affine``, ``Conv1d``/``Conv2d``,
``SumPool2d``/``AvgPool2d``, ``Scale``, ``Flatten`` and ``Delay`` nodes.  Each of them maps its
input linearly (plus a constant and a shift in time), so whatever leaves the chain is a
:class:`Signal`: a sum of linear maps (:class:`~snngraph.nir.paths.Paths`) applied to delayed
population outputs, plus delayed constants.  The importer turns each term into one snngraph
edge and each constant into the target's bias (undelayed) or a current from the bias input.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from snngraph.nir.paths import NodeMap, Paths

BiasKey = tuple[str | None, int]  # (carrier population or None, delay in steps)


@dataclass
class Signal:
    """The output of a stateless NIR node as a sum over populations and delays:

        y[t] = Σ_{(p, d)} M_{p,d} · out_p[t − d]  +  Σ_{(c, d)} b_{c,d} · [t ≥ d]

    ``terms`` maps (source population, delay in steps) to the map ``M`` ``[size, source size]``;
    ``bias`` maps (carrier, delay) to ``b`` of shape ``[size]``, where the carrier is the one
    population whose undelayed output the ``Affine`` that put the bias in was reading (``None``
    when it read several, or none undelayed): a bias travels with its carrier's feedback when
    the importer closes a cycle (``cycle_bias="feedback"``).  ``bias_nodes`` names the NIR nodes
    that put a bias in (for error messages).  ``shape`` is the shape of the values, ``(C, L)`` or
    ``(C, H, W)`` flattened in C order, when the chain knows it (``None``: flat).
    """

    size: int
    terms: dict[tuple[str, int], Paths] = field(default_factory=dict)
    bias: dict[BiasKey, np.ndarray] = field(default_factory=dict)
    bias_nodes: tuple[str, ...] = ()
    shape: tuple[int, ...] | None = None

    @classmethod
    def source(cls, name: str, size: int, shape: tuple[int, ...] | None = None) -> Signal:
        """The output of population ``name`` itself: ``y[t] = out[t]``."""
        return cls(size, {(name, 0): Paths.eye(size)}, shape=shape)

    def __add__(self, other: Signal) -> Signal:
        terms, bias = dict(self.terms), dict(self.bias)
        for key, paths in other.terms.items():
            terms[key] = terms[key] + paths if key in terms else paths
        for key, vector in other.bias.items():
            bias[key] = bias[key] + vector if key in bias else vector
        shape = self.shape if self.shape is not None else other.shape
        return Signal(self.size, terms, bias, self.bias_nodes + other.bias_nodes, shape)

    def then(self, step: NodeMap, shape: tuple[int, ...] | None = None) -> Signal:
        """The node ``step`` applied to every term and bias; ``shape`` is that of its output."""
        terms = {key: paths.then(step) for key, paths in self.terms.items()}
        bias = {key: step.apply(vector) for key, vector in self.bias.items()}
        return Signal(step.shape[0], terms, bias, self.bias_nodes, shape)

    def reshaped(self, shape: tuple[int, ...] | None) -> Signal:
        """The same values seen with another shape (``Flatten``)."""
        return replace(self, shape=shape)

    def with_bias(self, node: str, vector: np.ndarray, carrier: str | None) -> Signal:
        """``y + b``, the bias ``b`` put in by NIR node ``node`` reading ``carrier`` (nothing when it is zero)."""
        if not np.any(vector):
            return self
        return self + Signal(self.size, {}, {(carrier, 0): vector}, (node,))

    def carrier(self) -> str | None:
        """The one population whose undelayed output this signal reads, if there is exactly one."""
        sources = {source for source, delay in self.terms if delay == 0}
        return next(iter(sources)) if len(sources) == 1 else None

    def delayed(self, steps: np.ndarray) -> Signal:
        """Row ``i`` delayed by ``steps[i]``: terms and biases split by distinct delay."""
        result = Signal(self.size, {}, {}, self.bias_nodes, self.shape)
        for k in np.unique(steps):
            mask = steps == k
            terms = {(src, d + int(k)): m.select_rows(mask) for (src, d), m in self.terms.items()}
            bias = {(carrier, d + int(k)): b * mask for (carrier, d), b in self.bias.items()}
            result = result + Signal(self.size, terms, bias)
        return result


__all__ = ["BiasKey", "Signal"]
