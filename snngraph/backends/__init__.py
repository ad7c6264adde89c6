"""Backends that run the compiled layer, by name (see :mod:`snngraph.backends.base`).

``"reference"`` (dense torch autograd, the oracle), ``"scipy"`` (CPU, event-driven) and
``"triton"`` (GPU kernels).  ``"auto"`` picks scipy for CPU tensors and triton for CUDA ones.
"""

from __future__ import annotations

import torch

from snngraph.backends.base import Backend, Layer, LayerInputs
from snngraph.backends.reference import ReferenceBackend
from snngraph.backends.scipy import ScipyBackend
from snngraph.backends.triton import TritonBackend

BACKENDS: dict[str, Backend] = {
    backend.name: backend for backend in (ReferenceBackend(), ScipyBackend(), TritonBackend())
}
AUTO = {"cpu": "scipy", "cuda": "triton"}


def get_backend(name: str, device: torch.device) -> Backend:
    """The backend called ``name`` (or chosen for ``device`` when ``"auto"``), checked to run there."""
    if name == "auto":
        if device.type not in AUTO:
            raise ValueError(f"backend='auto' has no backend for device {device}; use backend='reference'")
        name = AUTO[device.type]
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {['auto', *BACKENDS]}")
    backend = BACKENDS[name]
    reason = backend.unavailable_reason(device)
    if reason is not None:
        raise RuntimeError(f"backend {name!r} cannot run on {device}: {reason}")
    return backend


__all__ = ["AUTO", "BACKENDS", "Backend", "Layer", "LayerInputs", "get_backend"]
