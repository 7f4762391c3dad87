"""A monitored torch training that reports each finished step on stdout (for the crash and
concurrency tests). Usage: python -m tests.reliability.store_writer STORE RUN STEPS"""

from __future__ import annotations

import sys

import torch

import ikkuna


def main() -> None:
    store, run, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    inputs, labels = torch.randn(32, 8), torch.randint(0, 3, (32,))
    with ikkuna.attach(model, optimizer=optimizer, store=store, run=run) as monitor:
        for step in range(steps):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(inputs), labels)
            loss.backward()
            optimizer.step()
            monitor.log(loss=loss.detach())
            print(f"finished {step}", flush=True)
    print("detached", flush=True)


if __name__ == "__main__":
    main()
