"""Backward pass (BPTT) of the CPU backend (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from snngraph.backends.base import LayerInputs, LayerSpec, Needs
from snngraph.backends.cpu.arrays import (
    Neurons,
    batch_major,
    chunk_size,
    column,
    delayed_rows,
    descending,
    neuron_major,
    nonzero_spans,
    time_chunks,
)
from snngraph.backends.cpu.forward import currents
from snngraph.backends.cpu.options import CpuOptions
from snngraph.backends.cpu.plan import (
    DenseBlock,
    LayerPlan,
    SparseSynapses,
    SynapsePlan,
    as_numpy,
    sparse_input_matrices,
    torch_csr,
    torch_product_matrix,
)
from snngraph.backends.cpu.states import GenericNeurons, TableGradient, rows
from snngraph.neurons import table_gradient


def _gather_gradient(
    grad: np.ndarray,
    sparse: SparseSynapses,
    key: np.ndarray,
    lam: np.ndarray,
    pre: np.ndarray,
    base: np.ndarray,
    value: np.ndarray | None,
    bounds: tuple[int, int] | None,
) -> None:
    """``grad_k += Σ_{events e with pre_e = pre_k} value_e · lam[key_k + base_e]``.

    ``grad`` (float64) is in ``sparse`` order.  With the events sorted by fan-out, those whose
    presynaptic index has more than ``p`` synapses form a prefix; position ``p`` of their
    fan-out is read for all of them at once.  Work ``O(events × fan-out)``, memory ``O(events)``.
    Pairs whose index falls outside ``bounds`` read zero (steps before 0 or after the end).
    """
    fanout = sparse.fanout[pre]
    order = descending(fanout)
    fanout = fanout[order]
    syn, base = sparse.indptr[pre][order], base[order]
    value = None if value is None else value[order]
    active = np.searchsorted(-fanout, -np.arange(fanout[0] if fanout.size else 0), side="left")
    for count in active.tolist():  # events with fan-out > p, for p = 0, 1, …
        positions = syn[:count]
        target = np.take(key, positions)
        target += base[:count]
        values = np.take(lam, target, mode="clip").astype(np.float64)
        if value is not None:
            values *= value[:count]
        if bounds is not None:
            values[(target < bounds[0]) | (target >= bounds[1])] = 0
        np.add.at(grad, positions, values)
        positions += 1  # position p + 1 of each fan-out


def _scatter_gradient(
    size: int,
    plan: SynapsePlan,
    sparse: np.ndarray,
    blocks: list[np.ndarray],
    dtype: np.dtype,
    convs: list[np.ndarray],
) -> np.ndarray:
    """The gradient of the weight vector from the sparse part (the learned synapses; zero on
    the fixed ones), the dense blocks and the convolution blocks (their synapses' own gradients)."""
    grad = np.zeros(size, dtype)
    grad[plan.learned.synapses] = sparse
    for block, block_grad in zip(plan.dense, blocks, strict=True):
        grad[block.synapses] = np.take(block_grad, block.cell)  # block gradients are ∂W[post, pre]
    for block, conv_grad in zip(plan.conv, convs, strict=True):
        grad[block.synapses] = conv_grad
    return grad


def _add_spike_product(grad_t: torch.Tensor, spikes: np.ndarray, lam: np.ndarray) -> None:
    """``∂Wᵀ[q, p] += Σ_{k,b} S[k, q, b] λU[k, p, b]`` with the binary ``spikes`` ``[K, Q, B]`` as
    a sparse CSR matrix ``[Q, K·B]`` and ``lam`` ``[K, P, B]`` copied as ``[K·B, P]``: work
    ``spikes × P`` instead of ``Q × K·B × P``."""
    k, q, batch = spikes.shape
    pre, step, b = np.nonzero(spikes.transpose(1, 0, 2))  # sorted by pre, then step and b
    indptr = np.zeros(q + 1, np.int64)
    np.cumsum(np.bincount(pre, minlength=q), out=indptr[1:])
    matrix = torch_csr(indptr, step * batch + b, np.ones(pre.size, lam.dtype), (q, k * batch))
    rows = torch.from_numpy(np.ascontiguousarray(lam.transpose(0, 2, 1)).reshape(k * batch, -1))
    torch.addmm(grad_t, matrix, rows, out=grad_t)


class _Adjoint:
    """The recurrent synapses in the backward pass; λU is ``lam`` ``[T + D, N, B]``."""

    def __init__(
        self, plan: LayerPlan, w: np.ndarray, lam: np.ndarray, steps: int, needs_grad: bool, options: CpuOptions
    ) -> None:
        rows, n, batch = lam.shape
        self.options = options
        self.plan, self.sparse, self.learned = plan.recurrent, plan.recurrent.sparse, plan.recurrent.learned
        self.patterns = plan.patterns
        # (t0, S[t0 …] [K, N, B] bool) of the chunks whose sparse weight gradient comes from
        # sampled products (:meth:`sample`)
        self.sampled: list[tuple[int, np.ndarray]] = []
        self.sampled_rate = options.sampled_rate * lam.itemsize / 4  # float64 products cost twice
        self.fanout = np.repeat(self.learned.fanout.astype(np.float32), batch)  # [N·B], the layout of S[t]
        self.lam, self.steps, self.n, self.batch = lam, steps, n, batch
        self.result = torch.from_numpy(np.empty((n, batch), lam.dtype))  # of backprop
        self.blocks = [(block, block.transposed(w)) for block in self.plan.dense]
        self.convs = [(block, block.kernel(w)) for block in self.plan.conv]
        self.has_synapses = bool(self.blocks) or bool(self.convs) or bool(self.sparse.synapses.size)
        # CSR (N, D·N): row pre, column (d − 1)·N + post — reads the window λU[t+1 … t+D].
        if self.sparse.synapses.size:
            self.matrix = torch_product_matrix(self.sparse.by_pre(w, plan.backward_columns, (rows - steps) * n))
        self.key = self.learned.delay * (n * batch) + self.learned.post * batch  # λU offset
        self.grad_sparse = np.zeros(self.learned.synapses.size) if needs_grad else None
        blocks = self.plan.dense if needs_grad else ()
        self.grad_blocks = [torch.from_numpy(np.zeros(block.shape, w.dtype)) for block in blocks]
        self.grad_convs = [block.grad_buffer(kernel.dtype) for block, kernel in self.convs] if needs_grad else []
        # ∂Wᵀ[pre, post] of the chunks multiplied as sparse spikes (allocated on first use)
        self.grad_blocks_t: list[torch.Tensor | None] = [None for _ in blocks]
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []  # spike events (pre, λU offset)
        self.conv_pending: list[tuple[int, np.ndarray]] = []  # (t0, S[t0 …]) for the convolution blocks
        self.pending_size = 0

    def backprop(self, window: np.ndarray, t: int) -> np.ndarray:
        """``Σ_{rec k: j→i, d} w_k λU[t+d]_i`` as ``[N, B]`` from ``window`` = λU[t+1 … t+D], in
        a buffer that the next call overwrites (a fresh ``[N, B]`` per step was measured to cost
        more in page faults than the product itself)."""
        result_t = self.result
        if self.sparse.synapses.size:
            torch.addmm(result_t, self.matrix, torch.from_numpy(window.reshape(-1, self.batch)), beta=0, out=result_t)
        else:
            result_t.zero_()
        result = result_t.numpy()
        for block, weight_t in self.blocks:
            if 0 <= t + block.delay < self.steps:
                source = torch.from_numpy(window[block.delay - 1])[block.post]
                result_t[block.pre].addmm_(weight_t, source)
        for block, kernel in self.convs:
            if 0 <= t + block.delay < self.steps:
                source = torch.from_numpy(window[block.delay - 1])[block.post]
                result_t[block.pre] += block.backward(source.T, kernel).T
        return result

    def accumulate(self, spikes: np.ndarray, t0: int) -> None:
        """Add ``Σ λU[t+d]_post S[t]_pre`` of ``spikes`` = S[t0 …] ``[K, N, B]`` to the gradient.

        Values other than 0/1 (the incoming history, ``t0 < 0``) multiply.  The spike events
        of the time loop (``t0 ≥ 0``, bool) wait in :attr:`pending`, to be gathered in few
        calls by :meth:`gather`, once λU is known for every step they read — or, for a busy
        chunk (``CpuOptions.sampled_rate``), the chunk waits in :attr:`sampled` for :meth:`sample`.
        The convolution blocks' chunks wait in :attr:`conv_pending` for :meth:`gather`.
        """
        n, batch = self.n, self.batch
        binary = spikes.dtype == bool
        if binary and self.learned.synapses.size and self._busy(spikes):
            self.sampled.append((t0, spikes))
        elif self.learned.synapses.size:
            events = np.flatnonzero(spikes)
            pre = (events // batch) % n
            base = t0 * n * batch + events - pre * batch  # λU offset of (t, b) = t·N·B + b
            if binary:
                self.pending.append((pre, base))
                self.pending_size += events.size
                if self.pending_size > max(self.options.workspace, self.lam.size // self.options.chunks):  # bounded
                    self.gather()
            else:
                value, bounds = spikes.reshape(-1)[events], (0, self.lam.size)
                _gather_gradient(
                    self.grad_sparse, self.learned, self.key, self.lam.reshape(-1), pre, base, value, bounds
                )
        for i, ((block, _), grad) in enumerate(zip(self.blocks, self.grad_blocks, strict=True)):
            pair = self._delayed_pair(spikes, t0, block.delay, block.post, block.pre)
            if pair is not None:
                lam_rows, source = pair
                if binary and self._sparse_spikes(source, block):
                    if self.grad_blocks_t[i] is None:
                        self.grad_blocks_t[i] = grad.new_zeros(grad.shape[::-1])
                    _add_spike_product(self.grad_blocks_t[i], source, lam_rows)
                else:
                    source_t = torch.from_numpy(source.astype(self.lam.dtype))
                    grad += torch.tensordot(torch.from_numpy(lam_rows), source_t, dims=([0, 2], [0, 2]))
        if self.grad_convs:
            self.conv_pending.append((t0, spikes))

    def _delayed_pair(
        self, spikes: np.ndarray, t0: int, delay: int, post: slice, pre: slice
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """λU[t + d] of ``post`` ``[K, P, B]`` and S[t] of ``pre`` ``[K, Q, B]`` for the steps ``t`` of
        ``spikes`` = S[t0 …] with ``t + d ≥ 0`` (``None`` where there are none)."""
        skip = max(0, -(t0 + delay))  # steps whose t + d < 0
        if skip >= spikes.shape[0]:
            return None
        first = t0 + delay + skip
        return self.lam[first : first + spikes.shape[0] - skip, post], spikes[skip:, pre]

    def _sparse_spikes(self, spikes: np.ndarray, block: DenseBlock) -> bool:
        """Whether a dense block's weight gradient multiplies ``spikes`` as a sparse matrix."""
        area, options = block.shape[0] * block.shape[1], self.options
        return (
            area >= options.spike_product_min_area
            and np.count_nonzero(spikes) < options.spike_product_fraction * spikes.size
        )

    def _busy(self, spikes: np.ndarray) -> bool:
        """Whether the (event, synapse) pairs of ``spikes`` ``[K, N, B]`` reach
        ``sampled_rate × nnz × K·B``, the work of the sampled products."""
        pairs = float((spikes.reshape(spikes.shape[0], -1).view(np.uint8) @ self.fanout).sum())
        return pairs >= self.sampled_rate * self.learned.synapses.size * spikes.shape[0] * self.batch

    def gather(self) -> None:
        """Gather the gradient of the pending spike events of the time loop (and of the
        convolution blocks, whose products take all pending steps at once)."""
        self._gather_convolutions()
        pending, self.pending, self.pending_size = self.pending, [], 0
        if pending:
            pre, base = (np.concatenate(parts) for parts in zip(*pending, strict=True))
            del pending  # the queue's arrays, now copied
            _gather_gradient(self.grad_sparse, self.learned, self.key, self.lam.reshape(-1), pre, base, None, None)

    def _gather_convolutions(self) -> None:
        """``Σ λU[t+d]_post S[t]_pre`` per convolution synapse over the pending chunks, as batch-major
        rows: chunk by chunk for a tied block's kernel gradient, every pending step at once for the
        per-position products (then large enough for BLAS)."""
        pending, self.conv_pending = self.conv_pending, []
        for (block, _), total in zip(self.convs, self.grad_convs, strict=True):
            pairs = (self._delayed_pair(spikes, t0, block.delay, block.post, block.pre) for t0, spikes in pending)
            steps = (
                (torch.from_numpy(lam), torch.from_numpy(source.astype(lam.dtype)))
                for lam, source in (pair for pair in pairs if pair is not None)
            )  # one chunk at a time for the kernel's gradient, which takes any number of steps per call
            if not block.tied:  # the per-position products: every step at once
                parts = list(steps)
                steps = iter([tuple(torch.cat(column) for column in zip(*parts, strict=True))] if parts else [])
            for lam, source in steps:
                block.add_synapse_grad(total, lam, source)

    def sample(self, lam: np.ndarray) -> None:
        """Add ``Σ_{t,b} S[t]_{b,pre} λU[t+d]_{b,post}`` for every sparse synapse, ``t`` in the
        chunks of :attr:`sampled`.

        ``lam`` is λU relaid out as ``[T + D, B, N]``.  Per delay ``d`` and time chunk one
        sampled product ``(Sᵀ Λ_d)[pre, post]`` on the synapses' pattern only, accumulated in the
        pattern's values, with ``Sᵀ`` ``[N, K·B]`` from the chunk's kept spikes and ``Λ_d`` = the rows
        ``t + d`` as ``[K·B, N]``, in place.  Cost ``nnz × T·B`` multiply-adds, whatever the spikes.
        """
        n = self.n
        sums = [(pattern, pattern.matrix(lam.dtype)) for pattern in self.patterns]  # values: running sums
        for t0, spikes in self.sampled:
            t1 = t0 + spikes.shape[0]
            spikes_t = torch.from_numpy(spikes.transpose(1, 0, 2).astype(lam.dtype, order="C").reshape(n, -1))
            for pattern, total in sums:
                rows = torch.from_numpy(lam[t0 + pattern.delay : t1 + pattern.delay].reshape(-1, n))
                torch.sparse.sampled_addmm(total, spikes_t, rows, out=total)
        for pattern, total in sums:
            self.grad_sparse[pattern.positions] += total.values().numpy()

    def gradient(self, size: int, dtype: np.dtype) -> np.ndarray:
        self.gather()
        blocks = [
            (grad if grad_t is None else grad + grad_t.T).numpy()
            for grad, grad_t in zip(self.grad_blocks, self.grad_blocks_t, strict=True)
        ]
        convs = [block.synapse_grads(total) for (block, _), total in zip(self.convs, self.grad_convs, strict=True)]
        return _scatter_gradient(size, self.plan, self.grad_sparse, blocks, dtype, convs)


class _InputKernels:
    """The weight gradients of the input convolution blocks, added time chunk by time chunk
    from neuron-major λU (``[T + D, N, B]``) as the recursion finishes each chunk, with the
    chunk's inputs relaid out neuron-major (:meth:`ConvBlock.add_synapse_grad`), so that λU
    needs no relayout."""

    def __init__(self, plan: SynapsePlan, x: np.ndarray, steps: int, needed: bool) -> None:
        self.x, self.steps = x, steps
        self.blocks = plan.conv if needed else ()
        self.totals = [block.grad_buffer(torch.from_numpy(x).dtype) for block in self.blocks]

    def add(self, lam: np.ndarray, t0: int, t1: int) -> None:
        """Add the terms of the steps ``t0 … t1−1``, ``Σ λU[t]_post X[t − d]_pre``."""
        first = self.x.shape[0] - self.steps + t0  # X[t0] is x[Din + t0]
        for block, total in zip(self.blocks, self.totals, strict=True):
            source = neuron_major(self.x[first - block.delay : first - block.delay + t1 - t0, :, block.pre])
            block.add_synapse_grad(total, torch.from_numpy(lam[t0:t1, block.post]), torch.from_numpy(source))

    def gradients(self) -> list[np.ndarray]:
        """Each block's synapse gradients (:meth:`ConvBlock.synapse_grads`)."""
        return [block.synapse_grads(total) for block, total in zip(self.blocks, self.totals, strict=True)]


def _input_gradients(
    lam: np.ndarray | None,
    x: np.ndarray,
    w: np.ndarray,
    plan: SynapsePlan,
    steps: int,
    needs: Needs,
    kernels: _InputKernels,
    options: CpuOptions,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """∂x ``[Din + T, B, C]`` and ∂w_in from λU ``[T + D, B, N]`` (``None`` when only the
    convolution blocks' weight gradients are wanted, which ``kernels`` holds), one product per
    input delay.

    ∂X[t − d] += λU[t] W_d for all ``t``; ∂w_k = Σ_{t,b} λU[t]_post X[t − d]_pre, gathered per
    non-zero input (sparse delays) or from one product λU[·]ᵀ X[· − d] (dense blocks).
    """
    if lam is None:
        return None, _scatter_gradient(w.size, plan, np.zeros(0), [], w.dtype, kernels.gradients())
    d_in, batch, c = x.shape[0] - steps, x.shape[1], x.shape[2]
    n = lam.shape[2]
    rows = lam[:steps].reshape(steps * batch, n)
    rows_t = torch.from_numpy(rows)
    grad_x = np.zeros_like(x) if needs.x else None
    block_grads = []
    for block in plan.dense:
        if grad_x is not None:
            target = torch.from_numpy(delayed_rows(grad_x, block.delay, steps))[:, block.pre]
            target.addmm_(rows_t[:, block.post], block.matrix(w))
        if needs.w_in:
            source = torch.from_numpy(delayed_rows(x, block.delay, steps))[:, block.pre]
            block_grads.append((rows_t[:, block.post].T @ source).numpy())
    for block in plan.conv if grad_x is not None else ():
        target = torch.from_numpy(delayed_rows(grad_x, block.delay, steps))[:, block.pre]
        target += block.backward(rows_t[:, block.post], block.kernel(w))
    if grad_x is not None:
        chunk = chunk_size(steps * batch, n + c, options)
        for d, matrix in sparse_input_matrices(plan, w):
            target = delayed_rows(grad_x, d, steps)
            for lo, hi in time_chunks(steps * batch, chunk):
                target[lo:hi] += (matrix.T @ rows[lo:hi].T).T
    if not needs.w_in:
        return grad_x, None
    sparse = plan.learned
    grad_sparse = np.zeros(sparse.synapses.size)
    if sparse.synapses.size:
        key = sparse.delay * (batch * n) + sparse.post  # λU offset of (t + d, post)
        lam_flat = lam.reshape(-1)
        for lo, hi in time_chunks(x.shape[0], chunk_size(x.shape[0], batch * c, options)):
            values = x[lo:hi].reshape(-1)
            events = np.flatnonzero(values)
            pre = events % c
            base = (events // c + (lo - d_in) * batch) * n  # λU offset of (τ − Din, b)
            bounds = (0, steps * batch * n)
            _gather_gradient(grad_sparse, sparse, key, lam_flat, pre, base, values[events], bounds)
    return grad_x, _scatter_gradient(w.size, plan, grad_sparse, block_grads, w.dtype, kernels.gradients())


def _synaptic_gradients(
    layer: LayerSpec,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    lam: np.ndarray,
    adjoint: _Adjoint,
    kernels: _InputKernels,
    local_s: np.ndarray | None,
    needs: Needs,
    plan: LayerPlan,
    options: CpuOptions,
) -> tuple[np.ndarray | None, ...]:
    """Gradients ``(x, w_in, w_rec, s_hist)`` once λU (λI of generic neurons) ``lam``
    ``[T + D, N, B]`` is known for every step, ``arrays`` = ``(x, w_in, w_rec, s_hist)``; ``None``
    where not needed.  λU is relaid out in place (:func:`~snngraph.backends.cpu.arrays.batch_major`)
    where a product reads it batch-major (not for the input convolutions' weight gradients,
    which ``kernels`` added chunk by chunk).

    ∂S[−k] = Σ_{rec k: j→i, d} w_k λU[−k+d]_i, from the adjoint product on a zero-padded window,
    plus ``local_s`` ``[N, B]`` for ``k = 1`` (the neuron's own terms, ``None`` for none); the
    history's spikes join the recurrent weight gradient.
    """
    x, w_in, w_rec, s_hist = arrays
    steps, depth, dtype = lam.shape[0] - layer.max_delay, layer.max_delay, lam.dtype
    grad_s_hist = None
    if needs.s_hist:
        grad_s_hist = np.empty_like(s_hist)
        window = np.zeros((2 * depth - 1, *lam.shape[1:]), dtype)  # λU[−D+1 … D−1]
        window[depth - 1 :] = lam[:depth]
        for k in range(1, depth + 1):
            lam_s = adjoint.backprop(window[depth - k : 2 * depth - k], -k)
            if k == 1 and local_s is not None:
                lam_s += local_s
            grad_s_hist[depth - k] = lam_s.T
    if needs.w_rec:
        adjoint.accumulate(neuron_major(s_hist), -depth)
        adjoint.gather()  # the queued spike events read λU: before the relayout
    inputs = plan.inputs
    rows_read = needs.x or (needs.w_in and bool(inputs.dense or inputs.learned.synapses.size))
    lam_batch_major = batch_major(lam, steps, options) if adjoint.sampled or rows_read else None
    grad_w_rec = None
    if needs.w_rec:
        if adjoint.sampled:
            adjoint.sample(lam_batch_major)
        grad_w_rec = adjoint.gradient(w_rec.size, dtype)
    grad_x = grad_w_in = None
    if needs.x or needs.w_in:
        grad_x, grad_w_in = _input_gradients(lam_batch_major, x, w_in, inputs, steps, needs, kernels, options)
    return grad_x, grad_w_in, grad_w_rec, grad_s_hist


@dataclass
class _Chunk:
    """What the backward recursion reads of steps ``t0 … t1−1``, ``[K, N, B]`` each: U, the
    spikes and those of them that reset to zero (``z S``; ``None`` when no neuron resets to zero)."""

    u: np.ndarray
    spikes: np.ndarray  # bool
    zeroed: np.ndarray | None  # bool


def _chunk(neurons: Neurons, u: np.ndarray, live: np.ndarray | None) -> _Chunk:
    """The spikes of a chunk (``u`` ``[K, B, N]``; ``live`` ``[K, N]`` = [t ≥ onset] or ``None``)."""
    u_nb = neuron_major(u)
    spikes = np.greater(u_nb, neurons.threshold_nb)
    if live is not None:  # inert before the onset: no spikes
        spikes &= live[:, :, None]
    zeroed = None if neurons.resets_to_zero is None else neurons.zeroed(spikes)
    return _Chunk(u_nb, spikes, zeroed)


def _gain(layer: LayerSpec, neurons: Neurons, u: np.ndarray, live: np.ndarray | None, out: np.ndarray) -> np.ndarray:
    """m σ'(U − θ) ``[N, B]`` of one step into ``out`` (``live`` ``[N]``: [t ≥ onset], or ``None``:
    zero before the onset), without temporaries (the surrogate's formula on fresh arrays was
    measured at 0.4 s of a 4 s training step of the N-MNIST CNN of ``benchmarks/bench_conv.py``)."""
    np.subtract(u, neurons.theta_nb, out=out)
    with np.errstate(over="ignore", under="ignore"):
        gain = layer.surrogate.grad_into(out)
    for span in neurons.silent:
        gain[span] = 0
    if live is not None:
        gain *= column(live)
    return gain


def backward(
    layer: LayerSpec,
    inputs: LayerInputs,
    u: torch.Tensor,
    grad_u: torch.Tensor | None,
    grad_s: torch.Tensor | None,
    needs: Needs,
    plan: LayerPlan,
    options: CpuOptions,
) -> tuple[np.ndarray | None, ...]:
    """Gradients ``(x, w_in, w_rec, α, θ, b, u0, s_hist)`` of a plain layer by the reverse-time recursion of
    docs/design.md ("BPTT"; package docstring), ``None`` where not needed."""
    x, w_in, w_rec, table, v0, s_hist = (as_numpy(t) for t in inputs)
    u0 = v0[0]
    u, grad_u, grad_s = (None if t is None else as_numpy(t) for t in (u, grad_u, grad_s))
    steps, batch, n = u.shape
    depth, dtype = layer.max_delay, u.dtype
    neurons, col = Neurons(table, batch), column
    alpha = neurons.alpha
    needs_alpha, needs_theta, needs_bias = ("A" in needs.neurons, "theta" in needs.neurons, "b" in needs.neurons)
    alpha_col, alpha_nb = col(alpha), neurons.alpha_nb
    lam = plan.memory.empty((steps + depth, n, batch), dtype)  # each step writes its row before it is read
    lam[steps:] = 0
    adjoint = _Adjoint(plan, w_rec, lam, steps, needs.w_rec, options)
    kernels = _InputKernels(plan.inputs, x, steps, needs.w_in)
    grad_alpha = np.zeros(n)
    theta_reset = np.zeros(n)  # Σ_{t,b} λU[t+1] S[t], t = −1 … T−2
    gain_lam_s = np.zeros((n, batch), dtype) if needs_theta else None  # Σ_t m σ'(U[t] − θ) λS[t]

    live = neurons.live(steps)
    gain_buffer = np.empty((n, batch), dtype)
    read = () if grad_u is None else nonzero_spans(grad_u)
    resets = not layer.detach_reset and (neurons.zero is not None or neurons.subtract is not None)
    # Per step, [N, B] each: the coefficients are computed where they are used, so that a step's
    # arrays stay in the cache (measured 3–6× faster per operation than on chunk-wide arrays).
    for t0, t1 in reversed(list(time_chunks(steps, chunk_size(steps, n * batch, options)))):
        chunk = _chunk(neurons, u[t0:t1], None if live is None else live[t0:t1])
        for i in range(t1 - t0 - 1, -1, -1):
            t = t0 + i
            following, current = lam[t + 1], lam[t]
            np.multiply(alpha_nb, following, out=current)  # α (1 − z S) λU[t + 1]
            if chunk.zeroed is not None:
                np.copyto(current, 0, where=chunk.zeroed[i])
            for span in read:  # + ∂L/∂U[t]
                current[span] += grad_u[t, :, span].T
            gain = _gain(layer, neurons, chunk.u[i], None if live is None else live[t], gain_buffer)
            part = None  # m σ' λS: the terms of λS, times σ'
            if grad_s is not None:
                part = np.multiply(gain, grad_s[t].T)
            if adjoint.has_synapses:
                recurrent = adjoint.backprop(lam[t + 1 : t + 1 + depth], t)
                recurrent *= gain
                part = recurrent if part is None else np.add(part, recurrent, out=part)
            if resets:  # − (s θ + z α U) λU[t + 1], times σ'
                reset = np.zeros_like(following)
                if neurons.zero_alpha is not None:
                    reset += col(neurons.zero_alpha) * chunk.u[i]
                if neurons.subtract_theta is not None:
                    reset += col(neurons.subtract_theta)
                reset *= gain
                reset *= following
                part = np.negative(reset, out=reset) if part is None else np.subtract(part, reset, out=part)
            if part is not None:
                current += part
                if gain_lam_s is not None:
                    gain_lam_s += part
        following = lam[t0 + 1 : t1 + 1]  # λU[t + 1] for the chunk's t
        if needs_alpha:
            leak = chunk.u if chunk.zeroed is None else np.where(chunk.zeroed, 0, chunk.u)
            grad_alpha += (following * leak).sum(axis=(0, 2), dtype=np.float64)
        if needs_theta and neurons.subtract is not None:
            theta_reset += (following * chunk.spikes).sum(axis=(0, 2), dtype=np.float64)
        if needs.w_rec:
            adjoint.accumulate(chunk.spikes, t0)
        kernels.add(lam, t0, t1)

    # The step before the chunk: U[−1] = u0 and S[−1] = s_hist[D − 1] meet λU[0].
    lam0, u_last, s_last = lam[0], u0.T, s_hist[-1].T
    keep0 = 1 if neurons.zero is None else 1 - col(neurons.zero) * s_last
    grad_alpha += (lam0 * u_last * keep0).sum(axis=1, dtype=np.float64)
    theta_reset += (lam0 * s_last).sum(axis=1, dtype=np.float64)
    grad_u0 = np.ascontiguousarray((alpha_col * keep0 * lam0).T) if needs.v0 else None
    reset_s = None  # the reset terms of ∂L/∂S[−1]: −(s θ + z α U[−1]) λU[0]
    if needs.s_hist and not layer.detach_reset and (neurons.subtract is not None or neurons.zero is not None):
        reset_s = np.zeros((n, batch), dtype)
        if neurons.subtract_theta is not None:
            reset_s -= col(neurons.subtract_theta) * lam0
        if neurons.zero_alpha is not None:
            reset_s -= col(neurons.zero_alpha) * u_last * lam0

    grad_theta = None
    if needs_theta:
        subtract = 0 if neurons.subtract is None else neurons.subtract
        grad_theta = (-gain_lam_s.sum(axis=1, dtype=np.float64) - subtract * theta_reset).astype(dtype)
    grad_bias = None
    if needs_bias:  # Σ_{t ≥ onset} λU[t]
        lam_t = lam[:steps].sum(axis=2, dtype=np.float64)
        if live is not None:
            lam_t *= live
        grad_bias = lam_t.sum(axis=0).astype(dtype)
    grad_x, grad_w_in, grad_w_rec, grad_s_hist = _synaptic_gradients(
        layer, (x, w_in, w_rec, s_hist), lam, adjoint, kernels, reset_s, needs, plan, options
    )
    grad_alpha = grad_alpha.astype(dtype) if needs_alpha else None
    return grad_x, grad_w_in, grad_w_rec, grad_alpha, grad_theta, grad_bias, grad_u0, grad_s_hist


def _own_currents(
    layer: LayerSpec,
    inputs: LayerInputs,
    v: torch.Tensor,
    neurons: GenericNeurons,
    plan: LayerPlan,
    options: CpuOptions,
) -> np.ndarray:
    """I[t] ``[T, N, B]`` of the forward pass again, from the inputs and the spikes of the saved
    states ``v`` ``[T, K, B, N]`` (for ``∂e``), with the forward pass's synaptic machinery."""
    current, propagate = currents(layer, [as_numpy(t) for t in inputs], plan, options)
    steps = current.shape[0]
    for t0, t1 in time_chunks(steps, chunk_size(steps, v[0].numel(), options)):
        spikes, _ = neurons.spikes(_saved_states(v, t0, t1, inputs.x.dtype), t0)
        for t in range(t0, min(t1, steps - 1)):
            propagate(spikes[t - t0], t)
    return current


def _saved_states(v: torch.Tensor, t0: int, t1: int, dtype: torch.dtype) -> np.ndarray:
    """Steps ``t0 … t1−1`` of the saved states ``v`` ``[T, K, B, N]`` (perhaps 16-bit) in the
    compute ``dtype``, neuron-major ``[C, K, N, B]``."""
    return neuron_major(as_numpy(v[t0:t1].to(dtype)))


def backward_states(
    layer: LayerSpec,
    inputs: LayerInputs,
    v: torch.Tensor,
    grad_v: torch.Tensor | None,
    grad_s: torch.Tensor | None,
    needs: Needs,
    plan: LayerPlan,
    options: CpuOptions,
) -> LayerInputs:
    """Gradients of a layer of generic neurons (``None`` where not needed) by the reverse-time
    recursion of :mod:`~snngraph.backends.cpu.states`, with λI = e·λv in place of the plain
    path's λU in everything synaptic.

    λI is one array ``[T + D, N, B]`` as λU is; λv lives per time chunk, ``[C + 1, K, N, B]``
    with λv of the step after the chunk last, and the table's sums are taken chunk by chunk.
    """
    arrays = [as_numpy(t) for t in inputs]
    x, w_in, w_rec, table, v0, s_hist = arrays
    k, batch, n = v0.shape
    steps, depth, dtype = v.shape[0], layer.max_delay, x.dtype
    neurons = GenericNeurons(table, batch, layer.detach_reset, needs.neurons)
    sums = TableGradient(neurons, needs.neurons, n)
    lam = plan.memory.zeros((steps + depth, n, batch), dtype)  # λI
    adjoint = _Adjoint(plan, w_rec, lam, steps, needs.w_rec, options)
    kernels = _InputKernels(plan.inputs, x, steps, needs.w_in)
    coupled = adjoint.has_synapses or bool(neurons.coupling)  # λS has terms besides ∂L/∂S
    surrogate_sums = bool({"theta", "g"} & needs.neurons)
    current = _own_currents(layer, inputs, v, neurons, plan, options) if "e" in needs.neurons else None
    scratch = np.empty((n, batch), dtype)
    work = (scratch, np.empty((n, batch), dtype))
    following = np.zeros((k, n, batch), dtype)  # λv[t1]
    for t0, t1 in reversed(list(time_chunks(steps, chunk_size(steps, k * n * batch, options)))):
        size = t1 - t0
        step = neurons.transitions(_saved_states(v, t0, t1, inputs.x.dtype), t0)
        gain = neurons.gain(layer.surrogate, step.v[:, 0], step.theta, t0)
        lam_v = np.empty((size + 1, k, n, batch), dtype)  # λv[t0 … t1], from ∂L/∂v + (e₀ − g)·σ'·∂L/∂S
        lam_v[size] = following
        if grad_v is not None:
            lam_v[:size] = as_numpy(grad_v[t0:t1]).swapaxes(-1, -2)
        gain_grad_s = None  # σ'·∂L/∂S (grad_v and grad_s are never both None)
        if grad_s is not None:
            gain_grad_s = gain * as_numpy(grad_s[t0:t1]).swapaxes(-1, -2)
            neurons.spike_gain(rows(lam_v[:size]), (gain_grad_s,), np.empty_like(gain), add=grad_v is not None)
        gain_lam_s = np.empty_like(gain) if coupled else None  # σ'·(λS − ∂L/∂S), every step writes it
        for i in range(size - 1, -1, -1):
            t = t0 + i
            later, now = lam_v[i + 1], lam_v[i]
            neurons.pull_back(step, i, later, now, work, add=True)
            part = adjoint.backprop(lam[t + 1 : t + 1 + depth], t) if adjoint.has_synapses else None
            part = neurons.couple(step, i, later, part, scratch)
            if part is not None:
                np.multiply(gain[i], part, out=gain_lam_s[i])
                neurons.spike_gain(now, (gain_lam_s[i],), scratch, add=True)
            neurons.to_current((lam[t],), now, scratch, add=False)
        if surrogate_sums and gain_grad_s is not None:
            gain_lam_s = gain_grad_s if gain_lam_s is None else np.add(gain_lam_s, gain_grad_s, out=gain_lam_s)
        sums.add_steps(t0, step.v, lam_v[:size], gain_lam_s, None if current is None else current[t0:t1])
        sums.add_transitions(step, lam_v[1:])
        if needs.w_rec:
            adjoint.accumulate(step.spikes, t0)
        kernels.add(lam, t0, t1)
        following = lam_v[0]

    # The step before the run: v[−1] = v0 and S[−1] = s_hist[D − 1] meet λv[0].
    history = neurons.transitions(neuron_major(v0)[None], -1, s_hist[-1].T[None])
    sums.add_transitions(history, following[None])
    grad_v0 = None
    if needs.v0:
        grad_v0 = np.empty((k, n, batch), dtype)
        neurons.pull_back(history, 0, following, grad_v0, work, add=False)
        grad_v0 = np.ascontiguousarray(grad_v0.swapaxes(1, 2))
    local_s = neurons.couple(history, 0, following, None, scratch) if needs.s_hist else None
    grads = _synaptic_gradients(layer, (x, w_in, w_rec, s_hist), lam, adjoint, kernels, local_s, needs, plan, options)
    grad_x, grad_w_in, grad_w_rec, grad_s_hist = (None if g is None else torch.from_numpy(g) for g in grads)
    grad_table = None
    if needs.neurons:
        groups = {name: torch.from_numpy(value) for name, value in sums.result(dtype).items()}
        grad_table = table_gradient(inputs.neurons, groups)
    return LayerInputs(
        grad_x, grad_w_in, grad_w_rec, grad_table, None if grad_v0 is None else torch.from_numpy(grad_v0), grad_s_hist
    )
