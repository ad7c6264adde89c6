"""Options of the CPU backend: the measured thresholds that choose between its code paths.

Every path computes the same numbers (the tests force each one); the thresholds only decide
which is faster.  The defaults were measured on a 2-core Xeon with torch 2.13 (CPU build) and
SciPy 1.17, one torch thread; ``docs/cpu_backend.md`` has the measurements.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class CpuOptions:
    """``SNN(net, backend=CpuOptions(...))``.

    ``event_fraction`` (0.015): a forward step with fewer than ``event_fraction·N·B`` spikes walks
    the outgoing synapses of its spike events; a busier one multiplies ``S[t]`` by the sparse
    matrix of all synapses (doubled for float64, whose products cost twice).  Measured: an
    (event, synapse) pair costs about 8 ns through ``np.add.at``, a multiply-add of torch's sparse
    CSR × dense product about 0.12 ns (``B`` per synapse); equal at firing rates of 1–2%.

    ``sampled_rate`` (0.04): above this ratio of (spike event, synapse) pairs to ``nnz·T·B``, the
    weight gradient of the sparse recurrent synapses comes from sampled products instead of the
    per-event gather (doubled for float64).  Measured: gather 7–13 ns per pair, sampled products
    0.31–0.38 ns per multiply-add (float32); equal at ratios of 0.03–0.05.

    ``dense_density`` (0.1) and ``min_dense_area`` (4096): the synapses of one delay whose
    bounding box ``post × pre`` is at least this full and this large run as a dense BLAS block.
    Measured: equal to the sparse product at 5% density, dense 1.6–2.4× faster at 10%; smaller
    blocks cost more in per-call overhead (about 10 µs) than they save.

    ``spike_product_fraction`` (0.08) and ``spike_product_min_area`` (2¹⁸): the weight gradient of
    a dense block multiplies a time chunk's spikes as a sparse matrix when fewer than this fraction
    are 1 and the block has at least this many cells.  Measured 1.3–4× faster below 5% spikes for
    1024² and 2048² blocks, never faster for 256².

    ``conv_min_synapses`` (2¹⁷): the synapses of one delay of a convolution or pooling edge run
    as ``torch`` convolutions (``snngraph/backends/cpu/convolution.py``) when they are at least
    this many, else with the other synapses (0: always, ``math.inf``: never).  Measured on whole
    training steps: an N-MNIST-sized CNN (edges of 0.7 and 1.5 M synapses, B = 32) is 1.3–1.4×
    faster with its convolutions as convolutions, an 8×8-digits CNN (edges of at most 51,200
    synapses, B = 64) 1.7× slower (the per-call cost of small convolutions).

    ``chunks`` (16) and ``workspace`` (2¹⁶): the backward pass runs in at most ``chunks`` time
    chunks, none smaller than ``workspace`` values per temporary array; the about 8 temporaries
    of a chunk then take about half the memory of λU.
    """

    event_fraction: float = 0.015
    sampled_rate: float = 0.04
    dense_density: float = 0.1
    min_dense_area: int = 4096
    spike_product_fraction: float = 0.08
    spike_product_min_area: int = 1 << 18
    chunks: int = 16
    workspace: int = 1 << 16
    conv_min_synapses: float = 1 << 17

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"CpuOptions.{field.name} must be a number >= 0, got {value!r}")
        if self.chunks < 1:
            raise ValueError(f"CpuOptions.chunks must be >= 1, got {self.chunks}")
