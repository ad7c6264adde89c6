"""Import NIR graphs into snngraph and export snngraph networks to NIR.

NIR (the Neuromorphic Intermediate Representation, ``pip install snngraph[nir]``) describes a
network in continuous time and stores no timestep: every conversion takes a ``dt`` and a
:class:`Discretisation` of NIR's neurons into snngraph steps.

- :mod:`snngraph.nir.discretisation`: continuous time → steps of ``dt`` (α, κ, delays) and back;
- :mod:`snngraph.nir.importer`: :func:`from_nir`, with :mod:`~snngraph.nir.subgraphs` (nested
  graphs flattened), :mod:`~snngraph.nir.converters` (one converter per NIR node type),
  :mod:`~snngraph.nir.signals` (what flows along chains of stateless nodes) and
  :mod:`~snngraph.nir.paths` (those maps as synapse paths that keep a tied kernel or matrix);
- :mod:`snngraph.nir.exporter`: :func:`to_nir` and :class:`NIRExportWarning`, with
  :mod:`~snngraph.nir.structured` (conv and pool edges as NIR nodes).

See ``docs/nir.md`` for the node table and the recipes that reproduce snnTorch and Norse.
"""

from snngraph.nir.discretisation import DECAYS, INPUT_SCALES, Discretisation
from snngraph.nir.exporter import RESISTANCES, NIRExportWarning, to_nir
from snngraph.nir.importer import CYCLE_BIASES, IMPORT_RESETS, from_nir

__all__ = [
    "CYCLE_BIASES",
    "DECAYS",
    "IMPORT_RESETS",
    "INPUT_SCALES",
    "RESISTANCES",
    "Discretisation",
    "NIRExportWarning",
    "from_nir",
    "to_nir",
]
