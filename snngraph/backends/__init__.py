"""The backends that run the layer, chosen and configured by value.

``"reference"`` (plain torch, differentiated by autograd: the oracle), ``"cpu"`` (event-driven
sparse products on the CPU) and ``"triton"`` (GPU kernels); ``"auto"`` picks ``cpu`` for CPU
tensors and ``triton`` for CUDA ones.  A backend is configured by passing its options object
instead of its name: ``CpuOptions(...)`` or ``TritonOptions(...)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from snngraph.backends.base import Backend, LayerInputs, LayerSpec, Needs, Plan
from snngraph.backends.cpu import CpuBackend, CpuOptions
from snngraph.backends.reference import ReferenceBackend
from snngraph.backends.triton import TritonBackend, TritonOptions

BackendChoice = str | CpuOptions | TritonOptions
"""What ``SNN(backend=...)`` takes: a name of :data:`BACKENDS`, ``"auto"``, or an options object."""

BACKENDS: dict[str, Callable[[], Backend]] = {
    "reference": ReferenceBackend,
    "cpu": CpuBackend,
    "triton": TritonBackend,
}
"""Each backend name and how to make that backend with its default options."""
AUTO = {"cpu": "cpu", "cuda": "triton"}
"""The backend that ``"auto"`` picks for each device type."""
_BY_OPTIONS: dict[type, Callable[..., Backend]] = {CpuOptions: CpuBackend, TritonOptions: TritonBackend}


def check_choice(choice: BackendChoice) -> None:
    """Raise a ``ValueError``/``TypeError`` unless ``choice`` names or configures a backend."""
    if isinstance(choice, str):
        if choice != "auto" and choice not in BACKENDS:
            raise ValueError(f"unknown backend {choice!r}; choose one of {['auto', *BACKENDS]}")
    elif type(choice) not in _BY_OPTIONS:
        raise TypeError(
            f"backend must be a name ({['auto', *BACKENDS]}) or CpuOptions/TritonOptions, got {type(choice).__name__}"
        )


def make_backend(choice: BackendChoice, device: torch.device) -> Backend:
    """The backend that ``choice`` names or configures (for ``"auto"``: the one for ``device``),
    checked to run on ``device``."""
    check_choice(choice)
    if isinstance(choice, str):
        name = choice
        if name == "auto":
            if device.type not in AUTO:
                raise ValueError(f"backend='auto' has no backend for device {device}; use backend='reference'")
            name = AUTO[device.type]
        backend = BACKENDS[name]()
    else:
        backend = _BY_OPTIONS[type(choice)](choice)
    reason = backend.unavailable_reason(device)
    if reason is not None:
        raise RuntimeError(f"backend {backend.name!r} cannot run on {device}: {reason}")
    return backend


__all__ = [
    "AUTO",
    "BACKENDS",
    "Backend",
    "BackendChoice",
    "CpuOptions",
    "LayerInputs",
    "LayerSpec",
    "Needs",
    "Plan",
    "TritonOptions",
    "check_choice",
    "make_backend",
]
