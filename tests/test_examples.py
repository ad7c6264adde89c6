"""Every example runs end to end with tiny settings (a subprocess each, as a user runs it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_tasks import write_shd_file

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TINY_TRAINING = ["--epochs", "1", "--samples", "4", "--hidden", "6", "--no-progress"]


def run_example(script: str, *args: str) -> str:
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "error"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_quickstart_gradient_equals_the_closed_form() -> None:
    out = run_example("quickstart.py", "--steps", "12")
    difference = float(out.rsplit("difference:", 1)[1])
    assert difference < 1e-12


def test_feedforward_to_recurrent_prints_lags_and_equal_outputs() -> None:
    out = run_example("feedforward_to_recurrent.py", "--steps", "8", "--batch", "2")
    assert "lags: {'h1': 0, 'h2': 1, 'out': 2}" in out
    gaps = re.findall(r"max \|ΔS\| = (\S+), max \|ΔU\| = (\S+)", out)
    assert len(gaps) == 3
    for spike_gap, membrane_gap in gaps:
        assert float(spike_gap) == 0
        assert float(membrane_gap) < 1e-12


@pytest.mark.parametrize(
    ("script", "extra", "pictures"),
    [
        ("train_randman.py", ["--classes", "2", "--channels", "5", "--steps", "10"], ["randman_training.png"]),
        ("train_randman.py", ["--classes", "2", "--steps", "10", "--neuron", "adlif"], ["randman_training.png"]),
        (
            "train_delays.py",
            ["--max-delay", "4"],
            ["delays_none_training.png", *(f"delays_{name}.png" for name in ("lags", "histogram", "change"))],
        ),
        (
            "train_delays.py",
            ["--recurrent", "--max-delay", "4", "--neuron", "cuba"],
            ["delays_recurrent_one_training.png", "delays_recurrent_histogram.png", "delays_recurrent_change.png"],
        ),
        ("train_ddp.py", ["--neuron", "alif"], ["ddp_training.png"]),
        (
            "train_memory.py",
            ["--delay", "5"],
            [f"memory_{kind}_spikes.png" for kind in ("lif", "cuba", "alif", "adlif")],
        ),
    ],
    ids=["randman", "randman-adlif", "delays", "delays-recurrent-cuba", "ddp-alif", "memory"],
)
def test_training_examples(tmp_path: Path, script: str, extra: list[str], pictures: list[str]) -> None:
    out = run_example(script, *TINY_TRAINING, "--out", str(tmp_path), *extra)
    assert "test accuracy" in out
    for picture in pictures:
        assert (tmp_path / picture).stat().st_size > 0


def test_train_randman_learns(tmp_path: Path) -> None:
    """Long enough to mean something (3 classes, 6 epochs, about 10 s): well above chance."""
    task = ["--classes", "3", "--channels", "10", "--steps", "20", "--samples", "30"]
    training = ["--hidden", "24", "--epochs", "6", "--batch-size", "16", "--no-progress"]
    out = run_example("train_randman.py", *task, *training, "--out", str(tmp_path))
    accuracy = float(re.search(r"test accuracy (\S+) \(3 classes, chance 0.333\)", out).group(1))
    assert accuracy >= 0.6, out


def test_learned_delays_find_the_class_intervals(tmp_path: Path) -> None:
    """The interval task with 100 samples per class and 30 epochs (about 10 s): the readout that
    learns its delays with the Gaussian kernel is far better than the one without delays."""
    task = ["--samples", "100", "--epochs", "30", "--variants", "none", "gaussian", "--no-progress"]
    out = run_example("train_delays.py", *task, "--out", str(tmp_path))
    accuracy = {
        name: float(re.search(rf"^{name}\s+(\S+)\s+\d+$", out, re.MULTILINE).group(1))
        for name in ("no delays", "learned, Gaussian kernel")
    }
    assert accuracy["learned, Gaussian kernel"] >= 0.8, out
    assert accuracy["learned, Gaussian kernel"] >= accuracy["no delays"] + 0.3, out
    assert re.search(r"^chance\s+0.200$", out, re.MULTILINE), out
    assert (tmp_path / "delays_lags.png").stat().st_size > 0


def test_adaptive_neurons_hold_a_cue_that_lif_neurons_forget(tmp_path: Path) -> None:
    """Store and recall without recurrent synapses (about 8 s): only the neurons' own state can
    carry the cue over the 40-step delay."""
    task = ["--neurons", "alif", "lif", "--no-recurrent", "--delay", "40", "--samples", "64"]
    training = ["--hidden", "32", "--epochs", "10", "--no-progress"]
    out = run_example("train_memory.py", *task, *training, "--out", str(tmp_path))
    accuracy = {
        kind: float(re.search(rf"test accuracy {kind}\s*: (\S+) \(chance 0.500\)", out).group(1))
        for kind in ("alif", "lif")
    }
    assert accuracy["alif"] >= 0.7, out
    assert accuracy["lif"] <= 0.65, out


def test_train_shd_on_written_files(tmp_path: Path) -> None:
    for split in ("train", "test"):
        write_shd_file(tmp_path / f"shd_{split}.h5", 6, seed=len(split))
    args = ["--data", str(tmp_path), "--steps", "10", "--tbptt", "4", "--out", str(tmp_path)]
    out = run_example("train_shd.py", "--epochs", "1", "--hidden", "6", "--neuron", "cuba", "--no-progress", *args)
    assert "SHD test accuracy" in out
    assert (tmp_path / "shd_spikes.png").stat().st_size > 0


@pytest.mark.parametrize("edges", ["input", "recurrent"])
def test_train_shd_learns_delays_on_written_files(tmp_path: Path, edges: str) -> None:
    """``--learn-delays`` (Gaussian kernel, its width annealed over two epochs) trains the SHD
    network's input (and recurrent) delays: the delay pictures show each learning edge."""
    for split in ("train", "test"):
        write_shd_file(tmp_path / f"shd_{split}.h5", 6, seed=len(split))
    delays = ["--learn-delays", edges, "--delay-kernel", "gaussian", "--max-delay", "3", "--sigma", "1.0"]
    args = ["--data", str(tmp_path), "--steps", "10", "--tbptt", "4", "--out", str(tmp_path), *delays]
    out = run_example("train_shd.py", "--epochs", "2", "--hidden", "6", "--no-progress", *args)
    assert "SHD test accuracy" in out
    learning = re.findall(r"edge '(\w+)' -> '(\w+)' .*learns delays in (\[\d, 3\]) \(gaussian, (\d) taps\)", out)
    expected = [("input", "hidden", "[0, 3]", "4")] + [("hidden", "hidden", "[1, 3]", "3")] * (edges == "recurrent")
    assert learning == expected, out
    for picture in ("shd_spikes.png", "shd_delays_histogram.png", "shd_delays_change.png"):
        assert (tmp_path / picture).stat().st_size > 0


def test_train_digits_cnn_quick(tmp_path: Path) -> None:
    """The spiking CNN on 64 digits for one epoch: one layer of 2·64 + 2·16 + 4·16 + 4·4 + 10
    neurons, convolutions and poolings among its edges, a test accuracy, the pictures."""
    out = run_example("train_digits_cnn.py", "--quick", "--no-progress", "--out", str(tmp_path))
    assert "CompiledNetwork: 250 neurons, 64 inputs" in out
    assert "edge 'input' -> 'c1' (input): conv 1x8x8 -> 2x8x8, kernel 3x3" in out
    assert "edge 'c2' -> 'p2' (recurrent): pool 4x4x4 -> 4x2x2, sum kernel 2x2" in out
    accuracy = float(re.search(r"test accuracy (\S+) \(64 held-out images, chance 0.100\)", out).group(1))
    assert 0 <= accuracy <= 1
    for picture in ("training", "graph", "spikes", "readout"):
        assert (tmp_path / f"digits_cnn_{picture}.png").stat().st_size > 0
