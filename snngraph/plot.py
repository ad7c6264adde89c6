"""Pictures of a network, its activity and its training, each a matplotlib ``Figure``.

Needs matplotlib (``pip install snngraph[examples]``), imported on first use.  The figures are
made with ``matplotlib.figure.Figure``, not pyplot, so nothing opens a window: save them with
``fig.savefig("name.png")`` or show them in a notebook.

* :func:`raster` — spikes of each population (and the input) for one sample;
* :func:`membranes` — membrane traces U[t] of one population;
* :func:`graph` — populations and projections, edges labelled with their delays;
* :func:`connectivity` — the compiled W_rec (or W_in) as a spy plot coloured by delay;
* :func:`training` — loss and accuracy per epoch from :func:`snngraph.train.fit`;
* :func:`delays` — histograms of the learned delays, a panel per edge that learns them,
  optionally over those of the same network before training;
* :func:`delay_change` — every learned delay before against after training;
* :func:`save` — a set of them as PNG files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch

from snngraph._optional import require
from snngraph.graph import Graph
from snngraph.module import SNN, SNNOutput
from snngraph.network import CompiledNetwork, PopulationInfo
from snngraph.train import History

KIND_COLOURS = {"input": "#8fbcd4", "lif": "#f2a65a", "li": "#9ccc8c"}
NODE_SIZE = 2600  # points², room for "name / kind [size]"


def _new_figure(**kwargs: Any) -> Any:
    figure = require("matplotlib.figure", "snngraph.plot", "examples")
    return figure.Figure(layout="constrained", **kwargs)


def _time_major(output: SNNOutput, view: torch.Tensor) -> torch.Tensor:
    """A population view of ``output`` as ``[T, B, N]``, whatever the model's ``batch_first``."""
    return view.transpose(0, 1) if output.batch_first else view


def _sample(tensor: torch.Tensor, sample: int) -> np.ndarray:
    """``[T, B, N]`` → ``[T, N]`` of one sample, as numpy."""
    if not 0 <= sample < tensor.shape[1]:
        raise ValueError(f"sample must lie in [0, {tensor.shape[1]}) (the batch), got {sample}")
    return tensor[:, sample].detach().cpu().double().numpy()


def raster(
    output: SNNOutput,
    populations: Sequence[Any] | None = None,
    *,
    inputs: torch.Tensor | None = None,
    sample: int = 0,
) -> Any:
    """Spike raster per population (default: every ``lif`` one), time on x, neuron on y.

    ``inputs`` ``[T, B, C]`` adds a panel of the input spikes on top.
    """
    if populations is None:
        populations = [p.name for p in output.net.populations if p.kind == "lif"]
    panels = [("input", inputs)] if inputs is not None else []
    panels += [(name, _time_major(output, output.spikes(name))) for name in populations]
    if not panels:
        raise ValueError("nothing to draw: the network has no 'lif' population; pass populations or inputs")
    fig = _new_figure(figsize=(8, 1.2 + 1.6 * len(panels)))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, spikes) in zip(axes, panels, strict=True):
        steps, neurons = np.nonzero(_sample(spikes, sample))
        ax.scatter(steps, neurons, s=30, marker="|", color="black", linewidths=1.2)
        ax.set_ylim(-0.5, spikes.shape[2] - 0.5)
        ax.set_ylabel(f"{name}\nneuron")
    axes[-1].set_xlim(-0.5, panels[0][1].shape[0] - 0.5)
    axes[-1].set_xlabel("time step")
    fig.suptitle(f"spikes, sample {sample}")
    return fig


def membranes(output: SNNOutput, population: Any, *, neurons: Sequence[int] | None = None, sample: int = 0) -> Any:
    """Membrane traces U[t] of ``population`` (default: all its neurons), with θ for ``lif``."""
    info = output.net.population(population)
    u = _sample(_time_major(output, output.membrane(population)), sample)
    neurons = range(info.size) if neurons is None else neurons
    fig = _new_figure(figsize=(8, 3.5))
    ax = fig.subplots()
    for i in neurons:
        ax.plot(u[:, i], linewidth=1.0, label=f"{i}")
    if info.kind == "lif":
        for theta in np.unique(output.net.theta[info.start : info.stop]):
            ax.axhline(theta, color="gray", linestyle="--", linewidth=0.8)
    ax.set_xlabel("time step")
    ax.set_ylabel("U")
    ax.set_title(f"membrane of {population!r} ({info.kind}), sample {sample}")
    if len(neurons) <= 20:
        ax.legend(title="neuron", fontsize="small", ncols=2, loc="upper left")
    return fig


