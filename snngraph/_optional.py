"""Optional dependencies, imported when first used, with the install line when missing."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, purpose: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an ImportError saying what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{purpose} needs {module.split('.')[0]}: pip install snngraph[{extra}]") from error
