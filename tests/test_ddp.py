"""DistributedDataParallel works unchanged: 2 CPU processes (gloo, localhost) average their
gradients to the single-process gradient of the whole batch."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tiny_tasks import CHANNELS, CLASSES, tiny_classifier
from torch.nn.parallel import DistributedDataParallel

from snngraph.losses import MembraneLoss

WORLD, BATCH, STEPS = 2, 6, 19


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    x = (torch.rand(STEPS, BATCH, CHANNELS, generator=generator) < 0.3).double()
    return x, torch.randint(0, CLASSES, (BATCH,), generator=generator)


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def worker(rank: int, port: int, out: Path) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        model = DistributedDataParallel(tiny_classifier(dtype=torch.float64))
        x, labels = batch()
        share = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
        MembraneLoss("readout")(model(x[:, share]), labels[share]).backward()
        torch.save(gradients(model.module), out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ddp_gradients_equal_the_whole_batch_gradient(tmp_path: Path) -> None:
    mp.spawn(worker, args=(free_port(), tmp_path), nprocs=WORLD, join=True)
    model = tiny_classifier(dtype=torch.float64)
    x, labels = batch()
    MembraneLoss("readout")(model(x), labels).backward()
    expected = gradients(model)
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got.keys() == expected.keys()
        for name, grad in expected.items():
            assert grad.abs().max() > 0
            torch.testing.assert_close(got[name], grad, rtol=1e-12, atol=1e-14)
