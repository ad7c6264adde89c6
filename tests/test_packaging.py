"""The top-level kernels/ folder ships inside the package as snngraph.kernels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import snngraph.kernels

ROOT = Path(__file__).resolve().parent.parent
KERNEL_MODULES = sorted(p.stem for p in (ROOT / "kernels").glob("*.py") if p.stem != "__init__")


def test_editable_install_maps_kernels_to_the_source_folder() -> None:
    assert Path(snngraph.kernels.__file__).resolve().parent == ROOT / "kernels"


def test_regular_install_ships_every_kernel_module(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    installed = sorted(p.stem for p in (target / "snngraph" / "kernels").glob("*.py") if p.stem != "__init__")
    assert installed == KERNEL_MODULES
    code = "import snngraph.kernels, snngraph.backends.triton; print(snngraph.kernels.__file__)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(result.stdout.strip()).resolve().is_relative_to(target.resolve())