def _delay_text(delay: Any) -> str:
    delays = np.asarray(delay)
    low, high = int(delays.min()), int(delays.max())
    return f"d={low}" if low == high else f"d={low}…{high}"


def _layer_positions(g: nx.DiGraph) -> dict[Any, np.ndarray]:
    """Columns by hop distance from the inputs (unreachable nodes last), rows within a column."""
    inputs = [n for n, kind in g.nodes(data="kind") if kind == "input"]
    hops = nx.multi_source_dijkstra_path_length(g, inputs, weight=lambda u, v, d: 1) if inputs else {}
    last = max(hops.values(), default=-1) + 1
    for node in g:
        g.nodes[node]["column"] = hops.get(node, last)
    return nx.multipartite_layout(g, subset_key="column")


def graph(network: Graph | nx.DiGraph) -> Any:
    """The populations (name, kind, size) and projections, each edge labelled with its delays."""
    g = (network.nx if isinstance(network, Graph) else network).copy()
    positions = _layer_positions(g)
    fig = _new_figure(figsize=(8, 5))
    ax = fig.subplots()
    colours = [KIND_COLOURS.get(kind, "white") for _, kind in g.nodes(data="kind")]
    nx.draw_networkx_nodes(g, positions, ax=ax, node_color=colours, node_size=NODE_SIZE, edgecolors="black")
    labels = {n: f"{n}\n{d.get('kind')} [{d.get('size', 1)}]" for n, d in g.nodes(data=True)}
    nx.draw_networkx_labels(g, positions, labels, ax=ax, font_size=9)
    style = "arc3,rad=0.15"
    nx.draw_networkx_edges(g, positions, ax=ax, node_size=NODE_SIZE, arrowsize=16, connectionstyle=style)
    delays = {(u, v): _delay_text(d.get("delay", 1)) for u, v, d in g.edges(data=True)}
    nx.draw_networkx_edge_labels(g, positions, delays, ax=ax, font_size=8, connectionstyle=style, node_size=NODE_SIZE)
    ax.margins(0.2)
    ax.set_axis_off()
    ax.set_title("graph (edge labels: synaptic delays in steps)")
    return fig


TARGETS = ("recurrent", "input")


def _mark_populations(ax: Any, infos: Sequence[PopulationInfo], axis: str) -> None:
    """Lines between populations and their names as ticks along ``axis`` ("x" or "y")."""
    line = ax.axvline if axis == "x" else ax.axhline
    for info in infos[1:]:
        line(info.start - 0.5, color="gray", linewidth=0.6)
    ticks = [(info.start + info.stop - 1) / 2 for info in infos]
    names = [str(info.name) for info in infos]
    (ax.set_xticks if axis == "x" else ax.set_yticks)(ticks, names)


