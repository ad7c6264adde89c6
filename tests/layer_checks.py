"""The oracle check every fused backend passes: same numbers as the reference backend.

:func:`assert_matches_reference` runs one network on a backend and on ``backend="reference"``
with the same parameters, a random input and incoming state, and the same random upstream
gradients on every output (spikes, membranes, final state), then compares spikes (equal),
membranes, and the gradients of every weight, alpha, theta, the input and the incoming state,
element by element (:func:`assert_close_to_reference`), so one wrong synapse gradient fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from snngraph import SNN, CompiledNetwork, SNNState
from snngraph.surrogates import Surrogate

TOLERANCES: dict[torch.dtype, dict[str, float]] = {
    torch.float64: {"rtol": 1e-9, "atol": 1e-12},
    # float32 gradients are sums over steps, batch and synapses of terms about as large as the
    # tensor's largest entry; an entry where they cancel (2.3 from terms near 160, say) keeps
    # their rounding, about 1e-6 of that scale, which no rtol on the entry itself covers.
    torch.float32: {"rtol": 1e-4, "atol": 1e-5},
}
"""Elementwise tolerances of a backend against the reference (:func:`assert_close_scaled`).
The largest ``atol`` that the tests here need on top of the ``rtol`` is about 1e-15 of the
scale in float64 and 5e-7 in float32."""


def assert_close_scaled(got: torch.Tensor, want: torch.Tensor, *, rtol: float, atol: float, what: str) -> None:
    """``|got − want| ≤ atol·scale + rtol·|want|`` element by element, where ``scale`` is the
    largest ``|want|`` of the tensor (1 for a zero tensor), and equal dtypes and shapes; a failure
    names ``what`` above torch's report of the worst entries."""
    scale = want.abs().max().item() if want.numel() else 0.0
    torch.testing.assert_close(
        got,
        want,
        rtol=rtol,
        atol=atol * (scale or 1.0),
        msg=lambda report: f"{what} (largest |expected| {scale:.3g}):\n{report}",
    )


