"""Memory kept between calls for the whole-sequence arrays of the CPU backend.

A training step of a large layer writes several arrays of ``T·N·B`` values (the membranes and
spikes of the forward pass, λU of the backward pass): 660 MB for the N-MNIST CNN of
``benchmarks/bench_conv.py``.  Memory that large comes fresh from the operating system on every
call, and on a virtual machine that hands freed pages back to its host the first touch of each
page then costs far more than writing it: 290 MB measured 0.05 s to allocate and write right
after it was freed and 0.4–0.5 s a few seconds later.  The :class:`ArrayCache` of a plan keeps
the blocks of those arrays and hands them out again.

A block is handed out as an array whose buffer is a :class:`_Lease` of it.  Every NumPy view
of that array and every torch tensor made from it refers to the lease, directly or through
the array, so the lease lives as long as anything can reach the memory; when it dies, a
``weakref.finalize`` puts the block back.  Arrays that escape to the caller (V and S) are
therefore reused only once the caller and autograd have let go of them.
"""

from __future__ import annotations

import math
import threading
import weakref
from typing import Any

import numpy as np


class _Lease:
    """The buffer of an array handed out from a block (NumPy's array interface)."""

    __slots__ = ("__array_interface__", "__weakref__", "block")

    def __init__(self, block: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.block = block
        self.__array_interface__: dict[str, Any] = {
            "shape": shape,
            "typestr": dtype.str,
            "data": (block.ctypes.data, False),
            "version": 3,
        }


class ArrayCache:
    """Blocks of memory for arrays of any shape, handed out again for a request of the same size.

    The finalizers only append a freed block to :attr:`_returned` (no lock: they may run inside
    any call, :meth:`_take` included); :meth:`_take` moves those to the free blocks under its
    lock and keeps the ``keep`` most recently freed.
    """

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._returned: list[np.ndarray] = []
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    @property
    def free_bytes(self) -> int:
        """The bytes of the blocks that are free (freed ones not yet counted until the next request)."""
        return sum(block.size for block in self._free)

    def empty(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """An uninitialised C-contiguous array (a free block of its size, or a new one)."""
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        block = self._take(nbytes)
        if block is None:
            block = np.empty(nbytes, np.uint8)
        lease = _Lease(block, shape, dtype)
        weakref.finalize(lease, self._returned.append, block)
        return np.asarray(lease)

    def zeros(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """Zeros, every page written now in address order (a new block's pages are faulted in
        here, not by the scattered writes of a time loop)."""
        array = self.empty(shape, dtype)
        array.fill(0)
        return array

    def _take(self, nbytes: int) -> np.ndarray | None:
        with self._lock:
            while self._returned:
                self._free.append(self._returned.pop(0))
            found = next((i for i, block in enumerate(self._free) if block.size == nbytes), None)
            block = None if found is None else self._free.pop(found)
            del self._free[: max(0, len(self._free) - self.keep)]  # the oldest free blocks go
        return block
