"""Flax NNX trainings on digits with a jitted step for the doctor: healthy MLP and CNN, a
layer that returns x/0 from a known step, a learning rate far too high.

Nothing here imports jax at import time; call the builders after the test's ``jax`` fixture.
Layers are assigned in forward order (the JAX adapter lists them in assignment order).
"""

from __future__ import annotations

import functools
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np

import ikkuna
from ikkuna.demos.digits import load
from ikkuna.testing.parity.jax_models import cross_entropy_step

BATCH = 32


@functools.cache
def _classes() -> SimpleNamespace:
    import jax.numpy as jnp
    from flax import nnx

    class Breaks(nnx.Linear):
        """A Linear whose output is divided by 0 from training step ``step`` on (it counts its
        calls in a variable that the jitted step carries)."""

        def __init__(self, *args: Any, step: int, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.step = step
            self.calls = nnx.Variable(jnp.zeros(()))

        def __call__(self, x: Any) -> Any:
            self.calls[...] = self.calls[...] + 1
            return super().__call__(x) / jnp.where(self.calls[...] > self.step, 0.0, 1.0)

    class MLP(nnx.Module):
        """Linear ``dense1`` -> act -> Linear ``dense2`` (x/0 from ``breaks_from``) -> act ->
        Linear ``head``."""

        def __init__(self, rngs: Any, breaks_from: int | None = None, activation: str = "relu"):
            self.dense1 = nnx.Linear(64, 32, rngs=rngs)
            self.dense2 = (nnx.Linear(32, 32, rngs=rngs) if breaks_from is None
                           else Breaks(32, 32, step=breaks_from, rngs=rngs))
            self.head = nnx.Linear(32, 10, rngs=rngs)
            self.activation = getattr(nnx, activation)

        def __call__(self, x: Any) -> Any:
            x = self.activation(self.dense2(self.activation(self.dense1(x))))
            return self.head(x)

    class CNN(nnx.Module):
        """Conv ``conv`` (3x3, 8 channels) -> relu -> max pool -> Linear ``dense`` -> relu ->
        Linear ``head`` on 8x8x1 images."""

        def __init__(self, rngs: Any):
            self.conv = nnx.Conv(1, 8, (3, 3), padding="SAME", rngs=rngs)
            self.dense = nnx.Linear(4 * 4 * 8, 32, rngs=rngs)
            self.head = nnx.Linear(32, 10, rngs=rngs)

        def __call__(self, x: Any) -> Any:
            x = nnx.max_pool(nnx.relu(self.conv(x)), (2, 2), strides=(2, 2))
            return self.head(nnx.relu(self.dense(x.reshape(x.shape[0], -1))))

    return SimpleNamespace(MLP=MLP, CNN=CNN)


def mlp(breaks_from: int | None = None, activation: str = "relu", seed: int = 0) -> Any:
    from flax import nnx

    return _classes().MLP(nnx.Rngs(seed), breaks_from, activation)


def cnn(seed: int = 0) -> Any:
    from flax import nnx

    return _classes().CNN(nnx.Rngs(seed))


def train(model: Any, *, lr: float = 0.05, momentum: float = 0.9, steps: int = 135,
          images: bool = False, run: str = "jax", ignore_warnings: bool = True,
          **attach: Any) -> ikkuna.Monitor:
    """``steps`` jitted SGD steps on shuffled digits, the loss logged after each."""
    import optax
    from flax import nnx

    digits = load()
    inputs = digits.train_images[..., None] if images else digits.train_images.reshape(-1, 64)
    labels = digits.train_labels.astype(np.int32)
    sgd = optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=momentum or None)
    optimizer = nnx.Optimizer(model, sgd, wrt=nnx.Param)

    step = nnx.jit(cross_entropy_step())

    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        if ignore_warnings:
            warnings.simplefilter("ignore", ikkuna.TrainingWarning)
        with ikkuna.attach(model, optimizer=optimizer, run=run, **attach) as monitor:
            for _ in range(steps):
                index = rng.choice(len(labels), BATCH, replace=False)
                loss = step(model, optimizer, inputs[index], labels[index])
                monitor.log(loss=float(loss))
    return monitor
