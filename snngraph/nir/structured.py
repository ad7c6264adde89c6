"""Convolution and pooling edges as NIR nodes, for :func:`~snngraph.nir.to_nir`.

A ``conv`` edge becomes one ``nir.Conv1d``/``nir.Conv2d`` per distinct tap delay (the kernel
masked to the taps of that delay, a ``Delay`` of ``d·dt`` after it), with its input shape, and a
``pool`` edge a ``nir.SumPool2d``/``nir.AvgPool2d`` (a 1-D pooling, which NIR lacks, a depthwise
``nir.Conv1d`` holding the fixed value).  The target's gain divides the weights as for a weight
matrix: folded into the kernel when it is constant per output channel, else (and for a pooling
whose gain is not 1) written as a ``nir.Scale`` of ``1/gain`` after the node.  NIR takes one
padding per dimension (or ``"same"``/``"valid"``): padding that differs before and after is
written as ``"same"`` where it is PyTorch's ``"same"``, and refused otherwise.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from snngraph.convolution import ConvSpec, conv_spec
from snngraph.graph import ProjectionSpec
from snngraph.nir.dependency import nir_module


def padding_for_nir(spec: ConvSpec, edge: str) -> Any:
    """The padding as NIR holds it: one int per dimension, or ``"same"``."""
    if all(lo == hi for lo, hi in spec.padding):
        pads = tuple(lo for lo, _ in spec.padding)
        return pads[0] if len(pads) == 1 else pads
    if spec.pool is None and all(s == 1 for s in spec.stride):
        same = conv_spec(
            spec.in_shape, edge=edge, out_channels=spec.out_channels, kernel_size=spec.kernel_size,
            padding="same", dilation=spec.dilation, groups=spec.groups,
        )  # fmt: skip
        if same.padding == spec.padding:
            return "same"
    raise ValueError(
        f"edge {edge}: padding {spec.padding} differs before and after, which NIR cannot hold (it takes one "
        "padding per dimension, or 'same'/'valid'); use the same padding on both sides"
    )


def channel_values(values: np.ndarray, spec: ConvSpec) -> np.ndarray | None:
    """``values`` per output neuron as one value per output channel, if they are constant over
    each channel's positions (else None)."""
    per_channel = values.reshape(spec.out_channels, -1)
    return per_channel[:, 0].copy() if np.all(per_channel == per_channel[:, :1]) else None


def carries_bias(proj: ProjectionSpec, gain: np.ndarray, bias: np.ndarray) -> bool:
    """Whether the edge can write the target's bias: a convolution whose bias (divided by the
    part of the gain that it divides) is constant per output channel."""
    if proj.conv is None:
        return True
    if proj.conv.pool is not None:
        return False
    folded = channel_values(gain, proj.conv) is not None
    return channel_values(bias / gain if folded else bias, proj.conv) is not None


def structured_nodes(
    proj: ProjectionSpec,
    gain: np.ndarray,
    bias: np.ndarray | None,
    names: dict[Any, str],
    dt: float,
    unique: Any,
    flat_target: bool = False,
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The NIR nodes and edges of a conv or pool edge ``proj`` into a target of ``gain``;
    ``bias`` (the target's, or None) goes into the branch of the smallest delay, its ``Delay``
    moved before the convolution so that the bias is there from step 0.  A ``flat_target`` (a
    population without a shape) reads the output through a ``Flatten``."""
    nir_lib, spec = nir_module(), proj.conv
    edge = f"{proj.pre!r} -> {proj.post!r}"
    base = f"{names[proj.pre]}_to_{names[proj.post]}"
    padding = padding_for_nir(spec, edge)
    per_channel = channel_values(gain, spec)
    divide = per_channel if per_channel is not None else np.ones(spec.out_channels)
    delays = np.unique(proj.delay)
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    for delay in delays:
        name = unique(base + (f"_d{delay}" if delays.size > 1 else ""))
        bias_here = bias is not None and delay == delays[0]
        channel_bias = np.zeros(spec.out_channels)
        if bias_here:
            channel_bias = channel_values(bias if per_channel is None else bias / gain, spec)
        as_conv = spec.pool is None or len(spec.kernel_size) == 1
        if as_conv:
            kernel = _kernel(proj, delay) / divide.reshape((-1,) + (1,) * (len(spec.kernel_size) + 1))
            nodes[name] = _conv(nir_lib, spec, kernel, padding, channel_bias)
        else:
            nodes[name] = _pool(nir_lib, spec, padding)
        chain = [names[proj.pre], name]
        if delay > 0:  # before the node when it carries the bias, else after it
            delay_node = unique(f"{name}_delay")
            nodes[delay_node] = nir_lib.Delay(delay=np.full(spec.in_shape if bias_here else spec.out_shape, delay * dt))
            chain.insert(1 if bias_here else 2, delay_node)
        if per_channel is None or (not as_conv and np.any(per_channel != 1)):
            scale_node = unique(f"{name}_scale")
            nodes[scale_node] = nir_lib.Scale(scale=(1 / gain).reshape(spec.out_shape))
            chain.append(scale_node)
        if flat_target:
            flat = unique(f"{name}_flat")
            nodes[flat] = nir_lib.Flatten(input_type=np.array(spec.out_shape), start_dim=0)
            chain.append(flat)
        chain.append(names[proj.post])
        edges += list(itertools.pairwise(chain))
    return nodes, edges


def _kernel(proj: ProjectionSpec, delay: int) -> np.ndarray:
    """The kernel of a convolution (a pooling: its depthwise kernel of the fixed value) with the taps
    of other delays set to 0."""
    spec = proj.conv
    if spec.pool is not None:
        return np.full((spec.out_channels, 1, *spec.kernel_size), spec.value)
    kernel = proj.values.copy()
    tap_delay = np.full(kernel.size, delay)
    tap_delay[proj.index] = proj.delay
    kernel.reshape(-1)[tap_delay != delay] = 0.0
    return kernel


def _conv(nir_lib: Any, spec: ConvSpec, kernel: np.ndarray, padding: Any, bias: np.ndarray) -> Any:
    groups = spec.out_channels if spec.pool is not None else spec.groups
    if len(spec.kernel_size) == 1:
        (stride,), (dilation,) = spec.stride, spec.dilation
        node = nir_lib.Conv1d(spec.in_shape[1], kernel, stride, padding, dilation, groups, bias)
    else:
        node = nir_lib.Conv2d(spec.in_shape[1:], kernel, spec.stride, padding, spec.dilation, groups, bias)
    # nir 1.0 counts C_in/groups input channels and sizes the output by the kernel's first size alone
    node.input_type = {"input": np.array(spec.in_shape)}
    node.output_type = {"output": np.array(spec.out_shape)}
    return node


def _pool(nir_lib: Any, spec: ConvSpec, padding: Any) -> Any:
    kind = nir_lib.SumPool2d if spec.pool == "sum" else nir_lib.AvgPool2d
    pads = np.broadcast_to(np.asarray(padding), (2,)).copy()
    node = kind(kernel_size=np.array(spec.kernel_size), stride=np.array(spec.stride), padding=pads)
    node.input_type = {"input": np.array(spec.in_shape)}
    node.output_type = {"output": np.array(spec.out_shape)}
    return node


__all__ = ["carries_bias", "channel_values", "padding_for_nir", "structured_nodes"]
