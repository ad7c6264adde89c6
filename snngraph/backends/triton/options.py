"""Options of the Triton backend."""

from __future__ import annotations

from dataclasses import dataclass

TIME_LOOPS = ("auto", "persistent", "per_step")


@dataclass(frozen=True)
class TritonOptions:
    """``SNN(net, backend=TritonOptions(...))``.

    ``time_loop``: ``"persistent"`` (one launch that loops over time, every program owning all
    neurons of one batch row), ``"per_step"`` (launches per step, replayed as a CUDA graph) or
    ``"auto"``: persistent when there are no recurrent synapses or at most
    ``persistent_max_neurons`` (1024) neurons.

    ``dense_input`` (0.05): an input delay with at least this fraction of ``N × C`` synapses is a
    dense matrix product (cuBLAS), the others gather kernels (``0``: all dense, ``math.inf``: all
    gathered).

    ``cuda_graphs`` (True): on CUDA, record the per-step launches once as a CUDA graph and replay
    it, while ``B·N`` is at most ``graph_max_step_elements`` (2²⁰; above, a step outlasts its
    launch).

    ``deterministic`` (False): every sum in a fixed order, so that two runs give the same bits.
    By default the per-step gather adds the chunks of a long row atomically and the weight
    gradient adds its blocks of time steps atomically, in the order they land; with
    ``deterministic=True`` the per-step gather sums each row in one program and the weight
    gradient runs one program per chunk of synapses over all steps (less parallel in time).
    """

    time_loop: str = "auto"
    dense_input: float = 0.05
    cuda_graphs: bool = True
    deterministic: bool = False
    persistent_max_neurons: int = 1024
    graph_max_step_elements: int = 1 << 20

    def __post_init__(self) -> None:
        if self.time_loop not in TIME_LOOPS:
            raise ValueError(f"unknown time_loop {self.time_loop!r}; choose one of {TIME_LOOPS}")
        if not self.dense_input >= 0:
            raise ValueError(f"dense_input must be a fraction >= 0 (math.inf: never dense), got {self.dense_input!r}")
        for name in ("persistent_max_neurons", "graph_max_step_elements"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"TritonOptions.{name} must be an int >= 0, got {value!r}")
