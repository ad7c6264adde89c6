"""``fit``/``evaluate``: learning, determinism, truncated BPTT, clipping, progress, metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_tasks import HIDDEN, tiny_classifier, tiny_randman
from torch.utils.data import DataLoader, TensorDataset, random_split

import snngraph
import snngraph.train
from snngraph import SNNOutput
from snngraph.losses import MembraneLoss, SpikeCountLoss
from snngraph.train import evaluate, fit


def test_fit_learns_a_tiny_task() -> None:
    model = tiny_classifier()
    train, test = random_split(tiny_randman(40), [64, 16], generator=torch.Generator().manual_seed(0))
    loader, val = DataLoader(train, batch_size=8, shuffle=True), DataLoader(test, batch_size=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    history = fit(model, loader, MembraneLoss("readout"), optimizer, 10, val, seed=0, progress=False)
    assert len(history.train_loss) == len(history.train_accuracy) == len(history.seconds) == 10
    assert len(history.val_loss) == len(history.val_accuracy) == 10
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.train_accuracy[-1] >= 0.9
    assert history.val_accuracy[-1] >= 0.75


def test_fit_is_deterministic_under_a_seed() -> None:
    runs = []
    for _ in range(2):
        model = tiny_classifier()
        loader = DataLoader(tiny_randman(), batch_size=8, shuffle=True)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        history = fit(model, loader, MembraneLoss("readout"), optimizer, 2, seed=5, progress=False)
        runs.append((history.train_loss, model.w_in.detach().clone(), model.w_rec.detach().clone()))
    assert runs[0][0] == runs[1][0]
    torch.testing.assert_close(runs[0][1], runs[1][1], rtol=0, atol=0)
    torch.testing.assert_close(runs[0][2], runs[1][2], rtol=0, atol=0)


def manual_tbptt(model: snngraph.SNN, x: torch.Tensor, labels: torch.Tensor, chunk: int, lr: float) -> None:
    """The textbook loop: per chunk, loss on that chunk, backward, SGD step, state cut."""
    loss_fn, state = MembraneLoss("readout", over="mean"), None
    for start in range(0, x.shape[0], chunk):
        output = model(x[start : start + chunk], state)
        model.zero_grad()
        loss_fn(output, labels).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        state = output.state.detach()


@pytest.mark.parametrize("adaptive", [False, True], ids=["lif", "alif"])
@pytest.mark.parametrize("chunk", [7, 20, 50], ids=["chunks", "one-chunk", "longer-than-T"])
def test_tbptt_matches_the_textbook_loop(chunk: int, adaptive: bool) -> None:
    """Also with three state variables per neuron, whose neuron parameters train: the state
    carries every one of them across the cut."""
    data = tiny_randman(4)
    x, labels = data.tensors
    options = {"dtype": torch.float64, "adaptive": adaptive, "learn": ("alpha", "adapt", "bias") if adaptive else ()}
    fitted, manual = tiny_classifier(**options), tiny_classifier(**options)
    loader = DataLoader(data, batch_size=len(data))
    optimizer = torch.optim.SGD(fitted.parameters(), lr=0.1)
    fit(fitted, loader, MembraneLoss("readout", over="mean"), optimizer, 1, tbptt=chunk, progress=False)
    manual_tbptt(manual, x.transpose(0, 1).double(), labels, chunk, 0.1)
    for name, value in tiny_classifier(**options).named_parameters():
        assert not torch.equal(fitted.get_parameter(name), value)
        torch.testing.assert_close(fitted.get_parameter(name), manual.get_parameter(name), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tbptt", [None, 7], ids=["whole", "tbptt"])
def test_fit_gives_a_batch_first_model_its_own_layout(tbptt: int | None) -> None:
    """A batch-first model gets the loader's ``[B, T, C]`` untransposed and trains exactly like the
    time-major one (truncated BPTT chunks cut along its time dimension)."""
    data = tiny_randman(4)
    models = [tiny_classifier(dtype=torch.float64, batch_first=first) for first in (False, True)]
    for model in models:
        loader = DataLoader(data, batch_size=len(data))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        fit(model, loader, MembraneLoss("readout", over="mean"), optimizer, 1, tbptt=tbptt, progress=False)
    for name in ("w_in", "w_rec"):
        assert not torch.equal(getattr(models[0], name), getattr(tiny_classifier(dtype=torch.float64), name))
        torch.testing.assert_close(getattr(models[1], name), getattr(models[0], name), rtol=1e-12, atol=1e-12)


def test_concat_of_chunks_equals_one_run() -> None:
    """Chunks of a layered run (zero-delay hops give lags 1 and 2) joined == the unchunked run."""
    g = snngraph.Graph()
    g.add_input("x", 3)
    g.add_lif("a", 5, alpha=0.8)
    g.add_lif("b", 4, alpha=0.8)
    g.add_li("out", 2)
    g.connect("x", "a", weight=np.full((5, 3), 0.7), delay=0)
    g.connect("a", "b", weight=np.full((4, 5), 0.5), delay=0)
    g.connect("b", "b", weight=np.eye(4) * 0.3, delay=2)
    g.connect("b", "out", delay=0, seed=0)
    model = snngraph.SNN(snngraph.compile(g), backend="reference", dtype=torch.float64)
    x = (torch.rand(17, 2, 3, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    whole, chunks, state = model(x), [], None
    for part in x.split(5):
        chunks.append(model(part, state))
        state = chunks[-1].state
    joined = SNNOutput.concat(chunks)
    assert joined.steps == 17
    for name in ("a", "b"):
        assert whole.spikes(name).sum() > 0
        torch.testing.assert_close(joined.spikes(name), whole.spikes(name), rtol=0, atol=0)
    torch.testing.assert_close(joined.membrane("out"), whole.membrane("out"), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(joined.layer_membranes, whole.layer_membranes, rtol=1e-12, atol=1e-12)


def test_clip_grad_norm_scales_the_step() -> None:
    """With SGD(lr=1) the clipped step is −g·c/(‖g‖ + 1e-6), g the gradient of the whole batch."""
    data, clip = tiny_randman(4), 1e-3
    x, labels = data.tensors
    reference = tiny_classifier(dtype=torch.float64)
    MembraneLoss("readout")(reference(x.transpose(0, 1).double()), labels).backward()
    grad = torch.cat([p.grad.reshape(-1) for p in reference.parameters()])
    assert torch.linalg.vector_norm(grad) > 10 * clip
    model = tiny_classifier(dtype=torch.float64)
    before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    fit(
        model,
        DataLoader(data, batch_size=len(data)),
        MembraneLoss("readout"),
        optimizer,
        1,
        clip_grad_norm=clip,
        progress=False,
    )
    step = torch.cat([p.detach().reshape(-1) for p in model.parameters()]) - before
    torch.testing.assert_close(step, -grad * clip / (torch.linalg.vector_norm(grad) + 1e-6), rtol=1e-9, atol=1e-15)


def test_evaluate_matches_a_direct_pass() -> None:
    model = tiny_classifier()
    data = tiny_randman(8)
    loss, accuracy = evaluate(model, DataLoader(data, batch_size=5), MembraneLoss("readout"))
    x, labels = data.tensors
    with torch.no_grad():
        scores = model(x.transpose(0, 1)).membrane("readout").max(dim=0).values
    expected = torch.nn.functional.cross_entropy(scores, labels).item()
    assert loss == pytest.approx(expected, rel=1e-5)
    assert accuracy == pytest.approx((scores.argmax(1) == labels).double().mean().item())


def test_count_targets_have_no_accuracy_and_dict_inputs_work() -> None:
    """Float targets [B, N]: loss only.  A dict {input name: [B, T, C]} is accepted too."""
    model = tiny_classifier()
    spiking = snngraph.SNN(model.net, backend="reference")  # counts need a lif population
    x, _ = tiny_randman(4).tensors
    target = torch.full((x.shape[0], HIDDEN), 2.0)
    loader = DataLoader(TensorDataset(x, target), batch_size=4)
    dict_loader = [({"input": xb}, yb) for xb, yb in loader]
    optimizer = torch.optim.Adam(spiking.parameters(), lr=1e-3)
    history = fit(
        spiking, dict_loader, SpikeCountLoss("hidden", criterion="mse"), optimizer, 1, dict_loader, progress=False
    )
    assert history.train_accuracy == []
    assert history.val_accuracy == []
    assert len(history.train_loss) == len(history.val_loss) == 1


class RecordingSampler(torch.utils.data.Sampler[int]):
    def __init__(self, n: int) -> None:
        self.n, self.epochs = n, []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


def test_progress_and_sampler_epochs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = tiny_randman(4)
    sampler = RecordingSampler(len(data))
    loader = DataLoader(data, batch_size=4, sampler=sampler)
    model = tiny_classifier()
    optimizer = torch.optim.Adam(model.parameters())
    fit(model, loader, MembraneLoss("readout"), optimizer, 2, loader)
    assert sampler.epochs == [0, 1]
    bar = capsys.readouterr().err  # tqdm's; the last epoch's bar ends with the validation metrics
    assert "val acc" in bar.rsplit("epoch 2/2", 1)[1]
    monkeypatch.setattr(snngraph.train, "tqdm", None)
    fit(model, loader, MembraneLoss("readout"), optimizer, 2, loader)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert "val loss" in lines[-1]
    assert "val acc" in lines[-1]


def test_fit_rejects_bad_arguments() -> None:
    model = tiny_classifier()
    loader = DataLoader(tiny_randman(4), batch_size=4)
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="epochs must be a positive int, got 0"):
        fit(model, loader, MembraneLoss("readout"), optimizer, 0)
    with pytest.raises(ValueError, match=r"tbptt must be None .* got 0"):
        fit(model, loader, MembraneLoss("readout"), optimizer, 1, tbptt=0)
    with pytest.raises(ValueError, match="at least one SNNOutput"):
        SNNOutput.concat([])
