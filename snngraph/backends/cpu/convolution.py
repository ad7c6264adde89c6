"""Convolution blocks: the synapses of a convolution or pooling edge run as ``torch`` convolutions.

A convolution's synapses, compiled, are ``C_out·∏out·(C_in/groups)·∏k`` (post, pre, delay,
weight) entries; as a sparse matrix their products cost a scattered multiply-add each.  When all
synapses of a kernel tap carry one weight (as the module's gather makes them), the same numbers
come from the convolution itself, which runs as dense BLAS:

    forward        I[t]_post += conv(S[t − d]_pre, K_d)
    backward       λS[t]_pre  += conv_input_grad(λU[t + d]_post, K_d)
    per synapse    ∂w_k = Σ_{t,b} λU[t + d]_{b,post_k} S[t]_{b,pre_k}
                        = (λU · unfold(S))[position_k, tap_k]

where ``K_d`` holds the taps of delay ``d`` (zero elsewhere) and the per-synapse gradient is one
batched product of the unfolded input with λU per output position: every synapse's own gradient,
as the sparse path computes it.  When the caller reads only each tap's sum of those
(``LayerSpec.tied_convolutions``), the block computes the sum itself, the kernel's gradient
``conv2d_weight(S, λU)``, and returns it on the tap's first synapse.  A 1-D convolution runs as a
2-D one of height 1; ``(before, after)`` padding is applied with ``F.pad``.  Rows are batch-major
``[R, n]`` (``R`` = steps × batch).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from snngraph.backends.base import ConvSynapses, LayerSpec
from snngraph.backends.cpu.arrays import batch_rows, distinct
from snngraph.convolution import ConvSpec

UNFOLD_VALUES = 1 << 23
"""Rows of the per-synapse gradient are unfolded, and those of the kernel gradient taken, in
chunks of at most this many values (the first N-MNIST layer's kernel gradient took 0.64 s in
chunks of 2²⁴ values, whose work buffers were fresh memory every call, and 0.46 s in 2²³)."""


@dataclass(frozen=True, eq=False)
class ConvBlock:
    """The synapses of one convolution or pooling edge with one delay ``delay``.

    ``synapses`` are their positions in the weight vector, ``tap`` their entries of the full
    kernel ``(C_out, C_in/groups, kh, kw)`` (a pooling's depthwise kernel), ``cell`` their entries
    of the per-position product ``[positions, C_out, C_in/groups·kh·kw]``; ``post``/``pre`` the
    neurons (or input channels) of the two populations.  ``tied``: the caller reads only each
    tap's sum of the synapse gradients (``LayerSpec.tied_convolutions``), which is the kernel's
    gradient, one ``conv2d_weight`` over all rows; it goes to the tap's first synapse.
    """

    delay: int
    post: slice
    pre: slice
    in_shape: tuple[int, int, int]  # (C_in, H, W)
    out_shape: tuple[int, int, int]  # (C_out, OH, OW)
    kernel_shape: tuple[int, int, int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]  # F.pad order: left, right, top, bottom
    groups: int
    synapses: np.ndarray
    tap: np.ndarray
    cell: np.ndarray
    tied: bool = False

    @property
    def n_taps(self) -> int:
        return math.prod(self.kernel_shape)

    def kernel(self, w: np.ndarray) -> torch.Tensor:
        """``K_d`` from this call's weights; refuses weights that differ within a tap (a
        functional caller's own ``w``), which no convolution computes."""
        values = np.take(w, self.synapses)
        kernel = np.zeros(self.n_taps, w.dtype)
        kernel[self.tap] = values
        if not np.array_equal(kernel[self.tap], values):
            raise ValueError(
                "the CPU backend runs convolution edges as convolutions, but this call's weights differ "
                "between synapses of one kernel tap; pass the module's gathered weights, or use "
                "CpuOptions(conv_min_synapses=math.inf) to run them as synapses"
            )
        return torch.from_numpy(kernel.reshape(self.kernel_shape))

    def _padded(self, rows: torch.Tensor) -> torch.Tensor:
        return F.pad(rows.reshape(-1, *self.in_shape), self.padding)

    def forward(self, rows: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """``[R, n_post]``: the currents that ``rows`` ``[R, n_pre]`` send through ``K_d``."""
        out = F.conv2d(self._padded(rows), kernel, stride=self.stride, dilation=self.dilation, groups=self.groups)
        return out.reshape(rows.shape[0], -1)

    def backward(self, rows: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """``[R, n_pre]``: ``rows`` ``[R, n_post]`` (λU) sent back through ``K_d``ᵀ."""
        channels, height, width = self.in_shape
        left, right, top, bottom = self.padding
        padded = (rows.shape[0], channels, height + top + bottom, width + left + right)
        grad = torch.nn.grad.conv2d_input(
            padded, kernel, rows.reshape(-1, *self.out_shape), self.stride, 0, self.dilation, self.groups
        )
        return grad[:, :, top : top + height, left : left + width].reshape(rows.shape[0], -1)

    def grad_buffer(self, dtype: torch.dtype) -> torch.Tensor:
        """Zeros for the running sums of :meth:`add_synapse_grad`: the kernel's shape when
        ``tied``, else ``[positions·groups, C_out/groups, C_in/groups·kh·kw]``."""
        if self.tied:
            return torch.zeros(self.kernel_shape, dtype=dtype)
        c_out, per_group, kh, kw = self.kernel_shape
        positions = self.out_shape[1] * self.out_shape[2]
        return torch.zeros(positions * self.groups, c_out // self.groups, per_group * kh * kw, dtype=dtype)

    def add_synapse_grad(self, total: torch.Tensor, lam: torch.Tensor, source: torch.Tensor) -> None:
        """Add ``Σ_{k,b} lam[k, post, b]·source[k, pre, b]`` for every (output position, output
        channel, tap) to ``total`` (:meth:`grad_buffer`), from neuron-major steps ``lam``
        ``[K, n_post, B]`` and ``source`` ``[K, n_pre, B]``.

        When ``tied``, the kernel's gradient: a 2-D convolution over neuron-major steps is a 3-D
        one over ``(H, W, B)`` with a kernel of width 1 along ``B``, so ``conv3d_weight`` reads
        both as they are (measured 2× faster than relaying them out batch-major for
        ``conv2d_weight``, for the first N-MNIST layer of ``benchmarks/bench_conv.py``).  Else per
        position and group one product ``[C_out/groups, K·B]·[K·B, taps]`` of batch-major rows.
        """
        if self.tied:
            steps, batch = lam.shape[0], lam.shape[2]
            chunk = max(1, UNFOLD_VALUES // ((lam.shape[1] + source.shape[1]) * batch))
            left, right, top, bottom = self.padding
            for lo in range(0, steps, chunk):
                part = source[lo : lo + chunk]
                padded = F.pad(part.reshape(part.shape[0], *self.in_shape, batch), (0, 0, left, right, top, bottom))
                grad_out = lam[lo : lo + chunk].reshape(part.shape[0], *self.out_shape, batch)
                total += torch.nn.grad.conv3d_weight(
                    padded, (*self.kernel_shape, 1), grad_out, (*self.stride, 1), 0, (*self.dilation, 1), self.groups
                )[..., 0]
            return
        lam, source = (torch.from_numpy(batch_rows(a.numpy())) for a in (lam, source))
        c_out, per_group, kh, kw = self.kernel_shape
        groups, positions = self.groups, self.out_shape[1] * self.out_shape[2]
        chunk = max(1, UNFOLD_VALUES // (self.in_shape[0] * kh * kw * positions))
        for lo in range(0, lam.shape[0], chunk):
            unfolded = F.unfold(self._padded(source[lo : lo + chunk]), (kh, kw), self.dilation, 0, self.stride)
            rows = unfolded.shape[0]
            taps = unfolded.reshape(rows, groups * per_group * kh * kw, positions).permute(2, 0, 1)  # [P, R, G·taps]
            taps = taps.reshape(positions, rows, groups, -1).permute(0, 2, 1, 3).reshape(positions * groups, rows, -1)
            lam_rows = lam[lo : lo + chunk].reshape(rows, groups, c_out // groups, positions)
            lam_rows = lam_rows.permute(3, 1, 2, 0).reshape(positions * groups, c_out // groups, rows)
            total.baddbmm_(lam_rows.contiguous(), taps.contiguous())  # strided operands: 50× slower

    def synapse_grads(self, total: torch.Tensor) -> np.ndarray:
        """Each synapse's gradient, float64, from the sums of :meth:`add_synapse_grad` (when
        ``tied``, each tap's gradient on its first synapse and zero on the others)."""
        if not self.tied:
            return total.reshape(-1).numpy()[self.cell].astype(np.float64)
        taps, first = self._first_synapses
        grads = np.zeros(self.tap.size)
        grads[first] = total.reshape(-1).numpy()[taps]
        return grads

    @functools.cached_property
    def _first_synapses(self) -> tuple[np.ndarray, np.ndarray]:
        """The taps in use and the first of each tap's synapses (once per plan: ``np.unique`` of the
        first N-MNIST layer's 720,000 taps took 50 ms)."""
        return np.unique(self.tap, return_index=True)


def _plane(spec: ConvSpec) -> tuple[ConvSpec, tuple[int, int, int, int]]:
    """``spec`` as a 2-D convolution (a 1-D one has height 1) and its padding in ``F.pad`` order."""
    if len(spec.kernel_size) == 1:
        spec = dataclasses.replace(
            spec,
            in_shape=(spec.in_shape[0], 1, spec.in_shape[1]),
            kernel_size=(1, *spec.kernel_size),
            stride=(1, *spec.stride),
            padding=((0, 0), *spec.padding),
            dilation=(1, *spec.dilation),
        )
    (top, bottom), (left, right) = spec.padding
    return spec, (left, right, top, bottom)


def conv_blocks(layer: LayerSpec, target: str, min_synapses: float) -> tuple[tuple[ConvBlock, ...], np.ndarray]:
    """The convolution blocks of ``target``'s synapses (one per edge and delay, those with at
    least ``min_synapses`` synapses) and the positions of the synapses they take."""
    prefix = "in" if target == "input" else "rec"
    post_all, pre_all, delay_all = (getattr(layer, f"{prefix}_{name}").numpy() for name in ("post", "pre", "delay"))
    blocks = [
        block
        for group in layer.convolutions
        if group.target == target and group.stop - group.start >= min_synapses
        for block in _edge_blocks(group, post_all, pre_all, delay_all, layer.tied_convolutions)
        if block.synapses.size >= min_synapses
    ]
    taken = np.concatenate([block.synapses for block in blocks]) if blocks else np.zeros(0, np.int64)
    return tuple(blocks), taken


def _edge_blocks(
    group: ConvSynapses, post_all: np.ndarray, pre_all: np.ndarray, delay_all: np.ndarray, tied: bool
) -> list[ConvBlock]:
    """The blocks of one edge, one per distinct delay of its synapses."""
    spec = group.spec
    post, pre, tap = dataclasses.replace(spec, pool=None).synapses()  # a pooling's taps: a depthwise kernel
    span = slice(group.start, group.stop)
    same_post = np.array_equal(post + group.post_start, post_all[span])
    if not (same_post and np.array_equal(pre + group.pre_start, pre_all[span])):
        raise ValueError(f"the synapses {group.start}:{group.stop} are not those of their convolution {spec}")
    plane, padding = _plane(spec)
    positions = plane.out_shape[1] * plane.out_shape[2]
    cell = (post % positions) * math.prod(plane.kernel_shape) + tap  # [position, C_out, C_in/groups·k…]
    post_range = slice(group.post_start, group.post_start + math.prod(plane.out_shape))
    pre_range = slice(group.pre_start, group.pre_start + math.prod(plane.in_shape))
    geometry = (plane.in_shape, plane.out_shape, plane.kernel_shape, plane.stride, plane.dilation, padding)
    delays = delay_all[span]
    blocks = []
    for d in distinct(delays).tolist():
        mine = np.flatnonzero(delays == d)
        synapses = (group.start + mine, tap[mine], cell[mine])
        blocks.append(ConvBlock(int(d), post_range, pre_range, *geometry, plane.groups, *synapses, tied))
    return blocks
