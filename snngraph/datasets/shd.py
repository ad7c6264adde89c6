"""The Spiking Heidelberg Digits (SHD): spoken digits 0–9 in English and German, 20 classes,
as spikes of 700 cochlear channels (Cramer, Stradmann, Schemmel & Zenke, IEEE TNNLS 2022).

The HDF5 files (``shd_train.h5``, ``shd_test.h5``) hold ``spikes/times`` (seconds, one
variable-length array per sample), ``spikes/units`` (channel of each spike) and ``labels``.
:func:`shd` reads one file into memory and bins each sample on access to ``[T, 700]`` spike
counts (:func:`~snngraph.datasets.events.bin_events`).  Needs ``h5py``
(``pip install snngraph[examples]``).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from snngraph._optional import require
from snngraph.datasets.events import bin_events

SHD_CHANNELS = 700
SHD_CLASSES = 20
SHD_URL = "https://zenkelab.org/datasets/"
SHD_KEYS = ("spikes/times", "spikes/units", "labels")


class SpikeEvents(Dataset):
    """Samples stored as spike events, binned on access: ``(x [T, C] float32, label int64)``.

    ``times[i]`` (seconds) and ``units[i]`` are the spikes of sample ``i``; bins are
    ``duration / steps`` seconds wide and spikes at or after ``duration`` are dropped.
    """

    def __init__(
        self,
        times: list[np.ndarray],
        units: list[np.ndarray],
        labels: np.ndarray,
        *,
        steps: int,
        duration: float,
        channels: int,
    ) -> None:
        if not len(times) == len(units) == len(labels):
            raise ValueError(f"times, units and labels differ in length: {len(times)}, {len(units)}, {len(labels)}")
        if steps < 1 or duration <= 0:
            raise ValueError(f"need steps >= 1 and duration > 0 (seconds), got steps={steps}, duration={duration}")
        top = max((int(u.max()) for u in units if u.size), default=-1)
        if top >= channels:
            raise ValueError(f"a spike has unit {top} but there are {channels} channels; raise channels")
        self.times, self.units = times, units
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.steps, self.duration, self.channels = steps, duration, channels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = bin_events(self.times[index], self.units[index], self.steps, self.duration, self.channels)
        return x, self.labels[index]


def _import_h5py() -> Any:
    return require("h5py", "reading SHD files", "examples")


def shd(path: str | PathLike, steps: int = 100, duration: float = 1.4) -> SpikeEvents:
    """Load one SHD file (``shd_train.h5`` or ``shd_test.h5``) as a :class:`SpikeEvents` dataset.

    Each sample becomes ``[steps, 700]`` spike counts over the first ``duration`` seconds
    (1.4 s holds every SHD sample).  Labels are ints in ``[0, 20)``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no SHD file at {str(path)!r}. Download shd_train.h5.gz and shd_test.h5.gz from {SHD_URL} "
            "(the Spiking Heidelberg Digits, Zenke lab), unpack them with gunzip and pass the .h5 path"
        )
    h5py = _import_h5py()
    with h5py.File(path, "r") as file:
        missing = [key for key in SHD_KEYS if key not in file]
        if missing:
            raise ValueError(f"{str(path)!r} is not an SHD file: it lacks {missing}; expected keys {list(SHD_KEYS)}")
        times = list(file["spikes/times"][:])
        units = list(file["spikes/units"][:])
        labels = file["labels"][:]
    return SpikeEvents(times, units, labels, steps=steps, duration=duration, channels=SHD_CHANNELS)
