"""Losses and readouts against their formulas, in value and in gradient through the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import snngraph
from snngraph.losses import (
    MembraneLoss,
    SpikeCountLoss,
    count_difference,
    count_mse,
    cross_entropy,
    spike_count,
)

STEPS, BATCH, CLASSES = 23, 5, 3


@pytest.fixture(scope="module")
def model() -> snngraph.SNN:
    """input → recurrent lif with delays → a spiking ("spikes") and a leaky ("readout") head."""
    rng = np.random.default_rng(0)
    g = snngraph.Graph()
    g.add_input("x", 6)
    g.add_lif("hidden", 9, alpha=0.85)
    g.add_lif("spikes", CLASSES, alpha=0.8, theta=0.5)
    g.add_li("readout", CLASSES, alpha=0.9)
    g.connect("x", "hidden", weight=rng.normal(0.6, 1.0, (9, 6)), delay=rng.integers(0, 3, (9, 6)))
    g.connect("hidden", "hidden", weight=rng.normal(0.0, 0.5, (9, 9)), delay=rng.integers(1, 4, (9, 9)))
    g.connect("hidden", "spikes", weight=rng.normal(0.5, 1.0, (CLASSES, 9)), delay=0)
    g.connect("hidden", "readout", weight=rng.normal(0.0, 1.0, (CLASSES, 9)), delay=1)
    return snngraph.SNN(
        snngraph.compile(g),
        backend="reference",
        surrogate=snngraph.surrogates.FastSigmoid(10.0),
        dtype=torch.float64,
    )


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = (torch.rand(STEPS, BATCH, 6, generator=generator) < 0.4).double()
    labels = torch.randint(0, CLASSES, (BATCH,), generator=generator)
    return x, labels


def direct_cross_entropy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """mean_b [log Σ_k exp(scores[b, k]) − scores[b, y_b]]."""
    picked = scores[torch.arange(scores.shape[0]), labels]
    return (torch.log(torch.exp(scores).sum(dim=1)) - picked).mean()


def direct_max(u: torch.Tensor) -> torch.Tensor:
    """max over time by gathering at the argmax, [T, B, N] → [B, N]."""
    return u.gather(0, u.argmax(dim=0, keepdim=True))[0]


def gradients(model: snngraph.SNN, loss: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(model.weights.values()), retain_graph=True))


def assert_same_loss_and_gradient(model: snngraph.SNN, got: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    grads_got, grads_expected = gradients(model, got), gradients(model, expected)
    assert max(g.abs().max() for g in grads_expected) > 0  # the loss reaches the weights
    for g_got, g_expected in zip(grads_got, grads_expected, strict=True):
        torch.testing.assert_close(g_got, g_expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("over", "formula"),
    [
        ("max", direct_max),
        ("mean", lambda u: u.sum(dim=0) / u.shape[0]),
        ("last", lambda u: u[u.shape[0] - 1]),
    ],
    ids=["max", "mean", "last"],
)
def test_membrane_loss(model: snngraph.SNN, data: tuple[torch.Tensor, torch.Tensor], over: str, formula) -> None:
    x, labels = data
    output = model(x)
    loss = MembraneLoss("readout", over=over)
    scores = formula(output.membrane("readout"))
    assert_same_loss_and_gradient(model, loss(output, labels), direct_cross_entropy(scores, labels))
    torch.testing.assert_close(loss.predict(output), scores.argmax(dim=1))


def test_spike_count_cross_entropy(model: snngraph.SNN, data: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, labels = data
    output = model(x)
    counts = sum(output.spikes("spikes")[t] for t in range(STEPS))  # ŷ = Σ_t S[t]
    assert counts.sum() > 0
    loss = SpikeCountLoss("spikes")
    assert_same_loss_and_gradient(model, loss(output, labels), direct_cross_entropy(counts, labels))
    torch.testing.assert_close(loss.scores(output), counts)


@pytest.mark.parametrize(
    ("criterion", "formula"),
    [("difference", lambda c, y: (c - y).mean()), ("mse", lambda c, y: ((c - y) ** 2).mean())],
    ids=["difference", "mse"],
)
def test_spike_count_regression(
    model: snngraph.SNN, data: tuple[torch.Tensor, torch.Tensor], criterion, formula
) -> None:
    x, _ = data
    output = model(x)
    target = torch.arange(BATCH * CLASSES, dtype=torch.float64).reshape(BATCH, CLASSES) % 4
    counts = output.spikes("spikes").sum(dim=0)
    got = SpikeCountLoss("spikes", criterion=criterion)(output, target)
    assert_same_loss_and_gradient(model, got, formula(counts, target))


def test_sum_reduction() -> None:
    generator = torch.Generator().manual_seed(2)
    counts, target = torch.rand(4, 3, generator=generator), torch.rand(4, 3, generator=generator)
    labels = torch.tensor([0, 2, 1, 2])
    torch.testing.assert_close(count_difference(counts, target, "sum"), (counts - target).sum())
    torch.testing.assert_close(count_mse(counts, target, "sum"), ((counts - target) ** 2).sum())
    torch.testing.assert_close(cross_entropy(counts, labels, "sum"), 4 * direct_cross_entropy(counts, labels))
    torch.testing.assert_close(spike_count(torch.ones(7, 2, 3)), torch.full((2, 3), 7.0))


def test_the_posts_loss_gradient_is_eq_13() -> None:
    """E = ŷ − y on one LIF without reset: dE/dW = Σ_t σ'(U[t] − θ) ∂U[t]/∂W, with the blog
    post's recursion (eq. 9) ∂U[t]/∂W = α ∂U[t−1]/∂W + X[t]."""
    alpha, theta, weight, slope = 0.9, 1.0, 0.3, 5.0
    g = snngraph.Graph()
    g.add_input("x", 1)
    g.add_lif("n", 1, alpha=alpha, theta=theta, reset="none")
    g.connect("x", "n", weight=[[weight]], delay=0)
    surrogate = snngraph.surrogates.Sigmoid(slope)
    model = snngraph.SNN(snngraph.compile(g), backend="reference", surrogate=surrogate, dtype=torch.float64)
    x = torch.rand(30, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    output = model(x)
    SpikeCountLoss("n", criterion="difference")(output, torch.tensor([[2.0]], dtype=torch.float64)).backward()

    du_dw, expected = 0.0, 0.0
    for t in range(30):
        du_dw = alpha * du_dw + x[t, 0, 0].item()
        u = weight * du_dw
        s = 1 / (1 + np.exp(-slope * (u - theta)))
        expected += slope * s * (1 - s) * du_dw
    assert output.spikes("n").sum() > 0
    assert model.weight_grad("x", "n").item() == pytest.approx(expected, rel=1e-12)


def test_errors_name_the_fix(model: snngraph.SNN, data: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, labels = data
    output = model(x)
    with pytest.raises(ValueError, match=r"never spikes.*MembraneLoss"):
        SpikeCountLoss("readout")(output, labels)
    with pytest.raises(ValueError, match=r"unknown criterion 'l1'; choose one of \['difference'"):
        SpikeCountLoss("spikes", criterion="l1")
    with pytest.raises(ValueError, match=r"unknown readout 'over' 'min'; choose one of \['max', 'mean', 'last'\]"):
        MembraneLoss("readout", over="min")
    with pytest.raises(ValueError, match="unknown reduction 'none'"):
        MembraneLoss("readout", reduction="none")
    with pytest.raises(ValueError, match=r"shape of the spike counts \[B, N\] = \(5, 3\), got \(5,\)"):
        SpikeCountLoss("spikes", criterion="mse")(output, labels.double())
    with pytest.raises(ValueError, match=r"integer class indices of shape \[B\] = \[5\]"):
        MembraneLoss("readout")(output, labels.double())
    with pytest.raises(KeyError, match="no population 'nope'"):
        MembraneLoss("nope")(output, labels)
