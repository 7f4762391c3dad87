"""The Keras demo: the demo CNN trained with ``model.fit`` and SGD with momentum, monitored."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ikkuna.core.attach import attach
from ikkuna.core.monitor import Monitor
from ikkuna.demos.digits import load
from ikkuna.demos.progress import Progress
from ikkuna.demos.variants import BATCH_SIZE, HEALTHY, HIDDEN_BIASED, MOMENTUM, Variant


def build_model(variant: Variant = HEALTHY) -> Any:
    """The demo CNN (``variants.LAYERS``) on 8x8x1 channels-last images."""
    import keras

    layers = keras.layers
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        layers.Conv2D(8, 3, padding="same", name="conv1"), layers.ReLU(name="relu1"),
        layers.Conv2D(16, 3, padding="same", name="conv2"),
        layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="norm"),
        layers.ReLU(name="relu2"), layers.MaxPooling2D(2, name="pool"),
        layers.Flatten(name="flatten"), layers.Dense(32, name="hidden"),
        layers.ReLU(name="relu3"), layers.Dense(10, name="head"),
    ], name="digits_cnn")
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.Dense)):
            layer.kernel.assign(layer.kernel * variant.weight_scale)
        if variant.hidden_bias is not None and layer.name in HIDDEN_BIASED:
            bias = layer.beta if isinstance(layer, layers.BatchNormalization) else layer.bias
            bias.assign(np.full(bias.shape, variant.hidden_bias, dtype="float32"))
    return model


def train(variant: Variant, *, epochs: int, seed: int = 0, **attach_options: Any) -> tuple[Monitor, float]:
    """``model.fit`` with ikkuna attached; return the monitor and the held-out accuracy."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import ikkuna.keras

    keras.utils.set_random_seed(seed)
    data = load(seed=seed)
    model = build_model(variant)
    model.compile(optimizer=keras.optimizers.SGD(variant.learning_rate, momentum=MOMENTUM),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    steps_per_epoch = -(-len(data.train_labels) // BATCH_SIZE)
    with attach(model, **attach_options) as monitor:
        model.fit(data.train_images[..., None], data.train_labels, batch_size=BATCH_SIZE,
                  epochs=epochs, shuffle=True, verbose=0,
                  callbacks=[ikkuna.keras.Callback(monitor), _progress_callback(keras, epochs, steps_per_epoch)])
    _, accuracy = model.evaluate(data.test_images[..., None], data.test_labels, verbose=0)
    return monitor, float(accuracy)


def _progress_callback(keras: Any, epochs: int, steps_per_epoch: int) -> Any:
    """One progress bar per epoch with fit's running loss and accuracy."""

    class ProgressCallback(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.bar = Progress(steps_per_epoch, f"epoch {epoch + 1}/{epochs}")

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            logs = logs or {}
            self.bar.update(loss=float(logs.get("loss", np.nan)),
                            accuracy=float(logs.get("accuracy", np.nan)))

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.bar.close()

    return ProgressCallback()
