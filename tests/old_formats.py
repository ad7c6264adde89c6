"""Saved networks rewritten in the layout of older network file formats, for the tests of
:func:`snngraph.load`'s conversions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import snngraph

EDGE_FIELDS_SINCE_4 = ("kind", "param_shape", "param_start", "trainable")


def before_version_4(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and metadata of the network saved at ``path`` as versions 1 to 3 stored its
    synapses: one weight per synapse (``in_weight``/``rec_weight``), no edge parameters, indices,
    kinds or ``trainable`` flags."""
    net = snngraph.load(path)
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files if name not in ("meta", "in_index", "rec_index", "values")}
        meta = json.loads(str(data["meta"]))
    arrays.update(in_weight=net.in_weight, rec_weight=net.rec_weight)
    meta["edges"] = [{k: v for k, v in e.items() if k not in EDGE_FIELDS_SINCE_4} for e in meta["edges"]]
    return arrays, meta
