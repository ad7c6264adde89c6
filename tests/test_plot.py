"""Every plot renders to a PNG without a display (Agg)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from tiny_tasks import CHANNELS, tiny_classifier

import snngraph
from snngraph import plot
from snngraph.train import History

matplotlib.use("Agg")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_every_plot_saves_a_png(tmp_path: Path) -> None:
    model = tiny_classifier()
    x = (torch.rand(25, 3, CHANNELS, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    with torch.no_grad():
        output = model(x)
    history = History(train_loss=[1.0, 0.6, 0.4], train_accuracy=[0.4, 0.7, 0.9], val_loss=[1.1, 0.8, 0.7])
    figures = {
        "raster": plot.raster(output, inputs=x, sample=2),
        "membranes": plot.membranes(output, "readout"),
        "membranes_lif": plot.membranes(output, "hidden", neurons=[0, 3], sample=1),
        "graph": plot.graph(model.to_graph()),
        "w_rec": plot.connectivity(model),
        "w_in": plot.connectivity(model.net, target="input"),
        "training": plot.training(history),
        "training_loss_only": plot.training(History(train_loss=[2.0, 1.0])),
    }
    assert all(isinstance(figure, Figure) for figure in figures.values())
    paths = plot.save(figures, tmp_path / "pictures", "tiny", dpi=50)
    assert [p.name for p in paths] == [f"tiny_{name}.png" for name in figures]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC
    assert len(figures["raster"].axes) == 2  # input + the one lif population
    assert len(figures["training"].axes) == 2
    assert len(figures["training_loss_only"].axes) == 1
    labels = {text.get_text() for text in figures["graph"].axes[0].texts}
    assert {"d=0…3", "d=1…3", "d=0"} <= labels  # edges labelled with their delays


def test_plot_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_classifier()
    with torch.no_grad():
        output = model(torch.zeros(5, 2, CHANNELS))
    with pytest.raises(ValueError, match=r"unknown target 'output'; choose one of \['recurrent', 'input'\]"):
        plot.connectivity(model, target="output")
    with pytest.raises(ValueError, match=r"sample must lie in \[0, 2\)"):
        plot.raster(output, sample=2)
    with pytest.raises(ValueError, match="no 'lif' population"):
        plot.raster(output, populations=[])
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install snngraph\[examples\]"):
        plot.training(History(train_loss=[1.0]))


def learning_delay_model() -> snngraph.SNN:
    """input → hidden (dense, 6 × 4 delays, linear kernel) → hidden (sparse, Gaussian kernel)."""
    rng = np.random.default_rng(0)
    g = snngraph.Graph()
    g.add_input("input", 4)
    g.add_lif("hidden", 6, alpha=0.9)
    w_in, start = rng.normal(size=(6, 4)), rng.uniform(0, 5, size=(6, 4))
    g.connect("input", "hidden", weight=w_in, delay=start, learn_delay=True, delay_range=(0, 5))
    w_rec = snngraph.random_weight(6, 6, density=0.5, seed=1)
    rec = dict(learn_delay=True, delay_range=(1, 4), delay_kernel="gaussian")
    g.connect("hidden", "hidden", weight=w_rec, delay=rng.uniform(1, 4, size=w_rec.nnz), **rec)
    return snngraph.SNN(snngraph.compile(g), backend="reference")


def bar_heights(ax: Any) -> np.ndarray:
    return np.array([bar.get_height() for bar in ax.containers[0]])


def test_delay_histograms_count_every_learned_delay() -> None:
    model = learning_delay_model()
    before = copy.deepcopy(model)
    with torch.no_grad():
        model.delays("input", "hidden").fill_(2.2)  # every input delay in the bar of 2
    figure = plot.delays(model, before=before.to_graph())
    assert isinstance(figure, Figure)
    inputs, recurrent = figure.axes
    heights = bar_heights(inputs)
    assert heights.tolist() == [0, 0, 24, 0, 0, 0]  # one bar per whole step of [0, 5]
    n_rec = model.delays("hidden", "hidden").numel()
    assert bar_heights(recurrent).sum() == n_rec
    assert len(recurrent.containers[0]) == 4
    rounded = np.round(before.delays("hidden", "hidden").detach().numpy())
    assert bar_heights(recurrent).tolist() == [np.sum(rounded == d) for d in range(1, 5)]
    assert [text.get_text() for text in inputs.get_legend().get_texts()] == ["after", "before"]
    assert "'input' -> 'hidden': 24 delays in [0, 5]" in inputs.get_title()
    from_graph = plot.delays(model.to_graph()).axes  # a graph's delay_real gives the same bars
    assert bar_heights(from_graph[0]).tolist() == heights.tolist()
    assert from_graph[0].get_legend() is None


def test_delay_change_plots_each_delay_before_against_after() -> None:
    model = learning_delay_model()
    before = copy.deepcopy(model)
    with torch.no_grad():
        model.delays("hidden", "hidden").add_(0.5)  # some beyond the range, shown where the model clamps them
    (ax,) = plot.delay_change(before, model).axes
    points = [collection.get_offsets() for collection in ax.collections]
    assert [len(p) for p in points] == [24, model.delays("hidden", "hidden").numel()]
    np.testing.assert_allclose(points[0][:, 0], points[0][:, 1])  # the input delays did not move
    beyond = before.delays("hidden", "hidden").detach().double().numpy() + 0.5 > 4
    assert beyond.any()
    np.testing.assert_allclose(points[1][:, 1], np.minimum(points[1][:, 0] + 0.5, 4), atol=1e-6)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["'input' -> 'hidden'", "'hidden' -> 'hidden'"]


def test_delay_plots_need_learned_delays() -> None:
    with pytest.raises(ValueError, match="no edge of this network learns its delays"):
        plot.delays(tiny_classifier())
    model = learning_delay_model()
    graph = model.to_graph()
    graph.nx.remove_edge("hidden", "hidden")
    with pytest.raises(ValueError, match="before learns the delays of the edges"):
        plot.delays(model, before=graph)
    with pytest.raises(ValueError, match="before learns the delays of the edges"):
        plot.delay_change(graph, model)
