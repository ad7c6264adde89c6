"""The whole GPU check in one command: the GPU tests, then the GPU benchmark.

Usage: ``python benchmarks/run_gpu.py OUTDIR`` (from anywhere; fetches nothing).

Writes into ``OUTDIR``: ``environment.txt`` (versions, ``nvidia-smi``), ``pytest_gpu.txt`` and
``pytest_gpu.xml`` (``tests/test_triton_gpu.py``), ``bench_gpu.txt`` and ``bench_gpu.json``
(``benchmarks/bench_gpu.py``), and ``summary.json`` (exit codes, durations).  Each stage has
a time limit, so the whole check ends within about eight minutes and always leaves its files.
Exit status: 0 when the tests pass and the benchmark's contenders agree with snngraph.

``snngraph.kernels`` is the top-level ``kernels/`` folder, mapped into the package by the
install.  When ``snngraph`` is not installed (a bare machine), the stages run in a temporary
mirror of the repository whose ``snngraph/kernels`` is a link to ``kernels/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMITS_S = {"tests": 200, "bench": 260}


def _importable(cwd: Path) -> bool:
    probe = [sys.executable, "-c", "import snngraph.kernels.lif_forward"]
    return subprocess.run(probe, cwd=cwd, capture_output=True).returncode == 0


def _mirror(into: Path) -> Path:
    """``into/repo``: links to every top-level entry, with ``snngraph/kernels`` → ``kernels``."""
    repo = into / "repo"
    (repo / "snngraph").mkdir(parents=True)
    for entry in ROOT.iterdir():
        if entry.name not in ("snngraph", ".git"):
            (repo / entry.name).symlink_to(entry)
    for entry in (ROOT / "snngraph").iterdir():
        (repo / "snngraph" / entry.name).symlink_to(entry)
    (repo / "snngraph" / "kernels").symlink_to(ROOT / "kernels")
    return repo


def _stage(name: str, command: list[str], cwd: Path, log: Path) -> dict[str, object]:
    """Run ``command`` with its output in ``log``; exit code 124 when it outlasts its limit."""
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(cwd), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("TRITON_INTERPRET", None)
    with log.open("w") as out:
        try:
            code = subprocess.run(
                command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=LIMITS_S[name]
            ).returncode
        except subprocess.TimeoutExpired:
            out.write(f"\n{name}: stopped after {LIMITS_S[name]} s\n")
            code = 124
    seconds = time.perf_counter() - start
    print(f"{name}: exit {code} after {seconds:.0f} s ({log.name})", flush=True)
    return {"command": " ".join(command), "exit": code, "seconds": round(seconds, 1), "log": log.name}


def _environment(out: Path) -> bool:
    """Write the versions and ``nvidia-smi`` into ``environment.txt``; whether torch sees CUDA."""
    lines = [f"python {sys.version}"]
    for module in ("torch", "triton"):
        probe = subprocess.run(
            [sys.executable, "-c", f"import {module}; print({module}.__version__)"], capture_output=True, text=True
        )
        lines.append(f"{module} {probe.stdout.strip() or probe.stderr.strip()}")
    cuda = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.version.cuda, torch.cuda.is_available())"],
        capture_output=True,
        text=True,
    )
    lines.append(f"torch cuda, available: {cuda.stdout.strip()}")
    try:
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        smi = f"nvidia-smi: {error}"
    (out / "environment.txt").write_text("\n".join([*lines, "", smi]))
    return cuda.stdout.strip().endswith("True")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not _environment(out):
        sys.exit(f"no CUDA device visible to torch: see {out / 'environment.txt'}")
    with tempfile.TemporaryDirectory() as scratch:
        cwd = ROOT if _importable(ROOT) else _mirror(Path(scratch))
        tests = [
            sys.executable,
            "-m",
            "pytest",
            "tests/test_triton_gpu.py",
            "-m",
            "gpu",
            "-v",
            "-rA",
            "-p",
            "no:cacheprovider",
        ]
        bench = [sys.executable, "benchmarks/bench_gpu.py", "--out", str(out / "bench_gpu.json")]
        summary = {
            "tests": _stage("tests", [*tests, f"--junitxml={out / 'pytest_gpu.xml'}"], cwd, out / "pytest_gpu.txt"),
            "bench": _stage("bench", bench, cwd, out / "bench_gpu.txt"),
            "ran_in": "repository" if cwd == ROOT else "mirror with snngraph/kernels -> kernels",
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    sys.exit(0 if all(stage["exit"] == 0 for stage in (summary["tests"], summary["bench"])) else 1)


if __name__ == "__main__":
    main()
