"""The single neuron against the closed forms of the blog post 'Backpropagation for a recurrent LIF layer'
(eqs. 13, 16 and 19; docs/design.md, References).

One input channel X, one LIF neuron, input weight W_in (delay 0), loss E = Σ_t S[t].
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import snngraph
from snngraph import SNN, Graph
from snngraph.surrogates import Sigmoid

BACKENDS = ["reference", "cpu"]


def _neuron(
    w_in: float, alpha: float, theta: float, reset: str, w_rec: float | None = None
) -> snngraph.CompiledNetwork:
    g = Graph()
    g.add_input("x", 1)
    g.add_lif("n", 1, alpha=alpha, theta=theta, reset=reset)
    g.connect("x", "n", weight=np.array([[w_in]]), delay=0)
    if w_rec is not None:
        g.connect("n", "n", weight=np.array([[w_rec]]), delay=1)
    return snngraph.compile(g)


def _run(net: snngraph.CompiledNetwork, x: np.ndarray, backend: str) -> tuple[SNN, np.ndarray]:
    model = SNN(net, backend=backend, surrogate=Sigmoid(4.0), dtype=torch.float64)
    out = model(torch.tensor(x).reshape(-1, 1, 1))
    out.spikes("n").sum().backward()  # E = Σ_t S[t]
    return model, out.membrane("n").detach().numpy().ravel()


def _sigma_prime(x: np.ndarray) -> np.ndarray:
    return Sigmoid(4.0).grad(x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(3))
def test_eq13_no_reset(backend: str, seed: int) -> None:
    """U[t] = Σ_{i≤t} α^{t−i} W X[i] and dE/dW = Σ_t σ'(U[t] − θ) Σ_{i≤t} α^{t−i} X[i]."""
    rng = np.random.default_rng(seed)
    alpha, theta, w = 0.8, 1.0, rng.uniform(0.3, 1.0)
    x = rng.uniform(0, 1, 40)
    model, u = _run(_neuron(w, alpha, theta, "none"), x, backend)
    powers = np.tril(alpha ** (np.arange(40)[:, None] - np.arange(40)[None, :]))  # α^{t−i}, i ≤ t
    np.testing.assert_allclose(u, powers @ (w * x), rtol=1e-12)
    expected = np.sum(_sigma_prime(u - theta) * (powers @ x))
    np.testing.assert_allclose(model.weight_grad("x", "n").item(), expected, rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(3))
def test_eq16_with_reset_over_two_steps(backend: str, seed: int) -> None:
    """Eq. 16: dU[t]/dW = Σ α^{t−i} X[i] − θ σ'(U[t−1] − θ) Σ α^{t−1−j} X[j].

    The post keeps one level of the reset recursion, which is exact for t ≤ 1 (two steps).
    """
    rng = np.random.default_rng(seed)
    alpha, theta, w = 0.9, 0.5, 1.0
    x = rng.uniform(0.6, 1.0, 2)  # X[0] alone makes the neuron spike: the reset term matters
    model, u = _run(_neuron(w, alpha, theta, "subtract"), x, backend)
    assert u[0] > theta
    du = [x[0], alpha * x[0] + x[1] - theta * _sigma_prime(u[0] - theta) * x[0]]
    expected = np.sum(_sigma_prime(u - theta) * np.array(du))
    np.testing.assert_allclose(model.weight_grad("x", "n").item(), expected, rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reset", ["subtract", "none"])
@pytest.mark.parametrize("seed", range(3))
def test_eq19_forward_mode_recursion_with_recurrence(backend: str, reset: str, seed: int) -> None:
    """Eq. 19: dU[t]/dW = α dU[t−1]/dW + X[t] + W_rec dS[t−1]/dW − θ dS[t−1]/dW, with
    dS = σ'(U − θ) dU — an independent, forward-in-time oracle for the BPTT gradient
    (and likewise for W_rec, whose own term is S[t−1])."""
    rng = np.random.default_rng(seed)
    alpha, theta, w_in, w_rec = 0.85, 0.7, rng.uniform(0.4, 0.9), rng.uniform(-0.5, 0.5)
    steps = 60
    x = (rng.random(steps) < 0.5).astype(float)
    model, u = _run(_neuron(w_in, alpha, theta, reset, w_rec), x, backend)
    s = (u > theta).astype(float)
    assert 0 < s.sum() < steps
    reset_gain = theta if reset == "subtract" else 0.0
    du_win = du_wrec = 0.0
    grad_win = grad_wrec = 0.0
    ds_win = ds_wrec = s_prev = 0.0
    for t in range(steps):
        du_win = alpha * du_win + x[t] + (w_rec - reset_gain) * ds_win
        du_wrec = alpha * du_wrec + s_prev + (w_rec - reset_gain) * ds_wrec
        ds_win, ds_wrec = _sigma_prime(u[t] - theta) * du_win, _sigma_prime(u[t] - theta) * du_wrec
        grad_win += ds_win
        grad_wrec += ds_wrec
        s_prev = s[t]
    np.testing.assert_allclose(model.weight_grad("x", "n").item(), grad_win, rtol=1e-9)
    np.testing.assert_allclose(model.weight_grad("n", "n").item(), grad_wrec, rtol=1e-9)
