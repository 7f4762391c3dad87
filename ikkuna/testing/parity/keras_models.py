"""The parity networks in Keras 3 on TensorFlow, in three training styles (imports Keras on use)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import ikkuna
from ikkuna.testing.parity.specs import BATCH, LEARNING_RATE, Architecture

STYLES = ("fit", "eager", "tf.function")


def build(architecture: Architecture) -> Any:
    """The network as a ``keras.Sequential`` with the architecture's weights."""
    keras = _keras()
    layers = [keras.Input(_channels_last(architecture.input_shape))]
    for name, layer_type, shape in architecture.layers:
        if layer_type == "dense":
            layers.append(keras.layers.Dense(shape[0], name=name))
        elif layer_type == "conv2d":
            layers.append(keras.layers.Conv2D(shape[0], shape[2], padding="same", name=name))
        elif layer_type == "relu":
            layers.append(keras.layers.ReLU(name=name))
        elif layer_type == "tanh":
            layers.append(keras.layers.Activation("tanh", name=name))
        elif layer_type == "global_average_pool":
            layers.append(keras.layers.GlobalAveragePooling2D(name=name))
    model = keras.Sequential(layers, name=architecture.name)
    for name, params in architecture.weights().items():
        kernel = params["weight"]
        kernel = kernel.T if kernel.ndim == 2 else kernel.transpose(2, 3, 1, 0)
        model.get_layer(name).set_weights([kernel, params["bias"]])
    return model


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


def _channels_last(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*shape[1:], shape[0]) if len(shape) == 3 else shape


def _to_keras_inputs(inputs: np.ndarray) -> np.ndarray:
    return inputs.transpose(0, 2, 3, 1) if inputs.ndim == 4 else inputs


def train(architecture: Architecture, style: str = "fit", **attach_options: Any) -> ikkuna.Monitor:
    """Train ``architecture`` in ``style`` with ``ikkuna.attach(model, **attach_options)``."""
    keras = _keras()
    import tensorflow as tf

    model = build(architecture)
    optimizer = keras.optimizers.SGD(LEARNING_RATE)
    loss_function = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    batches = [(_to_keras_inputs(x), y) for x, y in architecture.batches()]
    if style == "fit":
        model.compile(optimizer=optimizer, loss=loss_function)
        with ikkuna.attach(model, **attach_options) as monitor:
            inputs = np.concatenate([x for x, _ in batches])
            labels = np.concatenate([y for _, y in batches])
            model.fit(inputs, labels, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        return monitor

    def step(inputs: Any, labels: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = loss_function(labels, model(inputs, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    if style == "tf.function":
        step = tf.function(step)
    with ikkuna.attach(model, optimizer=optimizer, **attach_options) as monitor:
        for inputs, labels in batches:
            loss = step(tf.constant(inputs), tf.constant(labels))
            monitor.log(loss=float(loss), labels=labels)
    return monitor
