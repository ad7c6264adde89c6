"""Each kernel of ``snngraph.kernels`` launched directly under Triton's interpreter.

Run by ``tests/test_triton_interpreter.py`` in its own process with ``TRITON_INTERPRET=1``;
skipped unless that flag is set.  Every test builds small CPU tensors of awkward sizes (rows
longer than a block, empty rows, partial row and batch blocks), launches one kernel as
:mod:`snngraph.backends.triton` does (batch-minor ``[time, N, B]`` internals, batch-major
``[T, B, N]`` membranes), and compares every element with a float64 torch computation of the
formula in the kernel's docstring.  Outputs that a kernel must write start as NaN (spike rows
as 2), outputs that it adds to start random.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
import torch
from layer_checks import assert_close_scaled

from snngraph.surrogates import ATan, FastSigmoid, Sigmoid, Surrogate, Triangle

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1", reason="needs TRITON_INTERPRET=1 (run by test_triton_interpreter.py)"
)
triton = pytest.importorskip("triton")

import triton.language as tl  # noqa: E402
from snngraph.kernels.gather import gather_chunks_kernel, gather_kernel  # noqa: E402
from snngraph.kernels.lif_backward import lif_backward_kernel  # noqa: E402
from snngraph.kernels.lif_forward import lif_forward_kernel  # noqa: E402
from snngraph.kernels.surrogates import surrogate_grad  # noqa: E402
from snngraph.kernels.synapse_grad import synapse_grad_kernel  # noqa: E402

DTYPES = {"f64": torch.float64, "f32": torch.float32}
KERNEL_TOLERANCES: dict[torch.dtype, dict[str, float]] = {
    # a kernel against float64 arithmetic on the same inputs: a few roundings of the compute dtype
    torch.float64: {"rtol": 1e-12, "atol": 1e-14},
    torch.float32: {"rtol": 1e-5, "atol": 1e-6},
}
SPIKE_UNWRITTEN = 2
"""What spike rows that a kernel must write hold before it runs (a spike is 0 or 1)."""


def assert_kernel_close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    """``got`` (computed in ``dtype``) against the float64 ``want``, element by element."""
    assert_close_scaled(got.double(), want, **KERNEL_TOLERANCES[dtype], what=what)


def nan_like(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An output the kernel must fill: NaN wherever it writes nothing."""
    return torch.full(shape, torch.nan, dtype=dtype)


