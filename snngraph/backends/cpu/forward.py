"""Forward pass of the CPU backend (see the package docstring)."""

from __future__ import annotations

from bisect import bisect_right

import numpy as np
import torch

from snngraph.backends.base import LayerInputs, LayerSpec
from snngraph.backends.cpu.arrays import Neurons, chunk_size, delayed_rows, neuron_major, time_chunks
from snngraph.backends.cpu.options import CpuOptions
from snngraph.backends.cpu.plan import LayerPlan, SynapsePlan, as_numpy, sparse_input_matrices, torch_product_matrix
from snngraph.backends.cpu.states import GenericNeurons


def input_current(x: np.ndarray, w: np.ndarray, plan: SynapsePlan, v: np.ndarray, options: CpuOptions) -> None:
    """Add ``V[t] += (Σ_d X[t − d] W_dᵀ)ᵀ`` into ``v`` ``[T, N, B]``, ``x`` ``[Din + T, B, C]`` with
    ``X[t − d] = x[Din + t − d]``: per time chunk one product per input delay (BLAS for a dense
    block, SciPy otherwise) into ``[K·B, N]`` rows, then transposed into place; a convolution
    block's ``[K·B, n_post]`` output goes straight into its neurons' rows."""
    steps, n, batch = v.shape
    d_in = x.shape[0] - steps
    dense = [(block, block.matrix(w).T) for block in plan.dense]
    convs = [(block, block.kernel(w)) for block in plan.conv]
    sparse = sparse_input_matrices(plan, w)
    for lo, hi in time_chunks(steps, chunk_size(steps, n * batch, options)):
        x_chunk = x[lo : d_in + hi]
        for block, kernel in convs:
            source = torch.from_numpy(delayed_rows(x_chunk, block.delay, hi - lo))[:, block.pre]
            v[lo:hi, block.post] += block.forward(source, kernel).numpy().reshape(hi - lo, batch, -1).transpose(0, 2, 1)
        if not (dense or sparse):
            continue
        rows = np.zeros(((hi - lo) * batch, n), x.dtype)
        rows_t = torch.from_numpy(rows)
        for block, weight_t in dense:
            source = torch.from_numpy(delayed_rows(x_chunk, block.delay, hi - lo))[:, block.pre]
            rows_t[:, block.post].addmm_(source, weight_t)
        for d, matrix in sparse:
            rows += (matrix @ delayed_rows(x_chunk, d, hi - lo).T).T
        v[lo:hi] += rows.reshape(hi - lo, batch, n).transpose(0, 2, 1)