def connectivity(network: CompiledNetwork | SNN, target: str = "recurrent") -> Any:
    """Spy plot of the compiled W_rec (``target="recurrent"``) or W_in: a dot per synapse at
    (pre, post), coloured by its compiled delay; lines separate the populations."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {list(TARGETS)}")
    net = network.net if isinstance(network, SNN) else network
    post, pre, delay, _ = net.synapses(target)
    pre_infos = net.populations if target == "recurrent" else net.inputs
    n_pre = net.n_neurons if target == "recurrent" else net.n_inputs
    fig = _new_figure(figsize=(6.5, 5.5))
    ax = fig.subplots()
    size = float(np.clip(4e4 / max(n_pre, net.n_neurons) ** 2, 0.5, 30))
    dots = ax.scatter(pre, post, c=delay, s=size, marker="s", cmap="viridis", linewidths=0)
    fig.colorbar(dots, ax=ax, label="delay (steps)")
    ax.set_xlim(-0.5, n_pre - 0.5)
    ax.set_ylim(net.n_neurons - 0.5, -0.5)
    _mark_populations(ax, pre_infos, "x")
    _mark_populations(ax, net.populations, "y")
    ax.set_xlabel("presynaptic")
    ax.set_ylabel("postsynaptic")
    ax.set_title(f"{'W_rec' if target == 'recurrent' else 'W_in'}: {post.size} synapses")
    return fig


def training(history: History) -> Any:
    """Loss (and accuracy, when measured) per epoch, training and validation."""
    panels = [("loss", history.train_loss, history.val_loss)]
    if history.train_accuracy or history.val_accuracy:
        panels.append(("accuracy", history.train_accuracy, history.val_accuracy))
    fig = _new_figure(figsize=(4 * len(panels), 3.5))
    from matplotlib.ticker import MaxNLocator

    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (what, train, val) in zip(axes, panels, strict=True):
        for values, label in ((train, "train"), (val, "validation")):
            if values:
                ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.legend()
    return fig


def learned_delays(network: SNN | Graph) -> dict[tuple[Any, Any], tuple[np.ndarray, tuple[int, int]]]:
    """The real delays (flat, float64) and ``delay_range`` of every edge that learns its delays,
    by ``(pre, post)``: from a model's :meth:`~snngraph.SNN.delays` (clamped into the range, as
    the model's next call clamps them after an optimizer step) or a graph's ``delay_real`` edge
    attributes (as :meth:`~snngraph.SNN.to_graph` writes them)."""
    if isinstance(network, SNN):
        return {
            (e.pre, e.post): (
                network.delays(e.pre, e.post)
                .detach()
                .cpu()
                .double()
                .numpy()
                .reshape(-1)
                .clip(e.delays.low, e.delays.high),
                (e.delays.low, e.delays.high),
            )
            for e in network.net.edges
            if e.delays is not None
        }
    return {
        (u, v): (np.asarray(d["delay_real"], dtype=float).reshape(-1), tuple(d["delay_range"]))
        for u, v, d in network.nx.edges(data=True)
        if d.get("learn_delay")
    }


def _learning_edges(network: SNN | Graph) -> dict[tuple[Any, Any], tuple[np.ndarray, tuple[int, int]]]:
    found = learned_delays(network)
    if not found:
        raise ValueError("no edge of this network learns its delays (connect(..., learn_delay=True))")
    return found


def delays(network: SNN | Graph, *, before: SNN | Graph | None = None) -> Any:
    """Histograms of the real delays of every edge that learns them, one panel per edge, one bar
    per whole step of its ``delay_range`` (a delay τ counts in the bar of ``round(τ)``).

    ``before`` (the same network before training, e.g. ``copy.deepcopy(model)`` or
    ``model.to_graph()`` taken then) adds its histograms as outlines, so that the panels show
    where training moved the delays.
    """
    after = _learning_edges(network)
    initial = None if before is None else _learning_edges(before)
    if initial is not None and initial.keys() != after.keys():
        raise ValueError(f"before learns the delays of the edges {list(initial)}, the network of {list(after)}")
    fig = _new_figure(figsize=(6, 0.6 + 2.4 * len(after)))
    from matplotlib.ticker import MaxNLocator

    axes = fig.subplots(len(after), 1, squeeze=False)[:, 0]
    for ax, ((pre, post), (values, (low, high))) in zip(axes, after.items(), strict=True):
        edges = np.arange(low, high + 2) - 0.5
        ax.hist(values, bins=edges, color="#4c72b0", label="after" if initial else None)
        if initial is not None:
            ax.hist(initial[pre, post][0], bins=edges, histtype="step", color="black", linewidth=1.2, label="before")
            ax.legend(fontsize="small")
        ax.set_xlim(edges[0], edges[-1])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("synapses")
        ax.set_title(f"{pre!r} -> {post!r}: {values.size} delays in [{low}, {high}]", fontsize="medium")
    axes[-1].set_xlabel("delay (steps)")
    return fig


def delay_change(before: SNN | Graph, after: SNN | Graph) -> Any:
    """Every learned delay after training against its value before, one colour per edge that
    learns them; points off the diagonal are the delays that training moved."""
    initial, final = _learning_edges(before), _learning_edges(after)
    if initial.keys() != final.keys():
        raise ValueError(f"before learns the delays of the edges {list(initial)}, after of {list(final)}")
    fig = _new_figure(figsize=(5, 4.5))
    ax = fig.subplots()
    low = min(bounds[0] for _, bounds in final.values())
    high = max(bounds[1] for _, bounds in final.values())
    ax.plot([low, high], [low, high], color="gray", linestyle="--", linewidth=0.8)
    for (pre, post), (values, _) in final.items():
        ax.scatter(initial[pre, post][0], values, s=10, alpha=0.7, label=f"{pre!r} -> {post!r}")
    ax.set_xlabel("delay before (steps)")
    ax.set_ylabel("delay after (steps)")
    ax.set_title("learned delays")
    ax.legend(fontsize="small")
    return fig


def save(figures: Mapping[str, Any], out: Path, prefix: str, dpi: int = 100) -> list[Path]:
    """Write each figure as ``out/{prefix}_{name}.png`` (``out`` is created) and return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in figures.items():
        paths.append(out / f"{prefix}_{name}.png")
        figure.savefig(paths[-1], dpi=dpi)
    return paths


__all__ = [
    "connectivity",
    "delay_change",
    "delays",
    "graph",
    "learned_delays",
    "membranes",
    "raster",
    "save",
    "training",
]
