"""A small training loop for the common case: :func:`fit`, :func:`evaluate`, :class:`History`.

Nothing here is needed to train an :class:`~snngraph.SNN`, which is a plain ``torch.nn.Module``:
a loop of your own (or Lightning, or ``DistributedDataParallel``) works the same way.

Contract.  A loader yields ``(x, target)`` with ``x`` ``[B, T, C]`` (``batch_first=True``, as
a ``DataLoader`` over a :class:`~torch.utils.data.TensorDataset` stacks it) or ``[T, B, C]``, or a
dict of such tensors per input population; :func:`fit` hands them to the model in the model's
own layout (``SNN(batch_first=...)``, time-major by default), transposing only when the two
differ.  ``loss_fn(output, target)`` gets the model's
:class:`~snngraph.SNNOutput` and the targets and returns a scalar, averaged over the batch
(the losses in :mod:`snngraph.losses` do).  Accuracy is measured when a ``predict(output)``
giving classes ``[B]`` is known (``loss_fn.predict`` by default) and the targets are integer
labels ``[B]``.

Truncated BPTT (``tbptt=K``).  Each batch runs in chunks of ``K`` steps, each chunk starting from
the previous chunk's final state cut from the graph (:meth:`SNNState.detach`).  After every
chunk, ``loss_fn`` on that chunk's output is backpropagated and the optimizer steps, so memory
grows with ``K``, not ``T``.  Accuracy is measured on the whole run (:meth:`SNNOutput.concat`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from snngraph.module import SNNOutput

try:
    from tqdm import tqdm
except ImportError:  # tqdm is in the `examples` extra; without it, one line per epoch
    tqdm = None

LossFn = Callable[[SNNOutput, torch.Tensor], torch.Tensor]
Predict = Callable[[SNNOutput], torch.Tensor]
Inputs = torch.Tensor | Mapping[Any, torch.Tensor]


@dataclass
class History:
    """Per-epoch metrics of :func:`fit`; a list stays empty when its metric is not measured."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


class _EpochLine:
    """Stands in for a tqdm bar: keeps the postfix and prints it once, when closed."""

    def __init__(self, desc: str, quiet: bool) -> None:
        self.desc, self.quiet, self.text = desc, quiet, ""

    def update(self, n: int = 1) -> None:
        """Nothing to draw between batches."""

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.text = text

    def close(self) -> None:
        if not self.quiet:
            print(f"{self.desc}: {self.text}", flush=True)


def _progress(loader: Iterable[Any], desc: str, enabled: bool) -> Any:
    """A bar advanced by hand (``update``), so that it stays open for the validation metrics."""
    if enabled and tqdm is not None:
        total = len(loader) if isinstance(loader, Sized) else None
        return tqdm(total=total, desc=desc, leave=True, dynamic_ncols=True)
    return _EpochLine(desc, quiet=not enabled)


def _model_batch_first(model: nn.Module) -> bool:
    """Whether ``model`` (or the module that a DDP wrapper holds) takes ``[B, T, …]`` inputs."""
    return bool(getattr(getattr(model, "module", model), "batch_first", False))


def _prepare(x: Inputs, reference: torch.Tensor, batch_first: bool, model_batch_first: bool) -> Inputs:
    """Move ``x`` to the model's device and dtype, in the model's layout (``batch_first`` is the
    loader's)."""
    if isinstance(x, Mapping):
        return {name: _prepare(value, reference, batch_first, model_batch_first) for name, value in x.items()}
    x = x.to(device=reference.device, dtype=reference.dtype)
    return x.transpose(0, 1) if batch_first != model_batch_first else x


def _split(x: Inputs, steps: int, time_dim: int) -> list[Inputs]:
    """Chunks of ``steps`` timesteps of an input whose time runs along ``time_dim``."""
    if isinstance(x, Mapping):
        parts = {name: value.split(steps, dim=time_dim) for name, value in x.items()}
        return [dict(zip(parts, chunk, strict=True)) for chunk in zip(*parts.values(), strict=True)]
    return list(x.split(steps, dim=time_dim))


def _correct(predict: Predict | None, output: SNNOutput, target: torch.Tensor) -> int | None:
    """How many predictions hit their label, or ``None`` when targets are not class labels."""
    if predict is None or target.ndim != 1 or target.dtype.is_floating_point:
        return None
    return int((predict(output) == target).sum())


class _Meter:
    """Batch-size-weighted mean loss and accuracy over an epoch."""

    def __init__(self) -> None:
        self.loss = 0.0
        self.correct: int | None = 0
        self.samples = 0

    def add(self, loss: float, correct: int | None, batch: int) -> None:
        self.loss += loss * batch
        self.correct = None if correct is None or self.correct is None else self.correct + correct
        self.samples += batch

    def means(self) -> tuple[float, float | None]:
        samples = max(self.samples, 1)
        return self.loss / samples, None if self.correct is None else self.correct / samples


def _metrics_text(loss: float, accuracy: float | None, prefix: str = "") -> str:
    return f"{prefix}loss {loss:.4f}" + ("" if accuracy is None else f" {prefix}acc {accuracy:.3f}")


def _batch_size(x: Inputs, batch_first: bool) -> int:
    first = next(iter(x.values())) if isinstance(x, Mapping) else x
    return int(first.shape[0 if batch_first else 1])


