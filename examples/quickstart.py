"""The single neuron of the blog post 'Backpropagation for a recurrent LIF layer' (docs/design.md,
References): snngraph's BPTT gradient next to the closed form.

One LIF neuron with one input weight W_in and no reset (the blog post's eq. 3):

    U[t] = α U[t−1] + W_in X[t],   S[t] = H(U[t] − θ),   E = ŷ − y,  ŷ = Σ_t S[t]

With the sigmoid surrogate σ' for dS/dU, the blog post's eq. 13 gives the gradient in closed form
(state before t = 0 is zero, so the inner sum starts at 0):

    dE/dW_in = Σ_t σ'(U[t] − θ) · Σ_{i≤t} α^{t−i} X[i]

The script builds the neuron as a graph, runs it, backpropagates E and prints both numbers::

    python examples/quickstart.py
    python examples/quickstart.py --steps 5 --weight 2.0
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import snngraph
from snngraph.losses import SpikeCountLoss


def closed_form(x: np.ndarray, weight: float, alpha: float, theta: float, slope: float) -> tuple[float, np.ndarray]:
    """eq. 13 and the membrane U[t] = W_in Σ_{i≤t} α^{t−i} X[i], computed directly from X."""
    trace = np.array([sum(alpha ** (t - i) * x[i] for i in range(t + 1)) for t in range(len(x))])
    u = weight * trace
    sigmoid = 1.0 / (1.0 + np.exp(-slope * (u - theta)))
    surrogate = slope * sigmoid * (1.0 - sigmoid)  # σ'(U[t] − θ), the blog post's sigmoid derivative
    return float(np.sum(surrogate * trace)), u


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--weight", type=float, default=0.25, help="W_in")
    parser.add_argument("--alpha", type=float, default=0.9, help="decay α")
    parser.add_argument("--theta", type=float, default=1.0, help="threshold θ")
    parser.add_argument("--slope", type=float, default=5.0, help="sigmoid surrogate slope k")
    parser.add_argument("--target", type=float, default=1.0, help="target spike count y")
    parser.add_argument("--backend", default="auto", choices=["auto", *snngraph.backends.BACKENDS])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    g = snngraph.Graph()
    g.add_input("x", 1)
    g.add_lif("neuron", 1, alpha=args.alpha, theta=args.theta, reset="none")
    g.connect("x", "neuron", weight=[[args.weight]], delay=0)
    model = snngraph.SNN(
        snngraph.compile(g),
        backend=args.backend,
        surrogate=snngraph.surrogates.Sigmoid(args.slope),
        dtype=torch.float64,
    )

    x = torch.rand(args.steps, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(args.seed))
    output = model(x)
    loss = SpikeCountLoss("neuron", criterion="difference")  # E = ŷ − y
    error = loss(output, torch.tensor([[args.target]], dtype=torch.float64))
    error.backward()

    expected, u = closed_form(x[:, 0, 0].numpy(), args.weight, args.alpha, args.theta, args.slope)
    bptt = model.weight_grad("x", "neuron").item()
    print(f"spike count ŷ = {int(loss.scores(output).item())}, target y = {args.target:g}, E = {error.item():g}")
    u_gap = np.abs(output.membrane("neuron")[:, 0, 0].detach().numpy() - u).max()
    print(f"membrane: max |U_snngraph − U_closed form| = {u_gap:.1e}")
    print(f"dE/dW_in by BPTT (snngraph):   {bptt:.12f}")
    print(f"dE/dW_in by eq. 13 (the blog post): {expected:.12f}")
    print(f"difference: {abs(bptt - expected):.1e}")


if __name__ == "__main__":
    main()
