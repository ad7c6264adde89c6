"""The Triton backend without a GPU.

* ``test_interpreter_cases`` runs ``tests/triton_interpreter_cases.py`` (forward and every
  gradient against the reference), ``tests/triton_states_cases.py`` (the same for layers of
  generic neurons, K = 1 … 4) and ``tests/triton_kernel_cases.py`` (each kernel launched
  alone against its formula) in a separate process with ``TRITON_INTERPRET=1``, so the flag
  never reaches the other tests;
* ``test_kernels_compile_for_hopper`` compiles every kernel for sm_90 (float32 and float64)
  with the ptxas that ships with Triton, the time-loop kernels both plain and generic
  (K = 1 … 4), so a kernel that the interpreter accepts but the compiler rejects fails here,
  not on the first GPU;
* the host-side pieces that need no kernel.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from snngraph.backends import TritonOptions
from snngraph.backends.base import round_states
from snngraph.backends.triton import TritonBackend
from snngraph.kinds import NeuronModel, population_columns

TESTS = Path(__file__).resolve().parent
needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")


@needs_triton
def test_interpreter_cases() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(TESTS / "triton_interpreter_cases.py"),
        str(TESTS / "triton_states_cases.py"),
        str(TESTS / "triton_kernel_cases.py"),
    ]
    result = subprocess.run(command, cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"interpreter cases failed:\n{result.stdout}\n{result.stderr}"


def _hopper_signature(fn, dtype: str, constexprs: dict) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Argument types of a kernel by the names' conventions (indices int32, spikes uint8)."""
    byte_args = {"hist_ptr", "pre_ptr"}  # the spike history (gathers read it as ``src``: float here)
    index_args = {"rows_ptr", "cols_ptr", "ptr_ptr", "index_ptr", "shift_ptr", "chunk_row_ptr", "chunk_start_ptr"}

    def kind(name: str) -> str:
        if name in constexprs:
            return "constexpr"
        if name in byte_args:
            return "*u8"
        if name in index_args:
            return "*i32"
        if name == "order_ptr":
            return "*i64"
        return f"*{dtype}" if name.endswith("_ptr") else "i32"

    return {name: kind(name) for name in fn.arg_names}


@needs_triton
@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="kernels are interpreted in this process")
@pytest.mark.parametrize("dtype", ["fp32", "fp64"])
def test_kernels_compile_for_hopper(dtype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    triton = pytest.importorskip("triton")
    compiler = pytest.importorskip("triton.compiler")
    backends = pytest.importorskip("triton.backends.compiler")
    from snngraph.kernels.gather import gather_chunks_kernel, gather_kernel
    from snngraph.kernels.lif_backward import lif_backward_kernel
    from snngraph.kernels.lif_forward import lif_forward_kernel
    from snngraph.kernels.synapse_grad import synapse_grad_kernel

    monkeypatch.setenv("TRITON_DEFAULT_FP_FUSION", "1")  # the default; Triton ≥ 3.9 warns when unset
    blocks = {"BLOCK_N": 32, "BLOCK_B": 8, "BLOCK_J": 4}
    loops = [
        {"HAS_REC": True, "RESIDENT": True},
        {"HAS_REC": True, "RESIDENT": False},
        {"HAS_REC": False, "RESIDENT": False},
    ]
    plain = {"GENERIC": False, "N_STATES": 1}
    variants = [
        (gather_kernel, {"ACCUMULATE": True, "BLOCK_R": 32, "BLOCK_B": 8, "BLOCK_J": 8}),
        (gather_chunks_kernel, {"CHUNK": 128, "BLOCK_B": 8, "BLOCK_J": 64}),
        (synapse_grad_kernel, {"BLOCK_K": 128, "BLOCK_B": 8}),
        *((lif_forward_kernel, {**loop, **blocks, **plain, "ONSET": i == 1}) for i, loop in enumerate(loops)),
        *(
            (
                lif_backward_kernel,
                {
                    "SURROGATE": code,
                    "DETACH_RESET": code % 2 == 1,
                    **loops[code % 3],
                    **blocks,
                    "ADD_REC": code == 2,
                    **plain,
                    "STEP_FACTORS": False,
                    "ONSET": code == 1,
                },
            )
            for code in range(4)
        ),
        *(
            (lif_forward_kernel, {**loops[k % 3], **blocks, "GENERIC": True, "N_STATES": k, "ONSET": k == 2})
            for k in range(1, 5)
        ),
        *(
            (
                lif_backward_kernel,
                {
                    "SURROGATE": k - 1,
                    "DETACH_RESET": k % 2 == 0,
                    **loops[k % 3],
                    **blocks,
                    "ADD_REC": k == 2,
                    "GENERIC": True,
                    "N_STATES": k,
                    "STEP_FACTORS": k != 3,
                    "ONSET": k == 3,
                },
            )
            for k in range(1, 5)
        ),
    ]
    target = backends.GPUTarget("cuda", 90, 32)
    for fn, constexprs in variants:
        source = compiler.ASTSource(fn=fn, signature=_hopper_signature(fn, dtype, constexprs), constexprs=constexprs)
        try:
            compiled = triton.compile(source, target=target)
        except RuntimeError as error:  # no ptxas in this Triton install
            if "ptxas" in str(error).lower():
                pytest.skip(f"cannot assemble for sm_90 here: {error}")
            raise
        assert "cubin" in compiled.asm, fn.__name__


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_round_states_keeps_spikes(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    theta = torch.rand(50, generator=generator, dtype=torch.float64) + 0.5
    near = theta * (1 + torch.randn(200, 4, 50, generator=generator, dtype=torch.float64) * 1e-3)
    u = torch.cat([near, torch.randn(20, 4, 50, generator=generator, dtype=torch.float64)])
    low = round_states(u[:, None], lif_table(theta), dtype)[:, 0]
    assert low.dtype == dtype
    assert torch.equal(low.double() > theta, u > theta)
    step = torch.finfo(dtype).eps * u.abs().clamp(min=torch.finfo(dtype).tiny)
    assert torch.all((low.double() - u).abs() <= 2 * step)


def test_unavailable_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = TritonBackend()
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    if importlib.util.find_spec("triton") is not None:
        assert backend.unavailable_reason(torch.device("cuda")) is None
        assert "TRITON_INTERPRET=1" in backend.unavailable_reason(torch.device("cpu"))
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        assert backend.unavailable_reason(torch.device("cpu")) is None
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    assert "pip install triton" in backend.unavailable_reason(torch.device("cuda"))


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="time_loop"):
        TritonOptions(time_loop="sometimes")
    with pytest.raises(ValueError, match="dense_input"):
        TritonOptions(dense_input=-1.0)
    with pytest.raises(ValueError, match="persistent_max_neurons"):
        TritonOptions(persistent_max_neurons=-1)
    assert TritonOptions(dense_input=math.inf).dense_input == math.inf


def lif_table(theta: torch.Tensor) -> torch.Tensor:
    """The neuron table of LIF neurons with thresholds ``theta``."""
    params = {"alpha": torch.full_like(theta, 0.9), "theta": theta, "bias": 0 * theta, "v_leak": 0 * theta}
    return population_columns(NeuronModel.named("lif", "subtract"), params, 1, None)[0]
