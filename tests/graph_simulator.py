"""Oracle: simulate the *graph* population by population, in graph time.

Independent of the compiler and of the map from named kinds onto the generic neuron: no lags,
no flat arrays, no neuron table.  Each kind's update is written out from its named equations
(snngraph.kinds docstring).  Within a timestep, populations run in topological order of the
zero-delay hops (as snnTorch runs a layered net), so a zero-delay synapse sees its presynaptic
spikes of the same step.  A convolution or pooling edge is applied as PyTorch applies it
(``torch.nn.functional.conv1d/conv2d``, ``avg_pool1d/avg_pool2d`` on the shaped spikes), not
through its synapses; other edges through their synapses' weights.  An edge that learns its
delays applies its kernel explicitly: for every whole delay d of its range, the weights times
``h_d(τ)``, written out here from the kernels' definitions (the unit triangle
``max(0, 1 − |d − τ|)``, or the Gaussian normalised over its window).  Torch autograd
differentiates it, with its own surrogate spike function, so its gradients check the compiled
layer's (a kernel's gradient is the oracle's conv weight gradient).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F

from snngraph.convolution import ConvSpec
from snngraph.delays import DelaySpec
from snngraph.graph import Graph, PopulationSpec, ProjectionSpec, population_spec, projection_spec
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


def _step(
    p: PopulationSpec,
    prm: dict[str, torch.Tensor],
    prev: dict[str, torch.Tensor],
    current: torch.Tensor,
    surrogate: Surrogate,
    detach_reset: bool,
) -> dict[str, torch.Tensor]:
    """One step of population ``p``: its state variables and ``"S"`` from the previous ones."""
    s_prev = prev["S"]
    s_reset = s_prev.detach() if detach_reset else s_prev
    model = p.model
    if model.kind == "neurons":
        return _generic_step(p, prm["theta"], prev, current, surrogate, s_prev, s_reset)
    u_prev = prev["U"] * (1 - s_reset) if model.reset == "zero" else prev["U"]
    theta = prm["theta"] if model.spiking else None
    theta_prev = theta + prm["adapt"] * prev["a"] if model.kind == "alif" else theta  # θ_eff[t − 1]
    lowered = theta_prev * s_reset if model.reset == "subtract" else 0.0
    state = {}
    alpha = prm["alpha"]
    if model.kind == "adlif":
        u = alpha * u_prev + (1 - alpha) * (current + prm["bias"] - prev["W"]) - lowered
        beta = prm["alpha_adapt"]
        seen = u if model.symplectic else u_prev
        state["W"] = beta * prev["W"] + (1 - beta) * (prm["a"] * seen + prm["b"] * s_prev)
    else:
        drive = current + prm["bias"]
        if model.synaptic:
            state["J"] = prm["alpha_syn"] * prev["J"] + drive
            drive = state["J"]
        u = alpha * u_prev + (1 - alpha) * prm["v_leak"] + drive - lowered
    state["U"] = u
    threshold = theta
    if model.kind == "alif":
        state["a"] = prm["alpha_adapt"] * prev["a"] + s_prev
        threshold = theta + prm["adapt"] * state["a"]
    state["S"] = _Spike.apply(u - threshold, surrogate) if model.spiking else torch.zeros_like(u)
    return state


def _generic_step(
    p: PopulationSpec,
    theta: torch.Tensor,
    prev: dict[str, torch.Tensor],
    current: torch.Tensor,
    surrogate: Surrogate,
    s_prev: torch.Tensor,
    s_reset: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """A ``neurons`` population: v[t] = A·m(v[t−1]) + e·I + b + (c − s·θ_eff[t−1]·r)·S[t−1]."""
    blocks = {k: torch.as_tensor(v, dtype=current.dtype) for k, v in p.generic.items()}
    names = p.model.states
    v_prev = torch.stack([prev[n] for n in names])  # [K, B, n]
    kept = v_prev.clone()
    if p.model.reset == "zero":
        kept[0] = v_prev[0] * (1 - s_reset)
    theta_prev = theta + (blocks["g"][:, None] * v_prev).sum(0)
    lowered = theta_prev * s_reset if p.model.reset == "subtract" else torch.zeros_like(theta_prev)
    v = (
        torch.einsum("jkn,kbn->jbn", blocks["A"], kept)
        + blocks["e"][:, None] * current
        + blocks["b"][:, None]
        + blocks["c"][:, None] * s_prev
        - blocks["r"][:, None] * lowered
    )
    threshold = theta + (blocks["g"][:, None] * v).sum(0)
    state = dict(zip(names, v.unbind(0), strict=True))
    state["S"] = _Spike.apply(v[0] - threshold, surrogate)
    return state


def _structured_current(
    spec: ConvSpec, kernel: torch.Tensor, delay: Any, spikes: Callable[[int], torch.Tensor]
) -> torch.Tensor:
    """The current ``[B, post]`` of a convolution or pooling edge, with PyTorch's operators on
    the presynaptic spikes ``spikes(d)`` ``[B, pre]`` of ``d`` steps ago; ``delay`` is the edge's
    attribute (an int, or one per kernel tap: per distinct delay, the kernel's taps of that delay)."""
    n_dims = len(spec.kernel_size)
    pad = [side for pair in reversed(spec.padding) for side in pair]  # F.pad: last dimension first
    delay = np.asarray(delay)
    total = 0
    for d in np.unique(delay):
        x = F.pad(spikes(int(d)).reshape(-1, *spec.in_shape), pad)
        if spec.pool is not None:
            pool = F.avg_pool1d if n_dims == 1 else F.avg_pool2d
            y = pool(x, spec.kernel_size, spec.stride) * (
                1.0 if spec.pool == "avg" else float(np.prod(spec.kernel_size))
            )
        else:
            taps = kernel * torch.as_tensor(delay == d, dtype=kernel.dtype) if delay.ndim else kernel
            conv = F.conv1d if n_dims == 1 else F.conv2d
            y = conv(x, taps, stride=spec.stride, dilation=spec.dilation, groups=spec.groups)
        total = total + y.reshape(y.shape[0], -1)
    return total


def _edge_current(
    proj: ProjectionSpec, parameter: torch.Tensor, delay: Any, spikes: Callable[[int], torch.Tensor]
) -> torch.Tensor:
    """The current ``[B, post]`` of edge ``proj`` with the parameter ``parameter`` and the delays
    ``delay`` (the edge attribute of a convolution, else one per synapse)."""
    if proj.conv is not None:
        return _structured_current(proj.conv, parameter, delay, spikes)
    values = parameter.reshape(-1)[torch.tensor(proj.index)]
    if proj.scale is not None:
        values = values * torch.as_tensor(proj.scale, dtype=values.dtype)
    current = 0
    for d in np.unique(delay):
        mask = delay == d
        index = (torch.as_tensor(proj.post_index[mask]), torch.as_tensor(proj.pre_index[mask]))
        weight = values.new_zeros(proj.shape).index_put(index, values[torch.as_tensor(mask)], accumulate=True)
        current = current + spikes(int(d)) @ weight.T
    return current


def delay_kernel(tau: torch.Tensor, d: int, spec: DelaySpec, sigma: float) -> torch.Tensor:
    """``h_d(τ)``, elementwise over the real delays ``τ`` (snngraph.delays, from the definitions)."""
    triangle = torch.clamp(1 - (d - tau).abs(), min=0)
    if spec.kernel == "linear" or sigma == 0:
        return triangle
    start = torch.clamp(torch.floor(tau) - (spec.taps - 1) // 2, spec.low, spec.high - spec.taps + 1)
    window = torch.stack([start + j for j in range(spec.taps)])
    bumps = torch.exp(-((window - tau) ** 2) / (2 * sigma**2))
    inside = (d >= start) & (d < start + spec.taps)
    return torch.where(inside, torch.exp(-((d - tau) ** 2) / (2 * sigma**2)) / bumps.sum(0), 0)


def simulate_graph(
    graph: Graph,
    inputs: dict[Any, torch.Tensor],
    edge_parameters: dict[tuple[Any, Any], torch.Tensor],
    surrogate: Surrogate,
    detach_reset: bool = False,
    neuron_values: dict[tuple[Any, str], torch.Tensor] | None = None,
    edge_delays: dict[tuple[Any, Any], torch.Tensor] | None = None,
    sigmas: dict[tuple[Any, Any], float] | None = None,
) -> tuple[dict[Any, torch.Tensor], dict[Any, dict[str, torch.Tensor]]]:
    """Spikes ``{population: [T, B, size]}`` and state variables ``{population: {"U": …, "J": …}}``
    of every neuron population.

    ``edge_parameters[(pre, post)]`` holds the edge's parameter in its natural shape (a conv
    kernel, a dense matrix, …; a pooling's is unused), ``neuron_values[(population, parameter)]`` named
    neuron parameters ``[size]`` (differentiable leaves, to compare gradients; the node's own
    values where not given), ``edge_delays[(pre, post)]`` the real delays of an edge that learns
    them (its ``delay_real`` where not given) and ``sigmas`` their Gaussian kernels' widths.
    """
    g = graph.nx
    pops = {name: population_spec(name, attrs) for name, attrs in g.nodes(data=True)}
    dtype = next(iter(inputs.values())).dtype
    steps, batch = next(iter(inputs.values())).shape[:2]
    projections = [
        projection_spec(u, v, attrs, pops[u].size, pops[v].size, (pops[u].shape, pops[v].shape), not pops[u].is_neuron)
        for u, v, attrs in g.edges(data=True)
    ]
    taus = {
        (p.pre, p.post): (edge_delays or {}).get((p.pre, p.post), torch.as_tensor(p.delay_values, dtype=dtype))
        for p in projections
        if p.delays is not None
    }
    zero_hops = nx.DiGraph()
    zero_hops.add_nodes_from(n for n, p in pops.items() if p.is_neuron)
    zero_hops.add_edges_from((p.pre, p.post) for p in projections if pops[p.pre].is_neuron and p.min_delay == 0)
    order = list(nx.topological_sort(zero_hops))
    given = neuron_values or {}
    params = {
        name: {
            key: given.get((name, key), torch.as_tensor(value, dtype=dtype)) for key, value in pops[name].params.items()
        }
        for name in order
    }
    history: dict[Any, list[dict[str, torch.Tensor]]] = {name: [] for name in order}

    def presynaptic(name: Any, t: int) -> torch.Tensor:
        if t < 0:
            return torch.zeros(batch, pops[name].size, dtype=dtype)
        return inputs[name][t] if not pops[name].is_neuron else history[name][t]["S"]

    for t in range(steps):
        for name in order:
            p = pops[name]
            current = torch.zeros(batch, p.size, dtype=dtype)
            for proj in (q for q in projections if q.post == name):
                parameter = edge_parameters[(proj.pre, proj.post)]
                spikes_ago = lambda d, pre=proj.pre, now=t: presynaptic(pre, now - d)  # noqa: E731
                if proj.delays is not None:  # every whole delay of the range, weighted by the kernel
                    tau, sigma = taus[(proj.pre, proj.post)], (sigmas or {}).get((proj.pre, proj.post))
                    sigma = proj.delays.sigma if sigma is None else sigma
                    for d in range(proj.delays.low, proj.delays.high + 1):
                        factor = delay_kernel(tau, d, proj.delays, sigma)
                        if proj.kind == "pool":  # pooled by F.avg_pool*, its one value's factor after
                            current = current + factor.reshape(()) * _edge_current(proj, parameter, d, spikes_ago)
                            continue
                        delay = d if proj.conv is not None else np.full(proj.n_synapses, d)
                        current = current + _edge_current(proj, parameter * factor, delay, spikes_ago)
                    continue
                delay = g.edges[proj.pre, proj.post].get("delay", 1) if proj.conv is not None else proj.delay
                current = current + _edge_current(proj, parameter, delay, spikes_ago)
            zero = torch.zeros(batch, p.size, dtype=dtype)
            prev = history[name][-1] if t else {key: zero for key in (*p.model.states, "S")}
            history[name].append(_step(p, params[name], prev, current, surrogate, detach_reset))
    spikes = {name: torch.stack([h["S"] for h in steps_]) for name, steps_ in history.items()}
    states = {
        name: {key: torch.stack([h[key] for h in steps_]) for key in pops[name].model.states}
        for name, steps_ in history.items()
    }
    return spikes, states
