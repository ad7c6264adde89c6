"""A linear map between populations as synapse paths that remember the one weight they read.

A chain of stateless NIR nodes (``Linear``, ``Affine``, ``Conv1d``/``Conv2d``, ``SumPool2d``,
``AvgPool2d``, ``Scale``, ``Flatten``) maps a population's output linearly.  Instead of one
multiplied-out matrix, :class:`Paths` keeps every path ``row ← … ← col`` through the chain as one
synapse with a fixed factor ``scale`` (the product of the fixed weights along it: pooling
values, scales, the target's gain) and, when the chain has one weighted node (a kernel or a
matrix, its ``param``), the position ``index`` of the weight it reads there:

    weight_k = scale_k · param.reshape(-1)[index_k]          (scale_k alone without a param)

so that the importer can write the chain as one edge that still trains the kernel or matrix as
a tied parameter.  A chain with several weighted nodes has its weights multiplied out
(``free``: trainable values, no tie).  ``conv`` keeps the geometry while the map is exactly
one convolution or pooling (a ``Scale`` after it changes only the factors), and ``structured``
records that a convolution or pooling is on the path (the importer writes other chains as
plain matrices).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from snngraph.convolution import ConvSpec


@dataclass(frozen=True, eq=False)
class NodeMap:
    """What one stateless node does: synapse ``k`` maps input ``cols[k]`` to output ``rows[k]``
    with ``param.reshape(-1)[index[k]]`` (a weighted node, ``param`` its weight) or with the fixed
    ``values[k]`` (``param`` None)."""

    shape: tuple[int, int]
    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray | None = None
    index: np.ndarray | None = None
    param: np.ndarray | None = None
    node: str | None = None
    conv: ConvSpec | None = None
    elementwise: bool = False

    @classmethod
    def matrix(cls, node: str, weight: np.ndarray) -> NodeMap:
        """A ``Linear``/``Affine`` weight ``[out, in]``: every entry one weighted synapse."""
        rows, cols = (a.ravel().astype(np.int64) for a in np.indices(weight.shape))
        return cls(weight.shape, rows, cols, index=np.arange(weight.size), param=weight, node=node)

    @classmethod
    def convolution(cls, node: str, spec: ConvSpec, kernel: np.ndarray | None) -> NodeMap:
        """A convolution (``kernel`` its weight) or a pooling (``kernel`` None: the fixed value)."""
        rows, cols, tap = spec.synapses()
        shape = (int(np.prod(spec.out_shape)), int(np.prod(spec.in_shape)))
        if kernel is None:
            return cls(shape, rows, cols, values=np.full(rows.size, spec.value), node=node, conv=spec)
        return cls(shape, rows, cols, index=tap, param=kernel, node=node, conv=spec)

    @classmethod
    def diagonal(cls, node: str, scale: np.ndarray) -> NodeMap:
        """An elementwise ``Scale`` (one factor per value)."""
        n = np.arange(scale.size)
        return cls((scale.size, scale.size), n, n, values=scale.astype(np.float64), node=node, elementwise=True)

    def weights(self) -> np.ndarray:
        return self.values if self.param is None else self.param.reshape(-1)[self.index]

    def tocsr(self) -> sp.csr_array:
        return sp.coo_array((self.weights(), (self.rows, self.cols)), shape=self.shape).tocsr()

    def apply(self, vector: np.ndarray) -> np.ndarray:
        """The map applied to a vector ``[in]`` (a bias passing through)."""
        out = np.zeros(self.shape[0])
        np.add.at(out, self.rows, self.weights() * vector[self.cols])
        return out


@dataclass(frozen=True, eq=False)
class Paths:
    """A linear map ``[size, source size]`` as synapse paths (module doc)."""

    shape: tuple[int, int]
    rows: np.ndarray
    cols: np.ndarray
    scale: np.ndarray
    index: np.ndarray | None = None
    param: np.ndarray | None = None
    node: str | None = None
    free: bool = False
    conv: ConvSpec | None = None
    structured: bool = False
    identity: bool = False

    @classmethod
    def eye(cls, size: int) -> Paths:
        n = np.arange(size, dtype=np.int64)
        return cls((size, size), n, n, np.ones(size), identity=True)

    @property
    def trainable(self) -> bool:
        return self.param is not None or self.free

    def weights(self) -> np.ndarray:
        """The weight of every path: ``scale·param[index]`` (or ``scale``)."""
        return self.scale if self.param is None else self.scale * self.param.reshape(-1)[self.index]

    def toarray(self) -> np.ndarray:
        """The map as a dense matrix ``[size, source size]`` (parallel paths summed)."""
        matrix = np.zeros(self.shape)
        np.add.at(matrix, (self.rows, self.cols), self.weights())
        return matrix

    def tocoo(self) -> sp.coo_array:
        """The map as a sparse matrix, one stored entry per (row, col) that some path connects."""
        return sp.coo_array((self.weights(), (self.rows, self.cols)), shape=self.shape).tocsr().tocoo()

    def then(self, step: NodeMap) -> Paths:
        """This map followed by the node ``step``: each path extended by each of its synapses."""
        structured = self.structured or step.conv is not None
        if self.trainable and step.param is not None:  # a second weighted node: the weights multiplied out
            product = (step.tocsr() @ self.tocoo().tocsr()).tocoo()
            rows, cols = product.row.astype(np.int64), product.col.astype(np.int64)
            return Paths(product.shape, rows, cols, product.data, free=True, structured=structured)
        mine, theirs = _join(self.rows, step.cols, self.shape[0])
        rows, cols = step.rows[theirs], self.cols[mine]
        conv = step.conv if self.identity else self.conv if step.elementwise else None  # a Scale keeps the geometry
        if step.param is None:  # a fixed node: its values join the factors
            result = Paths(
                (step.shape[0], self.shape[1]), rows, cols, self.scale[mine] * step.values[theirs],
                None if self.index is None else self.index[mine], self.param, self.node, self.free, conv, structured,
            )  # fmt: skip
        else:  # the chain's first weighted node: the paths read its weight
            result = Paths(
                (step.shape[0], self.shape[1]), rows, cols, self.scale[mine], step.index[theirs], step.param,
                step.node, False, conv, structured,
            )  # fmt: skip
        # paths that read a weight stay as they are (a shared edge may repeat a synapse, and sorting
        # millions of them costs more than it saves); fixed paths between the same pair are summed
        return result if result.index is not None else result.merged()

    def scaled_rows(self, factor: np.ndarray) -> Paths:
        """Row ``i`` times ``factor[i]`` (a target's gain), the structure kept."""
        return replace(self, scale=self.scale * factor[self.rows], identity=False)

    def select_rows(self, mask: np.ndarray) -> Paths:
        """The paths into the rows where ``mask`` holds (the map of the others is zero)."""
        if np.all(mask):
            return self
        keep = mask[self.rows]
        index = None if self.index is None else self.index[keep]
        return replace(
            self, rows=self.rows[keep], cols=self.cols[keep], scale=self.scale[keep], index=index, conv=None,
            identity=False,
        )  # fmt: skip

    def __add__(self, other: Paths) -> Paths:
        """Parallel maps: one tie when both read the same weight, else the weights multiplied out."""
        rows, cols = np.concatenate([self.rows, other.rows]), np.concatenate([self.cols, other.cols])
        structured = self.structured or other.structured
        if (self.param is not None and self.param is other.param) or not (self.trainable or other.trainable):
            index = None if self.index is None else np.concatenate([self.index, other.index])
            scale = np.concatenate([self.scale, other.scale])
            return Paths(self.shape, rows, cols, scale, index, self.param, self.node, structured=structured).merged()
        values = np.concatenate([self.weights(), other.weights()])
        return Paths(self.shape, rows, cols, values, free=True, structured=structured).merged()

    def merged(self) -> Paths:
        """Parallel paths that read the same weight (or, ``free``/fixed, connect the same pair) summed."""
        if self.rows.size == 0:
            return self
        sizes = (self.shape[0], self.shape[1]) + (() if self.index is None else (int(self.index.max()) + 1,))
        keys = (self.rows, self.cols) + (() if self.index is None else (self.index,))
        if np.prod(np.asarray(sizes, dtype=np.float64)) < 2.0**62:  # one int64 key per path
            unique, inverse = np.unique(np.ravel_multi_index(keys, sizes), return_inverse=True)
            columns = np.unravel_index(unique, sizes)
        else:
            unique_keys, inverse = np.unique(np.stack(keys), axis=1, return_inverse=True)
            columns = tuple(unique_keys)
        n = columns[0].size
        if n == self.rows.size:
            return self
        scale = np.bincount(inverse.reshape(-1), weights=self.scale, minlength=n)
        index = None if self.index is None else columns[2].astype(np.int64)
        return replace(
            self, rows=columns[0].astype(np.int64), cols=columns[1].astype(np.int64), scale=scale, index=index
        )


def _join(rows: np.ndarray, cols: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``(i, j)`` with ``rows[i] == cols[j]`` (values below ``n``), vectorised."""
    order = np.argsort(rows, kind="stable")
    counts = np.bincount(rows, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    per_j = counts[cols]
    theirs = np.repeat(np.arange(cols.size), per_j)
    offsets = np.arange(theirs.size) - np.repeat(np.cumsum(per_j) - per_j, per_j)
    mine = order[starts[cols[theirs]] + offsets]
    return mine, theirs


__all__ = ["NodeMap", "Paths"]
