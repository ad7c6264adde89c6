"""The tensors that a loop of kernel launches reads and writes, and its CUDA graph."""

from __future__ import annotations

from collections.abc import Callable

import torch


class LaunchBuffers:
    """The tensors that a loop of launches reads and writes.

    Eager: tensors made for this call, and the given inputs themselves.  Graphed (CUDA, per-step
    loop): static tensors kept in the plan's ``graphs`` while the key (shapes, options) stays the
    same, inputs copied in, and the launches recorded once as a CUDA graph, then replayed.
    """

    def __init__(self, key: tuple, graphed: bool) -> None:
        self.key, self.graphed = key, graphed
        self.tensors: dict[str, torch.Tensor] = {}
        self.graph: torch.cuda.CUDAGraph | None = None

    @classmethod
    def get(cls, graphs: dict[str, LaunchBuffers], direction: str, key: tuple, graphed: bool) -> LaunchBuffers:
        """The buffers of ``direction``: new (eager), or those in ``graphs`` while ``key`` matches."""
        if not graphed:
            return cls(key, graphed)
        cached = graphs.get(direction)
        if cached is None or cached.key != key:
            cached = graphs[direction] = cls(key, graphed)
        return cached

    def tensor(self, name: str, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """A work tensor: made now (eager) or once per key (graphed)."""
        if not self.graphed or name not in self.tensors:
            self.tensors[name] = make()
        return self.tensors[name]

    def bind(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """``value`` as the launches read it: itself (eager) or copied into a static tensor."""
        if not self.graphed:
            return value.contiguous()
        return self.tensor(name, lambda: torch.empty_like(value, memory_format=torch.contiguous_format)).copy_(value)

    def run(self, launch: Callable[[], None]) -> None:
        if self.graph is not None:
            self.graph.replay()
            return
        launch()  # eager (the graphed case's first call also compiles the kernels here)
        if self.graphed:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                launch()