def _train_batch(
    model: nn.Module,
    x: Inputs,
    target: torch.Tensor,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    tbptt: int | None,
    clip_grad_norm: float | None,
) -> tuple[float, list[SNNOutput]]:
    """One optimizer step per chunk; returns the mean chunk loss and the detached chunk outputs."""
    state, losses, outputs = None, [], []
    time_dim = 1 if _model_batch_first(model) else 0
    for chunk in [x] if tbptt is None else _split(x, tbptt, time_dim):
        output = model(chunk, state)
        loss = loss_fn(output, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        state = output.state.detach()
        losses.append(loss.item())
        spikes, states = output.layer_spikes.detach(), output.layer_states.detach()
        outputs.append(replace(output, layer_spikes=spikes, layer_states=states, state=state))
    return sum(losses) / len(losses), outputs


def _run_epoch(
    model: nn.Module,
    loader: Iterable[Any],
    desc: str,
    progress: bool,
    step: Callable[[Inputs, torch.Tensor], tuple[float, SNNOutput]],
    predict: Predict | None,
    batch_first: bool,
) -> tuple[_Meter, Any]:
    """Run ``step`` on every batch; returns the meter and the (still open) progress bar."""
    reference, model_batch_first = next(model.parameters()), _model_batch_first(model)
    meter, bar = _Meter(), _progress(loader, desc, progress)
    for x, target in loader:
        batch = _batch_size(x, batch_first)
        target = target.to(reference.device)
        loss, output = step(_prepare(x, reference, batch_first, model_batch_first), target)
        meter.add(loss, _correct(predict, output, target), batch)
        bar.set_postfix_str(_metrics_text(*meter.means()), refresh=False)
        bar.update()
    return meter, bar


def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    loss_fn: LossFn,
    *,
    predict: Predict | None = None,
    batch_first: bool = True,
) -> tuple[float, float | None]:
    """Mean loss and accuracy (``None`` if not measured) of ``model`` over ``loader``, no grad."""
    predict = getattr(loss_fn, "predict", None) if predict is None else predict
    was_training = model.training
    model.eval()

    def step(x: Inputs, target: torch.Tensor) -> tuple[float, SNNOutput]:
        output = model(x)
        return loss_fn(output, target).item(), output

    with torch.no_grad():
        meter, _ = _run_epoch(model, loader, "eval", False, step, predict, batch_first)
    model.train(was_training)
    return meter.means()


def fit(
    model: nn.Module,
    train_loader: Iterable[Any],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    val_loader: Iterable[Any] | None = None,
    *,
    predict: Predict | None = None,
    tbptt: int | None = None,
    clip_grad_norm: float | None = None,
    seed: int | None = None,
    batch_first: bool = True,
    progress: bool = True,
    epoch_end: Callable[[int], Any] | None = None,
) -> History:
    """Train ``model`` for ``epochs`` epochs; return the per-epoch :class:`History`.

    ``model`` is an :class:`~snngraph.SNN` or anything that calls one (e.g. wrapped in
    ``DistributedDataParallel``).  ``predict(output) -> [B]`` classes defaults to
    ``loss_fn.predict``.  ``tbptt``: chunk length for truncated BPTT (module docstring).
    ``clip_grad_norm``: clip the global gradient norm before each step.  ``seed`` seeds torch
    first, so data shuffling is the same on every run.  ``progress`` shows a tqdm bar per epoch
    with the running loss and accuracy (one printed line per epoch without tqdm).  The sampler's
    ``set_epoch`` is called each epoch when it has one (``DistributedSampler``).  ``epoch_end(epoch)``
    is called after each epoch (with its index from 0), after validation: a learning-rate
    scheduler's ``step``, or :class:`snngraph.delays.SigmaSchedule`'s, which anneals the Gaussian
    delay kernels.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if tbptt is not None and (not isinstance(tbptt, int) or tbptt < 1):
        raise ValueError(f"tbptt must be None (full BPTT) or a positive number of steps, got {tbptt!r}")
    if seed is not None:
        torch.manual_seed(seed)
    predict = getattr(loss_fn, "predict", None) if predict is None else predict

    def step(x: Inputs, target: torch.Tensor) -> tuple[float, SNNOutput]:
        loss, outputs = _train_batch(model, x, target, loss_fn, optimizer, tbptt, clip_grad_norm)
        return loss, SNNOutput.concat(outputs)

    history = History()
    for epoch in range(epochs):
        start = time.perf_counter()
        sampler = getattr(train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        model.train()
        meter, bar = _run_epoch(
            model, train_loader, f"epoch {epoch + 1}/{epochs}", progress, step, predict, batch_first
        )
        loss, accuracy = meter.means()
        history.train_loss.append(loss)
        if accuracy is not None:
            history.train_accuracy.append(accuracy)
        text = _metrics_text(loss, accuracy)
        if val_loader is not None:
            val_loss, val_accuracy = evaluate(model, val_loader, loss_fn, predict=predict, batch_first=batch_first)
            history.val_loss.append(val_loss)
            if val_accuracy is not None:
                history.val_accuracy.append(val_accuracy)
            text += " | " + _metrics_text(val_loss, val_accuracy, "val ")
        history.seconds.append(time.perf_counter() - start)
        bar.set_postfix_str(text)
        bar.close()
        if epoch_end is not None:
            epoch_end(epoch)
    return history


__all__ = ["History", "evaluate", "fit"]
