"""PyTorch DDP with ikkuna: two processes on this machine (gloo), one global series per layer.

    .venv/bin/python examples/distributed/torch_ddp.py [--ranks mean|max|all|rank0] [--store DIR]

Every rank calls ``ikkuna.attach`` on its ``DistributedDataParallel`` model; with
``ranks="mean"`` rank 0 stores each value averaged over the ranks.
"""

from __future__ import annotations

import argparse
import socket
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import ikkuna

WORLD_SIZE = 2


def train(rank: int, port: int, ranks: str, store: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD_SIZE, timeout=timedelta(seconds=60))
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Sequential(
        torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(100 + rank)  # each rank its own data
    with ikkuna.attach(model, optimizer=optimizer, store=store, run="ddp-example",
                       ranks=ranks) as monitor:
        for _ in range(50):
            inputs = torch.randn(32, 20, generator=generator)
            labels = inputs[:, :4].argmax(dim=1)
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(inputs), labels)
            loss.backward()
            optimizer.step()
            monitor.log(loss=loss.detach())
    if rank == 0:
        print(f"stored run {monitor.run!r} in {monitor.store_path}; see it with: "
              f"ikkuna show {monitor.run} --store {store}")
    dist.barrier()  # gloo may abort a rank whose peer tears the group down mid-exchange
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="mean", choices=["mean", "max", "all", "rank0"])
    parser.add_argument("--store", default="ikkuna-runs")
    options = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(train, args=(port, options.ranks, options.store), nprocs=WORLD_SIZE, join=True)


if __name__ == "__main__":
    main()