def cdiv(a: int, b: int) -> int:
    """Blocks of ``b`` that cover ``a``."""
    return -(-a // b)


@dataclass(frozen=True)
class Rows:
    """A row view as the kernels read it: row ``r`` owns entries ``ptr[r] : ptr[r + 1]``, each with
    the other end ``index``, a time ``shift`` and a ``weight`` (``ptr``, ``index``, ``shift`` int32)."""

    ptr: torch.Tensor
    index: torch.Tensor
    shift: torch.Tensor
    weight: torch.Tensor

    @property
    def n_rows(self) -> int:
        return self.ptr.numel() - 1

    @property
    def lengths(self) -> torch.Tensor:
        return (self.ptr[1:] - self.ptr[:-1]).long()

    @property
    def row_of_entry(self) -> torch.Tensor:
        return torch.repeat_interleave(torch.arange(self.n_rows), self.lengths)

    def chunks(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(chunk_row, chunk_start)`` int32: every row cut into runs of at most ``size`` entries."""
        pieces = [
            (row, start)
            for row in range(self.n_rows)
            for start in range(int(self.ptr[row]), int(self.ptr[row + 1]), size)
        ]
        chunk_row, chunk_start = zip(*pieces, strict=True)
        return torch.tensor(chunk_row, dtype=torch.int32), torch.tensor(chunk_start, dtype=torch.int32)

    def sums(self, src: torch.Tensor, first: int, n_times: int) -> torch.Tensor:
        """``[n_times, n_rows, B]`` float64: ``Σ_{k ∈ row r} w_k · src[first + τ + shift_k, index_k, b]``."""
        times = first + torch.arange(n_times)[:, None] + self.shift.long()[None, :]
        assert times.numel() == 0 or 0 <= times.min() <= times.max() < src.shape[0], "a read outside src"
        values = src.double()[times, self.index.long()[None, :]]  # [n_times, entries, B]
        out = torch.zeros(n_times, self.n_rows, src.shape[2], dtype=torch.float64)
        return out.index_add_(1, self.row_of_entry, values * self.weight.double()[None, :, None])


def random_rows(
    generator: torch.Generator, lengths: list[int], n_other: int, shifts: tuple[int, int], dtype: torch.dtype
) -> Rows:
    """Rows of the given lengths; other ends uniform in ``[0, n_other)`` (repeats allowed), shifts
    uniform in ``[shifts[0], shifts[1]]``, weights normal."""
    count = sum(lengths)
    ptr = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    ptr[1:] = torch.cumsum(torch.tensor(lengths), 0)
    low, high = shifts
    return Rows(
        ptr=ptr,
        index=torch.randint(n_other, (count,), generator=generator, dtype=torch.int32),
        shift=torch.randint(low, high + 1, (count,), generator=generator, dtype=torch.int32),
        weight=torch.randn(count, generator=generator, dtype=torch.float64).to(dtype),
    )


# -- gathers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("accumulate", [False, True], ids=["write", "accumulate"])
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=list(DTYPES))
def test_gather_kernel(dtype: torch.dtype, accumulate: bool) -> None:
    """``out[τ, b, r] (+)= Σ_k w_k src[src_base + τ + shift_k, index_k, b]`` for every τ, b and r,
    with rows longer than ``BLOCK_J``, an empty row, and partial row and batch blocks."""
    generator = torch.Generator().manual_seed(1)
    n_src, batch, n_times, src_base = 6, 3, 4, 3
    rows = random_rows(generator, [2, 0, 9, 1, 4], n_src, (-3, 2), dtype)
    src = torch.randn(src_base + n_times + 2, n_src, batch, generator=generator, dtype=torch.float64).to(dtype)
    before = torch.randn(n_times, batch, rows.n_rows, generator=generator, dtype=torch.float64).to(dtype)
    out = before.clone() if accumulate else nan_like(before.shape, dtype)
    block_r, block_b = 4, 2
    gather_kernel[(n_times, cdiv(rows.n_rows, block_r), cdiv(batch, block_b))](
        out,
        rows.ptr,
        rows.index,
        rows.shift,
        rows.weight,
        src,
        src_base,
        rows.n_rows,
        n_src,
        batch,
        ACCUMULATE=accumulate,
        BLOCK_R=block_r,
        BLOCK_B=block_b,
        BLOCK_J=4,
    )
    want = rows.sums(src, src_base, n_times).transpose(1, 2)
    if accumulate:
        want = want + before.double()
    assert_kernel_close(out, want, dtype, "gather_kernel out")


SOURCES = {"spikes": torch.uint8, "f64": torch.float64, "f32": torch.float32}
"""The source a gather reads (uint8 spike history or a float λU) and, for a float one, the dtype."""


def _source(kind: str, shape: tuple[int, ...], generator: torch.Generator) -> tuple[torch.Tensor, torch.dtype]:
    """A source tensor of ``kind`` and the compute dtype that goes with it (float32 for spikes)."""
    if SOURCES[kind] == torch.uint8:
        return (torch.rand(shape, generator=generator) < 0.4).to(torch.uint8), torch.float32
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(SOURCES[kind]), SOURCES[kind]


@pytest.mark.parametrize("kind", list(SOURCES))
def test_gather_chunks_kernel(kind: str) -> None:
    """``out[b, r] += Σ_{k ∈ chunk} w_k src[src_t + shift_k, index_k, b]``: the chunks of a row
    (several when a row is longer than ``CHUNK``, one of exactly ``CHUNK``) add up to the row's sum."""
    generator = torch.Generator().manual_seed(2)
    n_src, batch, src_t, chunk = 5, 3, 4, 4
    src, dtype = _source(kind, (src_t + 3, n_src, batch), generator)
    rows = random_rows(generator, [9, 0, 3, 4, 1, 6], n_src, (-4, 2), dtype)
    chunk_row, chunk_start = rows.chunks(chunk)
    before = torch.randn(batch, rows.n_rows, generator=generator, dtype=torch.float64).to(dtype)
    out = before.clone()
    block_b = 2
    gather_chunks_kernel[(chunk_row.numel(), cdiv(batch, block_b))](
        out,
        chunk_row,
        chunk_start,
        rows.ptr,
        rows.index,
        rows.shift,
        rows.weight,
        src,
        src_t,
        rows.n_rows,
        n_src,
        batch,
        CHUNK=chunk,
        BLOCK_B=block_b,
        BLOCK_J=2,
    )
    want = before.double() + rows.sums(src, src_t, 1)[0].t()
    assert_kernel_close(out, want, dtype, f"gather_chunks_kernel out ({kind} source)")


# -- synapse gradient ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(SOURCES))
def test_synapse_grad_kernel(kind: str) -> None:
    """``∂w[order_k] += Σ_τ Σ_b P[τ, pre_k, b] · λU[lam_base + τ + d_k, post_k, b]`` over several
    time blocks (the last one partial), chunks and batch blocks; synapses outside the view keep
    their value.  A float ``P`` has negative values, and a batch block negative throughout."""
    generator = torch.Generator().manual_seed(3)
    n_pre, n_post, batch, n_times, lam_base, time_block, block_k = 5, 4, 3, 7, 2, 3, 4
    pre, dtype = _source(kind, (n_times, n_pre, batch), generator)
    if pre.dtype != torch.uint8:
        pre = torch.where(torch.rand(pre.shape, generator=generator) < 0.5, pre, torch.zeros((), dtype=dtype))
        pre[1, :, :2] = -pre[1, :, :2].abs() - 0.5
    rows = random_rows(generator, [6, 0, 1, 9, 3], n_post, (0, 3), dtype)
    n_synapses = rows.index.numel() + 3
    order = torch.randperm(n_synapses, generator=generator)[: rows.index.numel()]
    lam_u = torch.randn(lam_base + n_times + 3, n_post, batch, generator=generator, dtype=torch.float64).to(dtype)
    chunk_row, chunk_start = rows.chunks(block_k)
    before = torch.randn(n_synapses, generator=generator, dtype=torch.float64).to(dtype)
    grad = before.clone()
    synapse_grad_kernel[(chunk_row.numel(), cdiv(n_times, time_block))](
        grad,
        chunk_row,
        chunk_start,
        rows.ptr,
        rows.index,
        rows.shift,
        order,
        pre,
        lam_u,
        lam_base,
        n_times,
        time_block,
        n_pre,
        n_post,
        batch,
        BLOCK_K=block_k,
        BLOCK_B=2,
    )
    times = lam_base + torch.arange(n_times)[:, None] + rows.shift.long()[None, :]  # [τ, entries]
    lam = lam_u.double()[times, rows.index.long()[None, :]]  # [τ, entries, B]
    per_entry = (pre.double()[:, rows.row_of_entry] * lam).sum(dim=(0, 2))
    want = before.double().index_add(0, order, per_entry)
    assert_kernel_close(grad, want, dtype, f"synapse_grad_kernel ∂w ({kind} presynaptic signal)")


# -- surrogate derivatives -------------------------------------------------------------------


@triton.jit
def _surrogate_grad_kernel(out_ptr, x_ptr, slope_ptr, n, CODE: tl.constexpr, BLOCK: tl.constexpr):
    """``out = σ'(x)`` of the surrogate ``CODE``, with the slope read from ``slope_ptr``."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    tl.store(out_ptr + offs, surrogate_grad(x, tl.load(slope_ptr), CODE), mask=mask)


SURROGATES = [Sigmoid(5.3), FastSigmoid(3.1), ATan(2.3), Triangle(0.7)]


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=list(DTYPES))
@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: type(s).__name__)
def test_surrogate_grad(surrogate: Surrogate, dtype: torch.dtype) -> None:
    """The kernels' σ'(x) equals the torch form of :mod:`snngraph.surrogates` with the same code:
    at 0, across ±3, at Triangle's kinks ±1/k and far out (where Sigmoid's exponential underflows)."""
    k = surrogate.slope
    x = torch.cat(
        [
            torch.linspace(-3.0, 3.0, 29, dtype=torch.float64),
            torch.tensor([0.0, 1 / k, -1 / k, 0.999 / k, -1.001 / k, 40 / k, -40 / k, 300.0], dtype=torch.float64),
        ]
    ).to(dtype)
    out = nan_like(x.shape, dtype)
    block = 16
    _surrogate_grad_kernel[(cdiv(x.numel(), block),)](
        out, x, torch.tensor([k], dtype=dtype), x.numel(), CODE=surrogate.code, BLOCK=block
    )
    want = surrogate.grad(x.double())
    assert_kernel_close(out, want, dtype, f"surrogate_grad {surrogate}")


# -- the LIF time loops ----------------------------------------------------------------------


@dataclass(frozen=True)
class Neurons:
    """Per-neuron constants ``[N]`` (float64): ``alpha``, ``theta`` and the 0/1 flags ``subtract``
    (``s``), ``zero`` (``z``) and ``spiking`` (``m``) of :mod:`snngraph.kernels.neurons`."""

    alpha: torch.Tensor
    theta: torch.Tensor
    subtract: torch.Tensor
    zero: torch.Tensor
    spiking: torch.Tensor

    def params(self, dtype: torch.dtype) -> torch.Tensor:
        """The ``[5, N]`` tensor the kernels read."""
        return torch.stack([self.alpha, self.theta, self.subtract, self.zero, self.spiking]).to(dtype)

    def spikes(self, u: torch.Tensor) -> torch.Tensor:
        """``m·H(U − θ)`` of ``u`` ``[..., N]``, float64."""
        return self.spiking * (u.double() > self.theta).double()


def _neurons(generator: torch.Generator, dtype: torch.dtype) -> Neurons:
    """7 neurons: subtract, zero and no reset, one readout (m = 0); α and θ per neuron."""
    n = 7
    return Neurons(
        alpha=(0.5 + 0.5 * torch.rand(n, generator=generator, dtype=torch.float64)).to(dtype).double(),
        theta=(0.5 + torch.rand(n, generator=generator, dtype=torch.float64)).to(dtype).double(),
        subtract=torch.tensor([1, 0, 0, 1, 0, 1, 0], dtype=torch.float64),
        zero=torch.tensor([0, 1, 0, 0, 1, 0, 0], dtype=torch.float64),
        spiking=torch.tensor([1, 1, 1, 1, 1, 1, 0], dtype=torch.float64),
    )


@dataclass(frozen=True)
class Loop:
    """How a time-loop kernel is launched: ``recurrent`` (``HAS_REC``: the kernel gathers the
    recurrent synapses, one program holding every neuron), ``resident``, the blocks, and
    ``spans`` (first step, steps) of the launches, in the order of the direction."""

    recurrent: bool
    resident: bool
    block_n: int
    block_b: int
    block_j: int
    spans: tuple[tuple[int, int], ...]

    def grid(self, n: int, batch: int) -> tuple[int, int]:
        return cdiv(n, self.block_n), cdiv(batch, self.block_b)

    def meta(self) -> dict[str, object]:
        return {
            "HAS_REC": self.recurrent,
            "RESIDENT": self.resident,
            "BLOCK_N": self.block_n,
            "BLOCK_B": self.block_b,
            "BLOCK_J": self.block_j,
        }


STEPS, BATCH, MAX_DELAY = 5, 3, 3
ROW_LENGTHS = [3, 0, 5, 1, 2, 4, 2]
"""Recurrent synapses per row of the 7 neurons (the longest, 5, exceeds a ``BLOCK_J`` of 2)."""
FORWARD_LOOPS = {
    "independent-two-launches": Loop(False, False, 4, 2, 1, ((0, 2), (2, STEPS - 2))),
    "resident": Loop(True, True, 8, 1, 8, ((0, STEPS),)),
    "streamed": Loop(True, False, 8, 2, 2, ((0, STEPS),)),
}


def lif_forward_oracle(
    current: torch.Tensor, u_prev: torch.Tensor, history: torch.Tensor, neurons: Neurons, rows: Rows | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """U ``[T, B, N]`` and S ``[T, N, B]`` (float64) of the forward kernel's docstring:

    I[t] = I_in[t] + Σ_k w_k S[t − d_k]_{pre_k};  U[t] = α U[t−1] (1 − z S[t−1]) + I[t] − s θ S[t−1];
    S[t] = m H(U[t] − θ), with S[−D] … S[−1] = ``history`` ``[D, N, B]``.
    """
    depth, (steps, batch, n) = history.shape[0], current.shape
    spikes = torch.cat([history.double(), torch.zeros(steps, n, batch, dtype=torch.float64)])
    u, membranes = u_prev.double(), []
    for t in range(steps):
        total = current[t].double()
        if rows is not None:
            total = total + rows.sums(spikes, depth + t, 1)[0].t()
        s_prev = spikes[depth + t - 1].t()
        u = neurons.alpha * u * (1 - neurons.zero * s_prev) + total - neurons.subtract * neurons.theta * s_prev
        spikes[depth + t] = neurons.spikes(u).t()
        membranes.append(u)
    return torch.stack(membranes), spikes[depth:]


def _history(generator: torch.Generator, neurons: Neurons, steps: int) -> torch.Tensor:
    """``[steps, N, B]`` uint8: random spikes of the spiking neurons."""
    spikes = torch.rand(steps, neurons.spiking.numel(), BATCH, generator=generator) < 0.4
    return (spikes & (neurons.spiking[None, :, None] > 0)).to(torch.uint8)


def _recurrent_rows(generator: torch.Generator, sign: int, dtype: torch.dtype) -> Rows:
    """Recurrent synapses with delays 1 … D as rows (``shift = sign·d``) over the 7 neurons."""
    low, high = (1, MAX_DELAY) if sign > 0 else (-MAX_DELAY, -1)
    rows = random_rows(generator, ROW_LENGTHS, len(ROW_LENGTHS), (low, high), dtype)
    return Rows(rows.ptr, rows.index, rows.shift, rows.weight * 0.8)


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=list(DTYPES))
@pytest.mark.parametrize("loop", FORWARD_LOOPS.values(), ids=list(FORWARD_LOOPS))
def test_lif_forward_kernel(loop: Loop, dtype: torch.dtype) -> None:
    """Every membrane U[t] and every spike row S[t] the forward kernel writes, for every reset and
    a readout, over one or two launches (the second starting from U and S of the first)."""
    generator = torch.Generator().manual_seed(4)
    neurons = _neurons(generator, dtype)
    n = neurons.alpha.numel()
    rows = _recurrent_rows(generator, -1, dtype) if loop.recurrent else None
    current = (0.8 * torch.randn(STEPS, BATCH, n, generator=generator, dtype=torch.float64) + 0.3).to(dtype)
    u0 = (0.5 * torch.randn(BATCH, n, generator=generator, dtype=torch.float64)).to(dtype)
    given = _history(generator, neurons, MAX_DELAY)
    hist = torch.cat([given, torch.full((STEPS, n, BATCH), SPIKE_UNWRITTEN, dtype=torch.uint8)])
    u = nan_like((STEPS, BATCH, n), dtype)
    params = neurons.params(dtype)
    synapses = (rows.ptr, rows.index, rows.shift, rows.weight) if rows is not None else (params,) * 4
    for t_start, count in loop.spans:
        lif_forward_kernel[loop.grid(n, BATCH)](
            u,
            current,
            u0 if t_start == 0 else u[t_start - 1],
            hist,
            params,
            *synapses,
            n,
            BATCH,
            MAX_DELAY,
            t_start,
            t_start + count,
            **loop.meta(),
        )
    want_u, want_s = lif_forward_oracle(current, u0, given, neurons, rows)
    # rounding in the compute dtype must not decide a spike: no membrane is that close to θ
    margin = {torch.float64: 1e-9, torch.float32: 1e-4}[dtype]
    assert (want_u - neurons.theta).abs().min() > margin
    assert 0 < want_s[:, neurons.spiking > 0].mean() < 1
    assert torch.equal(hist[:MAX_DELAY], given), "the given spike history changed"
    assert torch.equal(hist[MAX_DELAY:], want_s.to(torch.uint8)), "spike rows differ"
    assert_kernel_close(u, want_u, dtype, "lif_forward_kernel U")


@dataclass(frozen=True)
class Adjoints:
    """What the backward kernel computes, float64: λU ``[T, B, N]``, the per-batch-column sums
    ``d_alpha``, ``d_theta`` ``[N, B]`` and ``du0`` ``[B, N]``."""

    lam_u: torch.Tensor
    d_alpha: torch.Tensor
    d_theta: torch.Tensor
    du0: torch.Tensor


def lif_backward_oracle(
    u: torch.Tensor,
    grad_u: torch.Tensor,
    grad_s: torch.Tensor,
    u0: torch.Tensor,
    hist: torch.Tensor,
    neurons: Neurons,
    surrogate: Surrogate,
    detach_reset: bool,
    recurrent: Rows | torch.Tensor | None,
) -> Adjoints:
    """The backward kernel's docstring, step by step from t = T − 1 down to 0 (λU[T] = 0):

    λS[t] = ∂L/∂S[t] + R[t] − (s θ + z α U[t]) λU[t + 1]  (the last term without detach_reset)
    λU[t] = ∂L/∂U[t] + α λU[t + 1] (1 − z S[t]) + m σ'(U[t] − θ) λS[t]
    ∂α += λU[t] U[t − 1] (1 − z S[t − 1]);  ∂θ += −m σ'(U[t] − θ) λS[t] − s λU[t] S[t − 1]
    ∂u0 = α (1 − z S[−1]) λU[0]

    with S[t] = m H(U[t] − θ) and S[t − 1] from ``hist`` ``[D + T, N, B]``; ``R[t]`` is
    ``Σ_k w_k λU[t + d_k]_{post_k}`` over ``recurrent`` rows, or ``recurrent[t]`` itself for a
    ``[T, B, N]`` tensor (the per-step loop's term, summed outside the kernel).
    """
    steps, batch, n = u.shape
    depth = hist.shape[0] - steps
    u, u0, spikes_before = u.double(), u0.double(), hist.double()
    a, theta, s, z = neurons.alpha, neurons.theta, neurons.subtract, neurons.zero
    lam = torch.zeros(steps + depth + 1, n, batch, dtype=torch.float64)  # λU[t] at row t, zeros past T − 1
    d_alpha = torch.zeros(batch, n, dtype=torch.float64)
    d_theta = torch.zeros(batch, n, dtype=torch.float64)
    for t in reversed(range(steps)):
        lam_next = lam[t + 1].t()
        if isinstance(recurrent, Rows):
            lam_s = grad_s[t].double() + recurrent.sums(lam, t, 1)[0].t()
        elif recurrent is not None:
            lam_s = grad_s[t].double() + recurrent[t].double()
        else:
            lam_s = grad_s[t].double()
        if not detach_reset:
            lam_s = lam_s - (s * theta + z * a * u[t]) * lam_next
        through_spike = neurons.spiking * surrogate.grad(u[t] - theta) * lam_s
        lam_u = grad_u[t].double() + a * lam_next * (1 - z * neurons.spikes(u[t])) + through_spike
        lam[t] = lam_u.t()
        u_prev = u[t - 1] if t > 0 else u0
        s_prev = spikes_before[depth + t - 1].t()
        d_alpha += lam_u * u_prev * (1 - z * s_prev)
        d_theta += -through_spike - s * lam_u * s_prev
    du0 = a * (1 - z * spikes_before[depth - 1].t()) * lam[0].t()
    return Adjoints(lam[:steps].transpose(1, 2), d_alpha.t(), d_theta.t(), du0)


BACKWARD_CASES = {
    # name: (loop, surrogate, detach_reset, membranes saved as); ADD_REC where the loop has one-step launches
    "independent": (Loop(False, False, 4, 2, 1, ((0, STEPS),)), Sigmoid(4.0), False, None),
    "independent-bf16-membranes": (Loop(False, False, 4, 2, 1, ((0, STEPS),)), ATan(2.0), False, torch.bfloat16),
    "resident": (Loop(True, True, 8, 1, 8, ((0, STEPS),)), FastSigmoid(3.0), True, None),
    "streamed": (Loop(True, False, 8, 2, 2, ((0, STEPS),)), ATan(2.3), False, None),
    "per-step": (Loop(False, False, 4, 2, 1, tuple((t, 1) for t in range(STEPS))), Triangle(0.7), False, None),
}


@pytest.mark.parametrize(
    ("case", "dtype"),
    [
        pytest.param(case, dtype, id=f"{case}-{name}")
        for case, (*_, saved) in BACKWARD_CASES.items()
        for name, dtype in DTYPES.items()
        if saved is None or dtype == torch.float32  # low-precision membranes go with float32 arithmetic
    ],
)
def test_lif_backward_kernel(case: str, dtype: torch.dtype) -> None:
    """Every λU[t], the ∂α and ∂θ sums added into ``acc``, and ∂u0, for every reset, a readout and
    each surrogate; the λU pads stay zero; the per-step loop adds and clears ``lam_rec``."""
    loop, surrogate, detach_reset, saved = BACKWARD_CASES[case]
    generator = torch.Generator().manual_seed(5)
    neurons = _neurons(generator, dtype)
    n, pad = neurons.alpha.numel(), MAX_DELAY + 1  # λU pads may exceed D (input delays)
    per_step = len(loop.spans) > 1

    def normal(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (scale * torch.randn(*shape, generator=generator, dtype=torch.float64)).to(dtype)

    u = (normal(STEPS, BATCH, n, scale=0.6) + neurons.theta.to(dtype)).to(saved or dtype)
    grad_u, grad_s, u0 = normal(STEPS, BATCH, n), normal(STEPS, BATCH, n), normal(BATCH, n, scale=0.5)
    hist = torch.cat([_history(generator, neurons, MAX_DELAY), neurons.spikes(u).transpose(1, 2).to(torch.uint8)])
    cols = _recurrent_rows(generator, +1, dtype) if loop.recurrent else None
    lam_rec_terms = normal(STEPS, BATCH, n) if per_step else None
    lam_u = torch.cat([torch.zeros(pad, n, BATCH, dtype=dtype), nan_like((STEPS, n, BATCH), dtype)])
    lam_u = torch.cat([lam_u, torch.zeros(pad, n, BATCH, dtype=dtype)])
    lam_rec = torch.zeros(BATCH, n, dtype=dtype)
    acc_before = normal(2, n, BATCH)
    acc, du0 = acc_before.clone(), nan_like((BATCH, n), dtype)
    params = neurons.params(dtype)
    synapses = (cols.ptr, cols.index, cols.shift, cols.weight) if cols is not None else (params,) * 4
    for t_start, count in reversed(loop.spans):
        if lam_rec_terms is not None:
            lam_rec.copy_(lam_rec_terms[t_start])
        lif_backward_kernel[loop.grid(n, BATCH)](
            lam_u,
            lam_rec,
            acc,
            du0,
            u,
            grad_u,
            grad_s,
            u0,
            hist,
            params,
            torch.tensor([surrogate.slope], dtype=dtype),
            *synapses,
            n,
            BATCH,
            MAX_DELAY,
            pad,
            t_start + count - 1,
            count,
            SURROGATE=surrogate.code,
            DETACH_RESET=detach_reset,
            ADD_REC=per_step,
            **loop.meta(),
        )
        assert not lam_rec.any(), f"lam_rec not cleared after step {t_start}"
    want = lif_backward_oracle(
        u, grad_u, grad_s, u0, hist, neurons, surrogate, detach_reset, cols if cols is not None else lam_rec_terms
    )
    assert 0 < hist[MAX_DELAY:].double().mean() < 1
    assert not lam_u[:pad].any(), "the λU pad before t = 0 was written"
    assert not lam_u[pad + STEPS :].any(), "the λU pad after t = T − 1 was written"
    assert_kernel_close(lam_u[pad : pad + STEPS].transpose(1, 2), want.lam_u, dtype, "lif_backward_kernel λU")
    assert_kernel_close(acc[0], acc_before[0].double() + want.d_alpha, dtype, "lif_backward_kernel ∂α sums")
    assert_kernel_close(acc[1], acc_before[1].double() + want.d_theta, dtype, "lif_backward_kernel ∂θ sums")
    assert_kernel_close(du0, want.du0, dtype, "lif_backward_kernel ∂u0")
