"""A layered network compiled to one recurrent layer, with the same output.

The graph input → h1 → h2 → out has zero-delay hops, the semantics of snnTorch and Norse:
at each step t, layer l + 1 receives layer l's spikes of the *same* step.  In one recurrent
layer every hop costs a step (the single layer view of the blog post
'Backpropagation for a recurrent LIF layer', docs/design.md, References), so the compiler gives each
population a lag, its depth, and runs the layer ``T + max lag`` steps; population v at graph
step t is the layer at step t + lag(v).  The script prints the lags, runs the compiled layer
and a plain layer-by-layer loop written here with the same weights, and prints how far apart
their spikes and membranes are::

    python examples/feedforward_to_recurrent.py
    python examples/feedforward_to_recurrent.py --steps 5 --batch 1
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch

import snngraph

LAYERS = ("h1", "h2", "out")


def layer_by_layer(
    x: torch.Tensor, weights: list[np.ndarray], alpha: float, theta: float
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """snnTorch-style loop: for each t, for each layer, U = αU + W·(spikes below) − θ S[t−1]."""
    steps, batch, _ = x.shape
    u = [x.new_zeros(batch, w.shape[0]) for w in weights]
    s = [x.new_zeros(batch, w.shape[0]) for w in weights]
    record = {name: ([], []) for name in LAYERS}
    for t in range(steps):
        below = x[t]
        for i, (name, w) in enumerate(zip(LAYERS, weights, strict=True)):
            u[i] = alpha * u[i] + below @ torch.as_tensor(w, dtype=x.dtype).T - theta * s[i]
            s[i] = (u[i] > theta).to(x.dtype)
            record[name][0].append(s[i])
            record[name][1].append(u[i])
            below = s[i]
    return {name: (torch.stack(spikes), torch.stack(us)) for name, (spikes, us) in record.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs=4, default=[10, 32, 32, 5], help="input h1 h2 out")
    parser.add_argument("--backend", default="auto", choices=["auto", *snngraph.backends.BACKENDS])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    alpha, theta = 0.9, 1.0
    rng = np.random.default_rng(args.seed)
    sizes = args.sizes
    weights = [rng.normal(0.0, 2.0 / np.sqrt(pre), size=(post, pre)) for pre, post in itertools.pairwise(sizes)]
    g = snngraph.Graph()
    g.add_input("input", sizes[0])
    for name, size in zip(LAYERS, sizes[1:], strict=True):
        g.add_lif(name, size, alpha=alpha, theta=theta)  # "out" spikes too, so every layer is alike
    for pre, post, w in zip(("input", *LAYERS[:-1]), LAYERS, weights, strict=True):
        g.connect(pre, post, weight=w, delay=0)
    net = snngraph.compile(g)
    print(net.summary(steps=args.steps, batch=args.batch))
    print("lags:", {p.name: p.lag for p in net.populations})

    model = snngraph.SNN(net, backend=args.backend, dtype=torch.float64)
    generator = torch.Generator().manual_seed(args.seed)
    x = (torch.rand(args.steps, args.batch, sizes[0], generator=generator) < 0.3).double()
    with torch.no_grad():
        output = model(x)
    expected = layer_by_layer(x, weights, alpha, theta)
    for name, (spikes, membrane) in expected.items():
        spike_gap = (output.spikes(name) - spikes).abs().max().item()
        membrane_gap = (output.membrane(name) - membrane).abs().max().item()
        print(
            f"{name}: {int(spikes.sum())} spikes; compiled vs layer-by-layer: "
            f"max |ΔS| = {spike_gap:g}, max |ΔU| = {membrane_gap:.1e}"
        )


if __name__ == "__main__":
    main()
