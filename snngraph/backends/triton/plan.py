"""Index structures of the Triton backend, built once per plan: the synapses as row views
(CSR over postsynaptic neurons for the forward gathers, CSC over presynaptic ones for the
backward) and the input delays run as dense matrices."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from snngraph.backends.base import LayerSpec
from snngraph.backends.triton.graphs import LaunchBuffers

CHUNK = 128
"""Synapses per program in the weight-gradient kernel and the per-step gather."""


@dataclass(frozen=True)
class RowView:
    """Synapses grouped by one end: row ``r`` owns entries ``ptr[r] : ptr[r + 1]``.

    Rows are sorted by (row, delay, other end).  Per entry: ``order`` the synapse's position in
    the weight vector, ``index`` the other end, ``shift`` the time offset of what it reads
    (``−d`` over postsynaptic rows: S[t − d]; ``+d`` over presynaptic rows: λU[t + d]).
    ``max_length``/``mean_length``: of the rows; ``max_delay``: the largest ``|shift|``.
    ``chunk_row``/``chunk_start`` cut every row
    into chunks of ≤ :data:`CHUNK` entries.
    """

    order: torch.Tensor
    ptr: torch.Tensor
    index: torch.Tensor
    shift: torch.Tensor
    max_length: int
    mean_length: float
    max_delay: int
    chunk_row: torch.Tensor
    chunk_start: torch.Tensor

    @property
    def n_rows(self) -> int:
        return self.ptr.numel() - 1

    @classmethod
    def build(
        cls,
        rows: torch.Tensor,
        other: torch.Tensor,
        delay: torch.Tensor,
        ids: torch.Tensor,
        n_rows: int,
        sign: int,
    ) -> RowView:
        """The view of synapses ``ids`` (``rows``, ``other`` ends, ``delay``) with ``shift = sign·d``."""
        perm = torch.argsort(other, stable=True)
        perm = perm[torch.argsort(delay[perm], stable=True)]
        perm = perm[torch.argsort(rows[perm], stable=True)]
        counts = torch.bincount(rows, minlength=n_rows)
        ptr = torch.zeros(n_rows + 1, dtype=torch.int64, device=rows.device)
        ptr[1:] = torch.cumsum(counts, 0)
        chunks = (counts + CHUNK - 1) // CHUNK
        chunk_row = torch.repeat_interleave(torch.arange(n_rows, device=rows.device), chunks)
        first_chunk = torch.cumsum(chunks, 0) - chunks
        within = torch.arange(chunk_row.numel(), device=rows.device) - first_chunk[chunk_row]
        return cls(
            order=ids[perm],
            ptr=ptr.to(torch.int32),
            index=other[perm].to(torch.int32),
            shift=(sign * delay[perm]).to(torch.int32),
            max_length=int(counts.max()) if n_rows else 0,
            mean_length=rows.numel() / max(n_rows, 1),
            max_delay=int(delay.max()) if delay.numel() else 0,
            chunk_row=chunk_row.to(torch.int32),
            chunk_start=(ptr[chunk_row] + within * CHUNK).to(torch.int32),
        )


@dataclass(frozen=True)
class DenseBucket:
    """The input synapses of one delay, run as a dense ``[N, C]`` matrix.

    ``ids``: the synapses; ``flat``: their entries ``post·C + pre`` in the matrix; ``unique``: no
    two of them share an entry (then the matrix is a plain scatter, else a sum).
    """

    delay: int
    ids: torch.Tensor
    flat: torch.Tensor
    unique: bool

    def matrix(self, w_in: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """W_in[d] ``[N, C]`` with the current weights."""
        weight = w_in.new_zeros(shape[0] * shape[1])
        if self.unique:
            weight[self.flat] = w_in[self.ids]
        else:
            weight.index_add_(0, self.flat, w_in[self.ids])
        return weight.view(shape)


@dataclass(frozen=True, eq=False)
class IndexViews:
    """What the kernels need besides the weights, built once per network, device, dtype and options.

    ``n_neurons``: N; ``rec_rows``/``rec_cols``: the recurrent synapses over postsynaptic
    (forward) and presynaptic (backward) neurons; ``dense``: the input delays run as matrix
    products; ``in_rows``/``in_cols``: the other input synapses over postsynaptic neurons and
    over input channels.  ``graphs``, the one mutable part, holds per direction the static
    buffers and the recorded CUDA graph of the per-step loop (:class:`LaunchBuffers`), replaced
    when the shapes of a call change.
    """

    n_neurons: int
    rec_rows: RowView | None
    rec_cols: RowView | None
    dense: tuple[DenseBucket, ...]
    in_rows: RowView | None
    in_cols: RowView | None
    graphs: dict[str, LaunchBuffers] = field(default_factory=dict)

    @classmethod
    def build(cls, layer: LayerSpec, dense_input: float) -> IndexViews:
        n, c = layer.n_neurons, layer.n_inputs
        rec_ids = torch.arange(layer.rec_post.numel(), device=layer.rec_post.device)
        rec = (layer.rec_post, layer.rec_pre, layer.rec_delay)
        delays, counts = torch.unique(layer.in_delay, return_counts=True)
        dense_delays = [
            int(d) for d, k in zip(delays.tolist(), counts.tolist(), strict=True) if k >= dense_input * n * c
        ]
        dense = []
        for d in dense_delays:
            ids = torch.nonzero(layer.in_delay == d).flatten()
            flat = layer.in_post[ids] * c + layer.in_pre[ids]
            dense.append(DenseBucket(d, ids, flat, torch.unique(flat).numel() == flat.numel()))
        is_dense = torch.isin(layer.in_delay, torch.tensor(dense_delays, dtype=torch.int64, device=delays.device))
        sparse = torch.nonzero(~is_dense).flatten()
        sparse_in = (layer.in_post[sparse], layer.in_pre[sparse], layer.in_delay[sparse])
        has_rec, has_sparse_in = rec_ids.numel() > 0, sparse.numel() > 0
        return cls(
            n_neurons=n,
            rec_rows=RowView.build(rec[0], rec[1], rec[2], rec_ids, n, -1) if has_rec else None,
            rec_cols=RowView.build(rec[1], rec[0], rec[2], rec_ids, n, +1) if has_rec else None,
            dense=tuple(dense),
            in_rows=RowView.build(*sparse_in, sparse, n, -1) if has_sparse_in else None,
            in_cols=(RowView.build(sparse_in[1], sparse_in[0], sparse_in[2], sparse, c, +1) if has_sparse_in else None),
        )
