"""Keras trainings on digits with ``model.fit`` for the doctor: healthy MLP and CNN, a layer
that returns x/0 from a known step, a learning rate far too high.

Nothing here imports keras at import time: builders take the module from the test's fixture.
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any

import ikkuna
from ikkuna.demos.digits import load

BATCH = 32


def breaking_dense(keras: ModuleType, step: int) -> type:
    """A Dense layer whose output is divided by 0 from training step ``step`` on (it counts
    its training calls in a non-trainable variable, so the switch happens inside fit's graph)."""

    class Breaks(keras.layers.Dense):
        def build(self, input_shape: Any) -> None:
            super().build(input_shape)
            self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                         name="calls")

        def call(self, inputs: Any, training: bool = False) -> Any:
            outputs = super().call(inputs)
            if training:
                self.calls.assign_add(1.0)
            # divide by a 0 or a 1 (not where(x / 0, x): its gradient is 0 * inf = nan anyway)
            return outputs / keras.ops.where(self.calls > step, 0.0, 1.0)

    return Breaks


def mlp(keras: ModuleType, breaks_from: int | None = None, activation: str = "relu") -> Any:
    """Dense ``dense1`` -> Dense ``dense2`` (x/0 from step ``breaks_from``) -> Dense ``head``
    on 64 features; ``activation`` after the first two."""
    layers = keras.layers
    second = layers.Dense if breaks_from is None else breaking_dense(keras, breaks_from)
    return keras.Sequential([
        keras.Input((64,)),
        layers.Dense(32, activation=activation, name="dense1"),
        second(32, activation=activation, name="dense2"),
        layers.Dense(10, name="head"),
    ], name="digits_mlp")


def cnn(keras: ModuleType) -> Any:
    """Conv2D ``conv`` (ReLU) -> MaxPooling2D ``pool`` -> Flatten ``flatten`` -> Dense ``hidden``
    (ReLU) -> Dense ``head`` on 8x8x1 images."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        layers.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
        layers.MaxPooling2D(2, name="pool"),
        layers.Flatten(name="flatten"),
        layers.Dense(32, activation="relu", name="hidden"),
        layers.Dense(10, name="head"),
    ], name="digits_cnn")


def fit(keras: ModuleType, model: Any, *, lr: float = 0.05, momentum: float = 0.9,
        epochs: int = 3, steps: int | None = None, images: bool = False, run: str = "keras",
        ignore_warnings: bool = True, **attach: Any) -> ikkuna.Monitor:
    """``model.fit`` on digits in batches of BATCH (45 steps an epoch; ``steps`` stops the
    one epoch early), monitored with ikkuna (``attach`` options)."""
    digits = load()
    inputs = digits.train_images[..., None] if images else digits.train_images.reshape(-1, 64)
    model.compile(optimizer=keras.optimizers.SGD(lr, momentum=momentum),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with warnings.catch_warnings():
        if ignore_warnings:
            warnings.simplefilter("ignore", ikkuna.TrainingWarning)
        with ikkuna.attach(model, run=run, **attach) as monitor:
            model.fit(inputs, digits.train_labels, batch_size=BATCH,
                      epochs=1 if steps else epochs, steps_per_epoch=steps, shuffle=True,
                      verbose=0)
    return monitor
