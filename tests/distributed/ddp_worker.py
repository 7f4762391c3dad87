"""One rank of a 2-process DDP training on 127.0.0.1 with gloo (run by test_torch_ddp.py).

Usage: python -m tests.distributed.ddp_worker RANK WORLD_SIZE PORT STORE MODE [FAIL_ON_RANK]
Rank r trains on its half of a fixed batch; with DDP the applied gradient is the mean over
the ranks, i.e. the full batch's gradient.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist

import ikkuna

STEPS = 3
BATCH = 16  # the full batch; each of the 2 ranks gets half
FEATURES, HIDDEN, CLASSES = 6, 8, 3
METRICS = ["gradient_norm", "weight_norm", "activation_mean"]


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(FEATURES, HIDDEN), torch.nn.Tanh(),
                               torch.nn.Linear(HIDDEN, CLASSES))


def full_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return (torch.randn(BATCH, FEATURES, generator=generator),
            torch.randint(0, CLASSES, (BATCH,), generator=generator))


class FailsOnOneRank(ikkuna.Metric):
    """Raises on the rank given in the command line, from the second step on."""

    name = "fails_on_one_rank"
    needs = ("weights",)
    rank = -1

    def compute(self, group):
        if dist.get_rank() == self.rank and group.step >= 1:
            raise RuntimeError("deliberate failure")
        return 1.0


def main() -> None:
    rank, world, port, store, mode = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                      sys.argv[4], sys.argv[5])
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=60))
    try:
        network = torch.nn.parallel.DistributedDataParallel(model())
        optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
        inputs, labels = full_batch()
        half = BATCH // world
        inputs, labels = inputs[rank * half:(rank + 1) * half], labels[rank * half:(rank + 1) * half]
        metrics: list = list(METRICS)
        if len(sys.argv) > 6:
            FailsOnOneRank.rank = int(sys.argv[6])
            metrics.append(FailsOnOneRank())
        losses = []
        attached = (ikkuna.attach(network, optimizer=optimizer, metrics=metrics, store=store,
                                  run="ddp", ranks=mode) if mode != "none" else None)
        with attached or contextlib.nullcontext() as monitor:
            for _ in range(STEPS):
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(network(inputs), labels)
                loss.backward()
                optimizer.step()
                if monitor is not None:
                    monitor.log(loss=loss.detach())
                losses.append(float(loss.detach()))
        run = monitor.run if monitor is not None else None
        print(f"rank {rank} finished {len(losses)} steps, run {run}", flush=True)
        dist.barrier()  # gloo may abort a rank whose peer tears the group down mid-exchange
    finally:
        # DDP's reducer holds the group: freed here, while the group and its threads are alive,
        # not by the interpreter's teardown
        network = optimizer = attached = monitor = None
        gc.collect()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
    # Skip the interpreter's teardown of torch's C++ objects: in about one full test run of
    # ten, a rank that had finished (its last line printed, ikkuna detached and its store
    # closed) then aborted with "terminate called without an active exception". ikkuna's work
    # ends at detach(), which the tests check through the store.
    sys.stdout.flush()
    os._exit(0)
