"""Datasets for spike-timing tasks, as ``torch.utils.data`` datasets of ``(x [T, C], label)``.

* :func:`randman` — the random-manifold task of Zenke & Vogels (2021), generated in memory;
* :func:`spike_intervals` — classes defined by intervals between input spikes (needs delays);
* :func:`store_recall` — a cue to hold across a silent delay (needs adaptation or another memory);
* :func:`shd` — the Spiking Heidelberg Digits, read from the HDF5 files you downloaded;
* :func:`digits` — scikit-learn's 8×8 handwritten digits, latency-coded images ``[T, 1, 8, 8]``.

A ``DataLoader`` stacks samples to ``[B, T, C]``: give them to ``SNN(net, batch_first=True)`` as
they are, or transpose them to the default time-major ``[T, B, C]`` (``x.transpose(0, 1)``);
:func:`snngraph.train.fit` does whichever the model needs.
"""

from snngraph.datasets.digits import DIGITS_MAX, DIGITS_SHAPE, digits, held_out_split, latency_code
from snngraph.datasets.events import bin_events, spike_raster
from snngraph.datasets.intervals import spike_intervals
from snngraph.datasets.memory import store_recall
from snngraph.datasets.randman import RandomManifold, randman
from snngraph.datasets.shd import SHD_CHANNELS, SHD_CLASSES, SpikeEvents, shd

__all__ = [
    "DIGITS_MAX",
    "DIGITS_SHAPE",
    "SHD_CHANNELS",
    "SHD_CLASSES",
    "RandomManifold",
    "SpikeEvents",
    "bin_events",
    "digits",
    "held_out_split",
    "latency_code",
    "randman",
    "shd",
    "spike_intervals",
    "spike_raster",
    "store_recall",
]
