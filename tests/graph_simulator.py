"""Oracle: simulate the *graph* population by population, in graph time.

Independent of the compiler: no lags, no flat arrays.  Within a timestep, populations run in
topological order of the zero-delay hops (as snnTorch runs a layered net), so a zero-delay
synapse sees its presynaptic spikes of the same step.  Torch autograd differentiates it, with
its own surrogate spike function, so its gradients check the compiled layer's.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import torch

from snngraph.graph import Graph, population_spec, projection_spec
from snngraph.surrogates import Surrogate


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: Surrogate) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return torch.where(x > 0, torch.ones_like(x), torch.zeros_like(x))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * ctx.surrogate.grad(x), None


def simulate_graph(
    graph: Graph,
    inputs: dict[Any, torch.Tensor],
    synapse_values: dict[tuple[Any, Any], torch.Tensor],
    surrogate: Surrogate,
    detach_reset: bool = False,
) -> tuple[dict[Any, torch.Tensor], dict[Any, torch.Tensor]]:
    """Spikes and membranes ``{population: [T, B, size]}`` of every neuron population.

    ``synapse_values[(pre, post)]`` holds the edge's synapse weights in the order of
    :func:`snngraph.graph.projection_spec` (differentiable leaves, to compare gradients).
    """
    g = graph.nx
    pops = {name: population_spec(name, attrs) for name, attrs in g.nodes(data=True)}
    dtype = next(iter(inputs.values())).dtype
    steps, batch = next(iter(inputs.values())).shape[:2]
    projections = [projection_spec(u, v, attrs, pops[u].size, pops[v].size) for u, v, attrs in g.edges(data=True)]
    zero_hops = nx.DiGraph()
    zero_hops.add_nodes_from(n for n, p in pops.items() if p.is_neuron)
    zero_hops.add_edges_from((p.pre, p.post) for p in projections if pops[p.pre].is_neuron and p.min_delay == 0)
    order = list(nx.topological_sort(zero_hops))

    spikes: dict[Any, list[torch.Tensor]] = {name: [] for name in order}
    membranes: dict[Any, list[torch.Tensor]] = {name: [] for name in order}

    def presynaptic(name: Any, t: int) -> torch.Tensor:
        if t < 0:
            return torch.zeros(batch, pops[name].size, dtype=dtype)
        return inputs[name][t] if not pops[name].is_neuron else spikes[name][t]

    for t in range(steps):
        for name in order:
            p = pops[name]
            current = torch.zeros(batch, p.size, dtype=dtype)
            for proj in (q for q in projections if q.post == name):
                values = synapse_values[(proj.pre, proj.post)]
                for delay in np.unique(proj.delay):
                    mask = proj.delay == delay
                    index = (torch.as_tensor(proj.post_index[mask]), torch.as_tensor(proj.pre_index[mask]))
                    weight = values.new_zeros(proj.shape).index_put(
                        index, values[torch.as_tensor(mask)], accumulate=True
                    )
                    current = current + presynaptic(proj.pre, t - int(delay)) @ weight.T
            alpha = torch.as_tensor(p.alpha, dtype=dtype)
            theta = torch.as_tensor(p.theta, dtype=dtype)
            u_prev = membranes[name][-1] if t else torch.zeros(batch, p.size, dtype=dtype)
            s_prev = spikes[name][-1] if t else torch.zeros(batch, p.size, dtype=dtype)
            if detach_reset:
                s_prev = s_prev.detach()
            if p.reset == "subtract":
                u = alpha * u_prev + current - theta * s_prev
            elif p.reset == "zero":
                u = alpha * u_prev * (1 - s_prev) + current
            else:
                u = alpha * u_prev + current
            s = _Spike.apply(u - theta, surrogate) if p.kind == "lif" else torch.zeros_like(u)
            membranes[name].append(u)
            spikes[name].append(s)
    return (
        {name: torch.stack(v) for name, v in spikes.items()},
        {name: torch.stack(v) for name, v in membranes.items()},
    )
