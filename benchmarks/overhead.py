"""Overhead of ikkuna on training loops, as median time ratios to the same loop without it.

    .venv/bin/python benchmarks/overhead.py [--framework torch keras jax] [--steps 30] [--rounds 5] [--json]

Each round times the loop without ikkuna and then with each configuration, on fresh copies of
the same model, so drift on the machine hits all of them alike; ratios are per round, and the
table shows their medians.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np

import ikkuna

CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "attached, no metrics": {"metrics": []},
    "default metrics, every step": {},
    "default metrics, every=10": {"every": 10},
}
BATCH = 64
CLASSES = 10
# A loop: (attach options or None, steps) -> seconds for those steps, after one warm-up step.
Loop = Callable[[Any, int], float]


def torch_loops() -> dict[str, Loop]:
    import torch

    torch.manual_seed(0)
    nn = torch.nn
    mlp = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    cnn = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10),
    )
    labels = torch.randint(0, CLASSES, (BATCH,), generator=torch.Generator().manual_seed(0))

    def loop(template: Any, inputs: Any) -> Loop:
        def timed(options: Any, steps: int) -> float:
            model = copy.deepcopy(template)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            monitor = None if options is None else ikkuna.attach(model, optimizer=optimizer, **options)

            def step() -> None:
                loss = torch.nn.functional.cross_entropy(model(inputs), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            return _time_steps(step, steps, monitor)

        return timed

    return {"torch mlp": loop(mlp, torch.randn(BATCH, 64)),
            "torch cnn": loop(cnn, torch.randn(BATCH, 3, 32, 32))}


def keras_loops() -> dict[str, Loop]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    layers = keras.layers
    rng = np.random.default_rng(0)

    def mlp() -> Any:
        return keras.Sequential([keras.Input((64,)), layers.Dense(128), layers.ReLU(),
                                 layers.Dense(64), layers.ReLU(), layers.Dense(10)])

    def cnn() -> Any:
        return keras.Sequential([
            keras.Input((32, 32, 3)),
            layers.Conv2D(32, 3, padding="same"), layers.BatchNormalization(), layers.ReLU(),
            layers.MaxPooling2D(), layers.Conv2D(64, 3, padding="same"),
            layers.BatchNormalization(), layers.ReLU(), layers.MaxPooling2D(), layers.Flatten(),
            layers.Dense(128), layers.ReLU(), layers.Dense(10),
        ])

    def loop(build: Callable[[], Any], shape: tuple[int, ...]) -> Loop:
        def timed(options: Any, steps: int) -> float:
            keras.utils.set_random_seed(0)
            model = build()
            model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            inputs = rng.standard_normal((BATCH * (steps + 1), *shape)).astype(np.float32)
            labels = rng.integers(0, CLASSES, BATCH * (steps + 1))
            monitor = None if options is None else ikkuna.attach(model, **options)
            model.fit(inputs[:BATCH], labels[:BATCH], batch_size=BATCH, verbose=0)  # trace
            start = time.perf_counter()
            model.fit(inputs[BATCH:], labels[BATCH:], batch_size=BATCH, verbose=0, shuffle=False)
            elapsed = time.perf_counter() - start
            if monitor is not None:
                monitor.detach()
            return elapsed

        return timed

    return {"keras fit mlp": loop(mlp, (64,)), "keras fit cnn": loop(cnn, (32, 32, 3))}


def jax_loops() -> dict[str, Loop]:
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs: Any) -> None:
            self.dense1 = nnx.Linear(64, 128, rngs=rngs)
            self.dense2 = nnx.Linear(128, 64, rngs=rngs)
            self.dense3 = nnx.Linear(64, 10, rngs=rngs)

        def __call__(self, x: Any) -> Any:
            return self.dense3(nnx.relu(self.dense2(nnx.relu(self.dense1(x)))))

    class CNN(nnx.Module):
        def __init__(self, rngs: Any) -> None:
            self.conv1 = nnx.Conv(3, 32, (3, 3), padding="SAME", rngs=rngs)
            self.norm1 = nnx.BatchNorm(32, rngs=rngs)
            self.conv2 = nnx.Conv(32, 64, (3, 3), padding="SAME", rngs=rngs)
            self.norm2 = nnx.BatchNorm(64, rngs=rngs)
            self.dense1 = nnx.Linear(64 * 8 * 8, 128, rngs=rngs)
            self.dense2 = nnx.Linear(128, 10, rngs=rngs)

        def __call__(self, x: Any) -> Any:
            pool = lambda y: nnx.max_pool(y, (2, 2), strides=(2, 2))  # noqa: E731
            x = pool(nnx.relu(self.norm1(self.conv1(x))))
            x = pool(nnx.relu(self.norm2(self.conv2(x))))
            return self.dense2(nnx.relu(self.dense1(x.reshape(x.shape[0], -1))))

    labels = jnp.asarray(np.random.default_rng(0).integers(0, CLASSES, BATCH))

    def loop(build: Callable[[Any], Any], shape: tuple[int, ...]) -> Loop:
        inputs = jnp.asarray(np.random.default_rng(1).standard_normal((BATCH, *shape)), jnp.float32)

        def timed(options: Any, steps: int) -> float:
            model = build(nnx.Rngs(0))
            optimizer = nnx.Optimizer(model, optax.sgd(0.01, momentum=0.9), wrt=nnx.Param)
            monitor = (None if options is None
                       else ikkuna.attach(model, optimizer=optimizer, **options))

            @nnx.jit
            def train_step(model: Any, optimizer: Any) -> Any:
                def loss_function(model: Any) -> Any:
                    logits = model(inputs)
                    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

                loss, grads = nnx.value_and_grad(loss_function)(model)
                optimizer.update(model, grads)
                return loss

            def step() -> None:
                jax.block_until_ready(train_step(model, optimizer))

            elapsed = _time_steps(step, steps, None)
            jax.effects_barrier()
            if monitor is not None:
                monitor.detach()
            return elapsed

        return timed

    return {"jax jit mlp": loop(MLP, (64,)), "jax jit cnn": loop(CNN, (32, 32, 3))}


def _time_steps(step: Callable[[], None], steps: int, monitor: Any) -> float:
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - start
    if monitor is not None:
        monitor.detach()
    return elapsed


LOOPS = {"torch": torch_loops, "keras": keras_loops, "jax": jax_loops}


def measure(loops: dict[str, Loop], steps: int, rounds: int, store: str) -> dict[str, dict[str, float]]:
    results = {}
    for name, timed in loops.items():
        ratios: dict[str, list[float]] = {config: [] for config in CONFIGURATIONS}
        for _ in range(rounds):
            for config, options in CONFIGURATIONS.items():
                baseline = timed(None, steps)
                ratios[config].append(timed({**options, "store": store}, steps) / baseline)
        results[name] = {config: statistics.median(values) for config, values in ratios.items()}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", nargs="+", choices=sorted(LOOPS), default=sorted(LOOPS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    loops: dict[str, Loop] = {}
    for framework in args.framework:
        loops.update(LOOPS[framework]())
    with tempfile.TemporaryDirectory() as store:
        results = measure(loops, args.steps, args.rounds, store)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    if args.json:
        json.dump({"machine": machine, "steps": args.steps, "rounds": args.rounds,
                   "ratios": results}, sys.stdout, indent=2)
        print()
        return 0
    print(f"median time ratio to the same loop without ikkuna ({machine}; "
          f"{args.rounds} rounds x {args.steps} steps)")
    print(f"| configuration | {' | '.join(results)} |")
    print(f"|---|{'---|' * len(results)}")
    for config in CONFIGURATIONS:
        print(f"| {config} | {' | '.join(f'{results[name][config]:.2f}' for name in results)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
