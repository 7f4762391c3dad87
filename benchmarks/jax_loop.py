"""The JAX loop: a Flax NNX train step under ``nnx.jit``, optax SGD with momentum.

The optimizer is ``optax.inject_hyperparams(optax.sgd)`` so that ikkuna can read the learning
rate. Every step waits for its loss; the timing ends after ``jax.effects_barrier()``, so the
host callbacks that carry ikkuna's values are counted. Each run jits a new step function.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import ikkuna
from benchmarks.architectures import channels_last, classes
from benchmarks.workloads import BATCH, LEARNING_RATE, MOMENTUM, time_steps
from ikkuna.demos.nnx_layers import nnx_layers
from ikkuna.testing.parity.jax_models import cross_entropy_step
from ikkuna.testing.parity.specs import Architecture


def build(architecture: Architecture) -> Any:
    """An NNX module whose attributes carry the architecture's layer names, called in order."""
    from flax import nnx

    layers = nnx_layers()
    simple = {"relu": layers.ReLU, "tanh": layers.Tanh, "max_pool": layers.MaxPool,
              "flatten": layers.Flatten}

    class Network(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.order = tuple(name for name, _, _ in architecture.layers)
            for name, kind, shape in architecture.layers:
                if kind == "dense":
                    layer: Any = nnx.Linear(shape[1], shape[0], rngs=rngs)
                elif kind == "conv2d":
                    layer = nnx.Conv(shape[1], shape[0], (shape[2], shape[3]), padding="SAME",
                                     rngs=rngs)
                elif kind in simple:
                    layer = simple[kind]()
                else:
                    raise ValueError(f"the JAX loop has no layer type {kind!r}")
                setattr(self, name, layer)

        def __call__(self, x: Any) -> Any:
            for name in self.order:
                x = getattr(self, name)(x)
            return x

    return Network(nnx.Rngs(0))


def parameters(architecture: Architecture) -> int:
    import jax
    from flax import nnx

    return sum(leaf.size for leaf in jax.tree.leaves(nnx.state(build(architecture), nnx.Param)))


def training_state(architecture: Architecture) -> tuple[Any, Any, Any, Any]:
    """A new model of ``architecture``, its optimizer (SGD with momentum, the learning rate
    readable) and a fixed batch's inputs and labels."""
    import jax
    import optax
    from flax import nnx

    rng = np.random.default_rng(1)
    inputs = jax.numpy.asarray(
        rng.standard_normal((BATCH, *channels_last(architecture.input_shape)), np.float32))
    labels = jax.numpy.asarray(rng.integers(0, classes(architecture), BATCH))
    model = build(architecture)
    transform = optax.inject_hyperparams(optax.sgd)(learning_rate=LEARNING_RATE,
                                                    momentum=MOMENTUM)
    return model, nnx.Optimizer(model, transform, wrt=nnx.Param), inputs, labels


def run(architecture: Architecture, options: dict[str, Any] | None, steps: int) -> float:
    import jax
    from flax import nnx

    model, optimizer, inputs, labels = training_state(architecture)
    monitor = None if options is None else ikkuna.attach(model, optimizer=optimizer, **options)

    train_step = nnx.jit(cross_entropy_step())

    def step() -> None:
        jax.block_until_ready(train_step(model, optimizer, inputs, labels))

    try:
        return time_steps(step, steps, jax.effects_barrier)
    finally:
        if monitor is not None:
            monitor.detach()
