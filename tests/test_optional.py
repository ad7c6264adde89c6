"""A missing optional dependency is named with its install line."""

from __future__ import annotations

import sys

import pytest

import snngraph
from snngraph.datasets import shd
from snngraph.train import History


@pytest.mark.parametrize(
    ("module", "call", "message"),
    [
        (
            "nir",
            lambda: snngraph.to_nir(snngraph.Graph(), dt=1.0),
            r"NIR converters needs nir: pip install snngraph\[nir\]",
        ),
        (
            "matplotlib.figure",
            lambda: snngraph.plot.training(History(train_loss=[1.0])),
            r"snngraph.plot needs matplotlib: pip install snngraph\[examples\]",
        ),
        ("h5py", lambda: shd(__file__), r"reading SHD files needs h5py: pip install snngraph\[examples\]"),
    ],
)
def test_missing_optional_dependency_names_the_extra(monkeypatch, module, call, message) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ImportError, match=message):
        call()
