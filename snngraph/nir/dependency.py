"""The optional ``nir`` package (``pip install snngraph[nir]``), imported when first used."""

from __future__ import annotations

from typing import Any

from snngraph._optional import require


def nir_module() -> Any:
    """``import nir``, or an ImportError that gives the install line."""
    return require("nir", "snngraph's NIR converters", "nir")


__all__ = ["nir_module"]
