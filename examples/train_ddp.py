"""Data-parallel training with PyTorch's DistributedDataParallel (DDP), unchanged.

The SNN is a plain ``torch.nn.Module``, so DDP wraps it as any other: every process runs the
same model on its share of each batch (``DistributedSampler``), and DDP averages the gradients
across processes during ``backward``, so every process takes the same optimizer step.  Launch
with torchrun; gloo on CPU, NCCL on GPUs (one process per GPU)::

    torchrun --nproc_per_node=2 examples/train_ddp.py                         # 2 CPU processes
    torchrun --nproc_per_node=4 examples/train_ddp.py --backend reference     # 4 GPUs
    python examples/train_ddp.py --epochs 1 --samples 8 --hidden 8            # 1 process

``--batch-size`` is per process: the global batch is that times the number of processes.
The task and network are those of ``train_randman.py``.
"""

from __future__ import annotations

import argparse
import os
import socket

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, random_split
from torch.utils.data.distributed import DistributedSampler
from train_randman import add_training_args, build_graph

import snngraph
from snngraph import plot
from snngraph.datasets import randman
from snngraph.losses import MembraneLoss
from snngraph.train import evaluate, fit


def init_distributed() -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes (or a group of one); rank, world size, device."""
    if "RANK" not in os.environ:  # plain `python train_ddp.py`: a group of one on localhost
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl")
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size(), device


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_training_args(parser, epochs=10, hidden=64, max_delay=8, lr=5e-3)
    parser.add_argument("--samples", type=int, default=200, help="Randman samples per class")
    args = parser.parse_args(argv)

    rank, world, device = init_distributed()
    # every process builds the same data and initial model from the same seed
    data = randman(n_classes=10, n_channels=20, steps=50, samples_per_class=args.samples, seed=args.seed)
    train, test = random_split(data, [0.8, 0.2], generator=torch.Generator().manual_seed(args.seed))
    sampler = DistributedSampler(train, shuffle=True, seed=args.seed)  # fit calls sampler.set_epoch
    train_loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler)
    graph = build_graph(20, args.hidden, 10, max_delay=args.max_delay, neuron=args.neuron, seed=args.seed)
    model = snngraph.SNN(snngraph.compile(graph), backend=args.backend).to(device)
    ddp_model = DistributedDataParallel(model)
    loss_fn = MembraneLoss("readout", over="max")
    optimizer = torch.optim.Adam(ddp_model.parameters(), lr=args.lr)
    if rank == 0:
        print(f"{world} process(es) on {device}, {args.batch_size} samples each per step")
    history = fit(ddp_model, train_loader, loss_fn, optimizer, args.epochs, seed=args.seed, progress=rank == 0)

    if rank == 0:  # the plain module: no collective calls, so the other ranks need not join
        _, accuracy = evaluate(model, DataLoader(test, batch_size=256), loss_fn)
        print(f"test accuracy {accuracy:.3f}")
        args.out.mkdir(parents=True, exist_ok=True)
        plot.training(history).savefig(args.out / "ddp_training.png", dpi=100)
        print(f"saved {args.out / 'ddp_training.png'}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