class _Propagator:
    """Sends the spikes of a step into the future rows of ``V``, U neuron-major ``[T, N, B]``."""

    def __init__(self, plan: LayerPlan, w: np.ndarray, v: np.ndarray, event_fraction: float) -> None:
        steps, n, batch = v.shape
        sparse = plan.recurrent.sparse
        self.v, self.v_t = v, torch.from_numpy(v)
        self.steps, self.n, self.batch = steps, n, batch
        self.blocks = [(block, block.matrix(w)) for block in plan.recurrent.dense]
        self.convs = [(block, block.kernel(w)) for block in plan.recurrent.conv]
        self.sparse = sparse
        self.delays = sparse.delays
        self.delay_list = sparse.delays.tolist()
        self.n_slots = max(1, sparse.delays.size)
        self.contiguous = bool(sparse.delays.size) and (sparse.delays[-1] - sparse.delays[0] + 1 == sparse.delays.size)
        # CSR (n_slots·N, N): row slot·N + post, column pre — sends S[t] into all delays at once;
        # with contiguous delays its rows are the rows t + d of V, in order.
        if sparse.synapses.size:
            self.matrix = torch_product_matrix(sparse.by_pre(w, plan.forward_columns, self.n_slots * n).T.tocsr())
        self.weight = w[sparse.synapses]
        self.key = sparse.delay * (n * batch) + sparse.post * batch  # flat offset into V of a pair
        self.max_events = event_fraction * (v.itemsize / 4) * batch * n

    def __call__(self, spikes: np.ndarray, t: int) -> None:
        """Add ``Σ_{rec k: j→i, d} w_k S[t]_j`` to ``V[t + d]_i`` for all ``0 ≤ t + d < T``.

        ``spikes`` ``[N, B]`` is S[t]: bool in the time loop, or the float values of the incoming
        history (``t < 0``), which multiply the weights and always take the sparse product.
        """
        binary = spikes.dtype == bool
        values_t = None
        for block, weight in self.blocks:
            row = t + block.delay
            if 0 <= row < self.steps and spikes[block.pre].any():
                if values_t is None:
                    values_t = torch.from_numpy(np.ascontiguousarray(spikes, self.v.dtype))
                self.v_t[row, block.post].addmm_(weight, values_t[block.pre])
        for block, kernel in self.convs:
            row = t + block.delay
            if 0 <= row < self.steps and spikes[block.pre].any():
                if values_t is None:
                    values_t = torch.from_numpy(np.ascontiguousarray(spikes, self.v.dtype))
                self.v_t[row, block.post] += block.forward(values_t[block.pre].T, kernel).T
        if not self.sparse.synapses.size:
            return
        count = np.count_nonzero(spikes)
        if not count:
            return
        if binary and count < self.max_events:
            self._events(spikes, t)
        else:
            self._product(spikes if values_t is None else values_t, t)

    def _events(self, spikes: np.ndarray, t: int) -> None:
        """Walk the outgoing synapses of each spike event (cost ``events × fan-out``)."""
        events = np.flatnonzero(spikes)  # pre·B + b
        pre = events // self.batch
        # V flat index of (t + d, post, b) = key + t·N·B + b, and events − pre·B = b
        base = events - pre * self.batch + t * self.v[0].size
        syn, target = self.sparse.pairs(pre, base, self.key)
        weight = np.take(self.weight, syn)
        if t + self.delay_list[-1] >= self.steps:
            keep = target < self.v.size
            target, weight = target[keep], weight[keep]
        np.add.at(self.v.reshape(-1), target, weight)

    def _product(self, spikes: np.ndarray | torch.Tensor, t: int) -> None:
        """One sparse product over all synapses (cost ``nnz × B``), for busy steps: accumulated
        in place into ``V[t + d_min … t + d_max]`` when these rows exist and the delays are
        contiguous, else through a temporary."""
        lo = bisect_right(self.delay_list, -t - 1)  # first delay with t + d ≥ 0
        hi = bisect_right(self.delay_list, self.steps - 1 - t)  # past the last with t + d < T
        if lo >= hi:
            return
        if isinstance(spikes, np.ndarray):
            spikes = torch.from_numpy(np.ascontiguousarray(spikes, self.v.dtype))
        first = t + self.delay_list[lo]
        if self.contiguous and hi - lo == self.n_slots:
            rows = self.v_t[first : first + self.n_slots].view(-1, self.batch)
            torch.addmm(rows, self.matrix, spikes, out=rows)
            return
        current = (self.matrix @ spikes).numpy().reshape(self.n_slots, self.n, self.batch)[lo:hi]
        self.v[t + self.delays[lo:hi]] += current


def currents(
    layer: LayerSpec, arrays: list[np.ndarray], plan: LayerPlan, options: CpuOptions, drive: np.ndarray | None = None
) -> tuple[np.ndarray, _Propagator]:
    """The currents ``[T, N, B]`` before the time loop — the input currents (plus ``drive``
    ``[T, N]`` where given) and the spikes of the incoming history ``S[−D … −1]`` — and the
    propagator that adds those of the layer's own steps; ``arrays`` are the inputs of the call
    as NumPy.  The currents' array is from the plan's memory."""
    x, w_in, w_rec, _, v0, s_hist = arrays
    steps = x.shape[0] - layer.max_input_delay
    v = plan.memory.zeros((steps, v0.shape[2], v0.shape[1]), x.dtype)
    input_current(x, w_in, plan.inputs, v, options)
    if drive is not None:  # the constant b added to I[t] from each neuron's onset on
        v += drive[:, :, None]
    propagate = _Propagator(plan, w_rec, v, options.event_fraction)
    for k in range(layer.max_delay, 0, -1):  # S[−k] reaches step −k + d for d ≥ k
        propagate(s_hist[layer.max_delay - k].T, -k)
    return v, propagate


