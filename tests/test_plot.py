"""Every plot renders to a PNG without a display (Agg)."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import pytest
import torch
from matplotlib.figure import Figure
from tiny_tasks import CHANNELS, tiny_classifier

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
