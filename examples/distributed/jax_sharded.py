"""JAX with ikkuna: a jitted Flax NNX step over a batch sharded across devices (jax.sharding).

    XLA_FLAGS=--xla_force_host_platform_device_count=2 \\
        .venv/bin/python examples/distributed/jax_sharded.py [--store DIR] [--steps N]

One process drives every device. The batch is split over a ``("data",)`` mesh with
``PartitionSpec("data")``, the weights and optimizer state are replicated, and the step is
an ordinary ``nnx.jit``. ``ikkuna.attach`` is called as without sharding: each step's values
reach the host once, as the global arrays (the whole batch's activations, the gradient the
optimizer applies), not once per device. Without XLA_FLAGS this script asks XLA for 2 CPU
devices itself; on a machine with several accelerators, their devices are used instead.
"""

from __future__ import annotations

import os
import sys

if "jax" not in sys.modules and "xla_force_host_platform_device_count" not in os.environ.get(
        "XLA_FLAGS", ""):  # must happen before jax is imported
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=2").strip()

import argparse

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import ikkuna


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.dense1 = nnx.Linear(20, 64, rngs=rngs)
        self.dense2 = nnx.Linear(64, 64, rngs=rngs)
        self.head = nnx.Linear(64, 4, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(nnx.relu(self.dense2(nnx.relu(self.dense1(x)))))


@nnx.jit
def train_step(model: MLP, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
    def loss_fn(model: MLP) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="ikkuna-runs")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=64, help="global batch (all devices)")
    options = parser.parse_args()

    devices = jax.devices()
    mesh = Mesh(np.array(devices), ("data",))
    data = NamedSharding(mesh, PartitionSpec("data"))   # batch axis split over the devices
    replicated = NamedSharding(mesh, PartitionSpec())   # every device holds all weights
    print(f"training on {len(devices)} devices: {', '.join(str(d) for d in devices)}")
    if options.batch % len(devices):
        parser.error(f"--batch must be a multiple of the {len(devices)} devices")

    model = MLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.inject_hyperparams(optax.adam)(learning_rate=1e-3),
                              wrt=nnx.Param)
    for owner in (model, optimizer):
        nnx.update(owner, jax.device_put(nnx.state(owner), replicated))

    generator = np.random.default_rng(0)
    with ikkuna.attach(model, optimizer=optimizer, store=options.store,
                       run="jax-sharded-example") as monitor:
        for _ in range(options.steps):
            inputs = generator.normal(size=(options.batch, 20)).astype(np.float32)
            labels = inputs[:, :4].argmax(axis=1).astype(np.int32)
            x, y = jax.device_put(inputs, data), jax.device_put(labels, data)
            monitor.log(loss=train_step(model, optimizer, x, y))
    print(f"stored run {monitor.run!r} in {monitor.store_path}; see it with: "
          f"ikkuna show {monitor.run} --store {options.store}")


if __name__ == "__main__":
    main()