def forward(
    layer: LayerSpec, inputs: LayerInputs, plan: LayerPlan, options: CpuOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    """V ``[T, 1, B, N]`` and S ``[T, B, N]`` of a plain layer by the recursion of docs/design.md
    ("The model"; see the package docstring), computed neuron-major and returned as views of
    ``[T, N, B]`` arrays."""
    arrays = [as_numpy(t) for t in inputs]
    x, table, u0, s_hist = arrays[0], arrays[3], arrays[4][0], arrays[5]
    batch, n = u0.shape
    neurons = Neurons(table, batch)
    steps = x.shape[0] - layer.max_input_delay
    drive, live = neurons.drive(steps), neurons.live(steps)
    v, propagate = currents(layer, arrays, plan, options, drive)
    alpha_nb, threshold_nb = neurons.alpha_nb, neurons.threshold_nb
    subtract_theta_nb = neurons.subtract_theta_nb
    buffers = [np.empty((n, batch), bool) for _ in range(2)]
    fired = plan.memory.empty(v.shape, v.dtype)
    leak, scratch = np.empty((n, batch), x.dtype), np.empty((n, batch), x.dtype)
    zeroed = np.empty((n, batch), bool)
    v_prev, s_prev = u0.T, s_hist[-1].T
    for t in range(steps):
        v_t = v[t]
        np.multiply(v_prev, alpha_nb, out=leak)  # α U[t−1]
        if neurons.resets_to_zero is not None:  # · (1 − z S[t−1])
            if t == 0:  # the incoming history's spikes are values
                leak *= 1 - neurons.zero_nb * s_prev
            else:
                np.copyto(leak, 0, where=neurons.zeroed(s_prev, out=zeroed))
        v_t += leak
        if subtract_theta_nb is not None:  # − s θ S[t−1]
            np.multiply(s_prev, subtract_theta_nb, out=scratch)
            v_t -= scratch
        s_t = np.greater(v_t, threshold_nb, out=buffers[t % 2])
        if live is not None:  # no spikes before a neuron's onset
            s_t &= live[t][:, None]
        np.copyto(fired[t], s_t)
        if t + 1 < steps:
            propagate(s_t, t)
        v_prev, s_prev = v_t, s_t
    return torch.from_numpy(v).transpose(1, 2)[:, None], _batch_view(fired)


def forward_states(
    layer: LayerSpec, inputs: LayerInputs, plan: LayerPlan, options: CpuOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    """V ``[T, K, B, N]`` and S ``[T, B, N]`` of a layer of generic neurons
    (:mod:`~snngraph.backends.cpu.states`), computed neuron-major ``[T, K, N, B]`` next to the
    currents ``[T, N, B]`` and returned as views; the synapses as in the plain path."""
    arrays = [as_numpy(t) for t in inputs]
    table, v0, s_hist = arrays[3:]
    k, batch, n = v0.shape
    current, propagate = currents(layer, arrays, plan, options)
    steps, dtype = current.shape[0], current.dtype
    neurons = GenericNeurons(table, batch, layer.detach_reset)
    v, fired = plan.memory.empty((steps, k, n, batch), dtype), plan.memory.empty(current.shape, dtype)
    work = (np.empty((n, batch), dtype), np.empty((n, batch), dtype))
    buffers = [np.empty((n, batch), bool) for _ in range(2)]
    thresholds = [np.empty((n, batch), dtype) for _ in range(2)]
    v_prev, s_prev = neuron_major(v0), s_hist[-1].T
    theta_prev = neurons.threshold(v_prev, thresholds[1], work[0])
    for t in range(steps):
        v_t, gate = v[t], neurons.gate(t, t + 1)
        gate = None if gate is None else gate[0]  # [N, 1]
        neurons.advance(v_t, v_prev, s_prev, theta_prev, current[t], gate, work)
        theta_prev = neurons.threshold(v_t, thresholds[t % 2], work[0])
        s_t = neurons.fire(v_t[0], theta_prev, buffers[t % 2], gate)
        np.copyto(fired[t], s_t)
        if t + 1 < steps:
            propagate(s_t, t)
        v_prev, s_prev = v_t, s_t
    return torch.from_numpy(v).transpose(2, 3), _batch_view(fired)


def _batch_view(spikes: np.ndarray) -> torch.Tensor:
    """The spikes ``[T, N, B]`` written step by step (measured 4× faster than comparing the
    returned ``[T, B, N]`` view of V afterwards, whose layout torch's comparison walks across)
    as the ``[T, B, N]`` view."""
    return torch.from_numpy(spikes).transpose(1, 2)
