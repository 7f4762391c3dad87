"""Overhead of ikkuna on a torch training loop, as median ratios to the same loop without it.

    .venv/bin/python benchmarks/overhead.py [--steps 50] [--rounds 5] [--json]

Configurations alternate within each round (none, then each attached variant, on fresh
copies of the same model), so drift on the machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import tempfile
import time

import ikkuna

CONFIGURATIONS = {
    "attached, no metrics": dict(metrics=[]),
    "default metrics, every step": dict(),
    "default metrics, every=10": dict(every=10),
}


def build_models(torch):
    nn = torch.nn
    mlp = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    cnn = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10),
    )
    return {
        "mlp (batch 64)": (mlp, torch.randn(64, 64)),
        "cnn 32x32x3 (batch 64)": (cnn, torch.randn(64, 3, 32, 32)),
    }


def time_loop(torch, model, inputs, steps: int, options: dict | None, store: str) -> float:
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    labels = torch.randint(0, 10, (inputs.shape[0],), generator=torch.Generator().manual_seed(0))
    monitor = ikkuna.attach(model, optimizer=optimizer, store=store, **options) if options is not None else None

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - start
    if monitor is not None:
        monitor.detach()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.manual_seed(0)
    results = {}
    with tempfile.TemporaryDirectory() as store:
        for model_name, (model, inputs) in build_models(torch).items():
            ratios = {name: [] for name in CONFIGURATIONS}
            for _ in range(args.rounds):
                for name, options in CONFIGURATIONS.items():
                    baseline = time_loop(torch, model, inputs, args.steps, None, store)
                    ratios[name].append(time_loop(torch, model, inputs, args.steps, options, store) / baseline)
            results[model_name] = {name: statistics.median(v) for name, v in ratios.items()}
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    if args.json:
        json.dump({"machine": machine, "steps": args.steps, "rounds": args.rounds, "ratios": results}, sys.stdout, indent=2)
        print()
        return 0
    print(f"median time ratio to the same loop without ikkuna ({machine}; {args.rounds} rounds x {args.steps} steps)")
    print(f"| configuration | {' | '.join(results)} |")
    print(f"|---|{'---|' * len(results)}")
    for name in CONFIGURATIONS:
        print(f"| {name} | {' | '.join(f'{results[m][name]:.3f}' for m in results)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