def assert_close_to_reference(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    """A backend's ``got`` against the reference's ``want``, within :data:`TOLERANCES` of ``dtype``."""
    assert_close_scaled(got, want, **TOLERANCES[dtype], what=what)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """‖got − want‖ / max(‖want‖, tiny): relative RMS error, 0 for two zero tensors (for results
    that are close only as a whole, such as gradients from membranes saved in low precision)."""
    scale = want.double().norm().item()
    diff = (got.double() - want.double()).norm().item()
    return diff / max(scale, 1e-30) if scale > 0 else diff


@dataclass(frozen=True)
class RunResult:
    spikes: torch.Tensor
    membranes: torch.Tensor
    grads: dict[str, torch.Tensor]


def random_state(model: SNN, batch: int, generator: torch.Generator) -> SNNState:
    """A state as a previous chunk would leave it: random states, some spikes, past input."""
    zero = model.initial_state(batch)
    spiking = torch.as_tensor(model.net.spiking, dtype=zero.u.dtype)
    return SNNState(
        v=torch.randn(zero.v.shape, generator=generator, dtype=zero.u.dtype) * 0.5,
        spikes=(torch.rand(zero.spikes.shape, generator=generator) < 0.3).to(zero.u.dtype) * spiking,
        inputs=(torch.rand(zero.inputs.shape, generator=generator) < 0.4).to(zero.u.dtype),
    )


LOSS_OUTPUTS = ("all", "spikes", "membranes")


def parameter_grads(model: SNN) -> dict[str, torch.Tensor]:
    """The gradients of the model's parameters on the CPU: each neuron parameter by name, and the
    edges of each target that train as one flat tensor in edge order (``"weights (input)"``,
    ``"weights (recurrent)"``), so that the tolerance scales with the largest weight gradient of
    the target, as the rounding of the backends' sums over its synapses does."""
    grads = {name: p.grad.detach().cpu() for name, p in model.named_parameters() if not name.startswith("weights.")}
    for target in ("input", "recurrent"):
        edges = [model.weight_grad(e.pre, e.post) for e in model.net.edges_of(target)]
        flat = [grad.detach().cpu().reshape(-1) for grad in edges if grad is not None]
        grads[f"weights ({target})"] = torch.cat(flat) if flat else torch.zeros(0)
    return grads


def run_with_grads(
    model: SNN,
    x: torch.Tensor,
    state: SNNState,
    seed: int,
    device: torch.device | str = "cpu",
    loss_on: str = "all",
) -> RunResult:
    """Forward, then backward of Σ g·output with fixed random g on every output (``loss_on``
    ``"all"``), or on the spikes or the membranes only (the other output gets no gradient)."""
    model = model.to(device)
    x = x.to(device).requires_grad_(True)
    state = SNNState(*(t.to(device).requires_grad_(True) for t in (state.v, state.spikes, state.inputs)))
    out = model(x, state)
    generator = torch.Generator().manual_seed(seed)
    outputs = {
        "all": [out.layer_spikes, out.layer_states, out.state.v, out.state.spikes, out.state.inputs],
        "spikes": [out.layer_spikes],
        "membranes": [out.layer_membranes],
        "states": [out.layer_states],
    }[loss_on]
    loss = sum((o * torch.randn(o.shape, generator=generator, dtype=o.dtype).to(device)).sum() for o in outputs)
    model.zero_grad()
    loss.backward()
    grads = parameter_grads(model)
    grads.update(x=x.grad.cpu(), v0=state.v.grad.cpu(), s_hist=state.spikes.grad.cpu(), x_hist=state.inputs.grad.cpu())
    return RunResult(out.layer_spikes.detach().cpu(), out.layer_states.detach().cpu(), grads)


def assert_matches_reference(
    net: CompiledNetwork,
    backend: str,
    *,
    dtype: torch.dtype = torch.float64,
    surrogate: Surrogate | None = None,
    detach_reset: bool = False,
    learn: tuple[str, ...] | None = None,
    steps: int = 13,
    batch: int = 3,
    input_rate: float = 0.4,
    input_scale: float = 1.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    loss_on: str = "all",
) -> RunResult:
    """Run ``net`` on ``backend`` and on the reference; assert equal outputs and gradients
    (``learn``: the neuron parameters that train, by default all that the network has)."""
    generator = torch.Generator().manual_seed(seed)
    kwargs = {
        "surrogate": surrogate,
        "detach_reset": detach_reset,
        "learn": tuple(net.parameters) if learn is None else learn,
    }
    reference = SNN(net, backend="reference", dtype=dtype, **kwargs)
    candidate = SNN(net, backend=backend, dtype=dtype, **kwargs)
    x = (torch.rand(steps, batch, net.n_inputs, generator=generator) < input_rate).to(dtype) * input_scale
    state = random_state(reference, batch, generator)
    want = run_with_grads(reference, x, state, seed, loss_on=loss_on)
    got = run_with_grads(candidate, x, state, seed, device, loss_on=loss_on)
    assert torch.equal(got.spikes, want.spikes), f"{backend}: spikes differ from the reference"
    assert_close_to_reference(got.membranes, want.membranes, dtype, f"{backend}: states differ from the reference")
    for name, grad in want.grads.items():
        assert_close_to_reference(
            got.grads[name], grad, dtype, f"{backend}: gradient of {name} differs from the reference"
        )
    return got


def assert_rebuild_matches_reference(
    net: CompiledNetwork,
    backend: str,
    *,
    dtype: torch.dtype = torch.float64,
    steps: int = 13,
    batch: int = 3,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> None:
    """Run ``net`` (whose edges learn their delays) on ``backend`` and on the reference, move every
    real delay by a whole step (the taps' delays rebuilt, a new plan) and assert equal outputs and
    gradients again."""
    generator = torch.Generator().manual_seed(seed)
    reference = SNN(net, backend="reference", dtype=dtype)
    candidate = SNN(net, backend=backend, dtype=dtype)
    x = (torch.rand(steps, batch, net.n_inputs, generator=generator) < 0.4).to(dtype)
    state = random_state(reference, batch, generator)
    before = run_with_grads(candidate, x, state, seed, device).spikes
    for model in (reference, candidate):
        with torch.no_grad():
            for edge in net.edges:
                if edge.delays is not None:
                    model.delays(edge.pre, edge.post).add_(1.0)
    want = run_with_grads(reference, x, state, seed)
    got = run_with_grads(candidate, x, state, seed, device)
    assert not torch.equal(want.spikes, before), "moving the delays changed nothing: the check is void"
    assert torch.equal(got.spikes, want.spikes), f"{backend}: spikes differ from the reference after the rebuild"
    for name, grad in want.grads.items():
        assert_close_to_reference(got.grads[name], grad, dtype, f"{backend}: gradient of {name} after the rebuild")
