"""The top-level kernels/ folder ships inside the package as snngraph.kernels, and a regular
install carries every module of the source tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import snngraph.kernels

ROOT = Path(__file__).resolve().parent.parent
KERNEL_MODULES = sorted(p.stem for p in (ROOT / "kernels").glob("*.py") if p.stem != "__init__")


def test_editable_install_maps_kernels_to_the_source_folder() -> None:
    assert Path(snngraph.kernels.__file__).resolve().parent == ROOT / "kernels"


def test_regular_install_ships_every_module(tmp_path: Path) -> None:
    # a copy without build outputs: pip builds in the source tree, and a build/ folder left by an
    # earlier build would put modules in the wheel that the package list leaves out
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__"))
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
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    installed = sorted(p.stem for p in (target / "snngraph" / "kernels").glob("*.py") if p.stem != "__init__")
    assert installed == KERNEL_MODULES
    modules = [p.relative_to(ROOT) for p in (ROOT / "snngraph").rglob("*.py")]
    missing = [str(module) for module in modules if not (target / module).exists()]
    assert not missing, f"modules left out of a regular install (pyproject's package list): {missing}"
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
