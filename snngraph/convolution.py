"""Convolution and pooling between shaped populations as synapses that share a kernel
(docs/design.md, "Convolutions and pooling").

A population of shape ``(C, *spatial)`` (``(C, L)`` or ``(C, H, W)``) is flattened in C order, as
PyTorch and NIR do: neuron ``(c, y, x)`` is ``c·H·W + y·W + x``.  A convolution with kernel
``K`` of shape ``(C_out, C_in/groups, k…)`` has one synapse per output position ``o``, output
channel ``co`` and tap ``(ci, κ)`` whose input position lies inside the (unpadded) input:

    post = (co, o),   pre = (g·C_in/groups + ci, o·stride − pad_lo + κ·dilation),
    weight = K[co, ci, κ],   g = co // (C_out/groups)

so that the layer computes ``conv(S_pre, K)`` of ``torch.nn.functional.conv1d/conv2d`` exactly
(padding is zeros, which a synapse that is left out contributes).  A pooling is the depthwise
convolution (``groups = C_out = C``) whose taps all read one fixed value: 1 for a sum, ``1/∏k``
for an average (the divisor of ``avg_pool2d`` with ``count_include_pad=True``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

POOLS = ("sum", "avg")

PADDING_NAMES = ("valid", "same")


@dataclass(frozen=True)
class ConvSpec:
    """The geometry of a convolution (``pool=None``) or a pooling (``pool`` in :data:`POOLS`).

    ``in_shape`` is ``(C_in, *spatial)``; ``padding`` holds ``(before, after)`` per spatial
    dimension (``"same"`` may pad one more after than before, as PyTorch does).
    """

    in_shape: tuple[int, ...]
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int = 1
    pool: str | None = None

    @property
    def kind(self) -> str:
        return "conv" if self.pool is None else "pool"

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        """``(C_out, C_in/groups, k…)``, the layout of ``torch.nn.Conv1d/Conv2d.weight``."""
        return (self.out_channels, self.in_shape[0] // self.groups, *self.kernel_size)

    @property
    def out_shape(self) -> tuple[int, ...]:
        """``(C_out, ⌊(n + before + after − dilation·(k − 1) − 1)/stride⌋ + 1 …)``."""
        spatial = (
            (n + lo + hi - d * (k - 1) - 1) // s + 1
            for n, (lo, hi), d, k, s in zip(
                self.in_shape[1:], self.padding, self.dilation, self.kernel_size, self.stride, strict=True
            )
        )
        return (self.out_channels, *spatial)

    @property
    def value(self) -> float:
        """The fixed weight of a pooling's synapses."""
        return 1.0 if self.pool == "sum" else 1.0 / math.prod(self.kernel_size)

    def padding_attribute(self) -> tuple[int, ...] | tuple[tuple[int, int], ...]:
        """``padding`` as :meth:`snngraph.Graph.connect_conv` takes it: one int per dimension when
        it is symmetric, else the ``(before, after)`` pairs."""
        if all(lo == hi for lo, hi in self.padding):
            return tuple(lo for lo, _ in self.padding)
        return self.padding

    def attributes(self) -> dict[str, Any]:
        """The geometry as edge attributes (besides ``weight`` and ``delay``)."""
        attrs: dict[str, Any] = {
            "kind": self.kind,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding_attribute(),
        }
        if self.pool is None:
            attrs.update(dilation=self.dilation, groups=self.groups)
        else:
            attrs["pool"] = self.pool
        return attrs

    def synapses(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(post, pre, tap)`` int64 per synapse, ordered by output neuron then by tap; ``tap`` is
        the position in the flattened kernel (0 for every synapse of a pooling).  Vectorised: one
        broadcast over ``[C_out, out…, C_in/groups, k…]``."""
        c_out, per_group = self.out_channels, self.kernel_shape[1]
        out_spatial, in_spatial = self.out_shape[1:], self.in_shape[1:]
        n_dims = len(in_spatial)
        # axes: 0 = co, 1 … n = output position, n + 1 = ci, n + 2 … 2n + 1 = tap
        full = 2 * n_dims + 2

        def axis(values: np.ndarray, at: int) -> np.ndarray:
            shape = [1] * full
            shape[at] = values.size
            return values.reshape(shape)

        co = axis(np.arange(c_out), 0)
        ci = axis(np.arange(per_group), n_dims + 1)
        post, pre, valid = co, (co // (c_out // self.groups)) * per_group + ci, np.ones((1,) * full, dtype=bool)
        tap = co * per_group + ci
        for d in range(n_dims):
            o = axis(np.arange(out_spatial[d]), 1 + d)
            k = axis(np.arange(self.kernel_size[d]), n_dims + 2 + d)
            position = o * self.stride[d] - self.padding[d][0] + k * self.dilation[d]
            valid = valid & (position >= 0) & (position < in_spatial[d])
            post = post * out_spatial[d] + o
            pre = pre * in_spatial[d] + position
            tap = tap * self.kernel_size[d] + k
        shape = np.broadcast_shapes(post.shape, pre.shape, valid.shape, tap.shape)
        keep = np.broadcast_to(valid, shape)
        post, pre = np.broadcast_to(post, shape)[keep], np.broadcast_to(pre, shape)[keep]
        tap = np.zeros_like(post) if self.pool is not None else np.broadcast_to(tap, shape)[keep]
        return post.astype(np.int64), pre.astype(np.int64), tap.astype(np.int64)


def _per_dimension(value: Any, n_dims: int, name: str, edge: str, minimum: int) -> tuple[int, ...]:
    """An int or a sequence of ``n_dims`` ints, each ``>= minimum``, as a tuple."""
    items = (value,) * n_dims if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        result = tuple(items)
    except TypeError:
        result = ()
    if (
        len(result) != n_dims
        or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in result)
        or any(v < minimum for v in result)
    ):
        raise ValueError(
            f"edge {edge}: {name} must be an int >= {minimum} or {n_dims} of them (one per spatial "
            f"dimension), got {value!r}"
        )
    return tuple(int(v) for v in result)


def _padding(
    padding: Any, kernel_size: tuple[int, ...], dilation: tuple[int, ...], stride: tuple[int, ...], edge: str
) -> tuple[tuple[int, int], ...]:
    """``(before, after)`` per dimension from an int, ints per dimension, pairs per dimension, or
    ``"valid"`` (none) / ``"same"`` (stride 1: the output keeps the input's size; an odd total
    pads one more after, as PyTorch does)."""
    n_dims = len(kernel_size)
    if isinstance(padding, str):
        if padding not in PADDING_NAMES:
            raise ValueError(f"edge {edge}: padding must be an int, a tuple or one of {PADDING_NAMES}, got {padding!r}")
        if padding == "valid":
            return ((0, 0),) * n_dims
        if any(s != 1 for s in stride):
            raise ValueError(f"edge {edge}: padding='same' needs stride 1 (as in PyTorch), got stride {stride}")
        totals = [d * (k - 1) for d, k in zip(dilation, kernel_size, strict=True)]
        return tuple((t // 2, t - t // 2) for t in totals)
    if isinstance(padding, (tuple, list)) and padding and all(isinstance(p, (tuple, list)) for p in padding):
        pairs = tuple(_per_dimension(p, 2, "each (before, after) padding pair", edge, 0) for p in padding)
        if len(pairs) != n_dims:
            raise ValueError(f"edge {edge}: padding needs {n_dims} (before, after) pairs, got {len(pairs)}")
        return pairs
    return tuple((p, p) for p in _per_dimension(padding, n_dims, "padding", edge, 0))


def conv_spec(
    in_shape: tuple[int, ...],
    *,
    edge: str,
    out_channels: int,
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    pool: str | None = None,
) -> ConvSpec:
    """A validated :class:`ConvSpec` for an input of shape ``in_shape``; errors name ``edge``."""
    if len(in_shape) not in (2, 3):
        raise ValueError(
            f"edge {edge}: a convolution or pooling needs a pre population of shape (C, L) or (C, H, W), "
            f"got shape {in_shape}; give the population a shape (add_input(name, (C, H, W)), …)"
        )
    n_dims = len(in_shape) - 1
    kernel = _per_dimension(kernel_size, n_dims, "kernel_size", edge, 1)
    strides = _per_dimension(stride, n_dims, "stride", edge, 1)
    dilations = _per_dimension(dilation, n_dims, "dilation", edge, 1)
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"edge {edge}: groups must be a positive int, got {groups!r}")
    if in_shape[0] % groups or out_channels % groups:
        raise ValueError(
            f"edge {edge}: groups={groups} must divide the input channels ({in_shape[0]}) and the output "
            f"channels ({out_channels})"
        )
    spec = ConvSpec(
        tuple(int(n) for n in in_shape),
        int(out_channels),
        kernel,
        strides,
        _padding(padding, kernel, dilations, strides, edge),
        dilations,
        int(groups),
        pool,
    )
    if any(n < 1 for n in spec.out_shape[1:]):
        raise ValueError(
            f"edge {edge}: the kernel {kernel} (dilation {dilations}) does not fit the padded input "
            f"{in_shape[1:]}; the output would have shape {spec.out_shape}"
        )
    return spec


def default_kernel(shape: tuple[int, ...], seed: int | None) -> np.ndarray:
    """PyTorch's default initialisation of a ``Conv1d/Conv2d`` weight of ``shape``: uniform on
    ``±1/√fan_in`` with ``fan_in = C_in/groups · ∏k`` (``kaiming_uniform_`` with ``a = √5``)."""
    bound = 1.0 / math.sqrt(math.prod(shape[1:]))
    return np.random.default_rng(seed).uniform(-bound, bound, size=shape)


__all__ = ["PADDING_NAMES", "POOLS", "ConvSpec", "conv_spec", "default_kernel"]
