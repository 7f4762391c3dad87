"""The Keras 3 loop: ``model.fit`` without callbacks over in-memory data (TensorFlow backend).

The warm-up is a first ``fit`` of :data:`WARMUP_STEPS` batches (it traces the train function);
the timed ``fit`` reuses it. The batches come from a ``tf.data`` pipeline with autotuning
switched off (:func:`batches`): with it on (as when ``fit`` is given numpy arrays), about half
of the fresh CNN models on this 2-core machine train at half speed, with or without ikkuna
(measured: 7 of 14 against 0 of 14), which made single rounds of the benchmark meaningless.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

import ikkuna
from benchmarks.architectures import channels_last, classes
from benchmarks.workloads import BATCH, LEARNING_RATE, MOMENTUM, WARMUP_STEPS
from ikkuna.testing.parity.specs import Architecture


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def build(architecture: Architecture) -> Any:
    """A ``keras.Sequential`` whose layers carry the architecture's layer names."""
    keras = _keras()
    layers = keras.layers
    model_layers: list[Any] = [keras.Input(channels_last(architecture.input_shape))]
    for name, kind, shape in architecture.layers:
        if kind == "dense":
            model_layers.append(layers.Dense(shape[0], name=name))
        elif kind == "conv2d":
            model_layers.append(layers.Conv2D(shape[0], shape[2], padding="same", name=name))
        elif kind == "relu":
            model_layers.append(layers.ReLU(name=name))
        elif kind == "tanh":
            model_layers.append(layers.Activation("tanh", name=name))
        elif kind == "max_pool":
            model_layers.append(layers.MaxPooling2D(name=name))
        elif kind == "flatten":
            model_layers.append(layers.Flatten(name=name))
        else:
            raise ValueError(f"the Keras loop has no layer type {kind!r}")
    return keras.Sequential(model_layers, name=architecture.name)


def parameters(architecture: Architecture) -> int:
    return int(build(architecture).count_params())


def training_data(architecture: Architecture, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and labels for the warm-up batches and ``steps`` timed ones."""
    rng = np.random.default_rng(1)
    samples = BATCH * (WARMUP_STEPS + steps)
    inputs = rng.standard_normal((samples, *channels_last(architecture.input_shape)), np.float32)
    return inputs, rng.integers(0, classes(architecture), samples)


def compiled_model(architecture: Architecture) -> Any:
    """A new model of ``architecture`` (seeded), compiled with SGD and cross-entropy."""
    keras = _keras()
    keras.utils.set_random_seed(0)
    model = build(architecture)
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def batches(inputs: np.ndarray, labels: np.ndarray) -> Any:
    """A ``tf.data.Dataset`` of the arrays in batches of :data:`BATCH`, in order, with
    ``tf.data``'s autotuning off (see the module's docstring)."""
    _keras()
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    dataset = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(BATCH)
    return dataset.with_options(options)


def timed_fit(model: Any, inputs: np.ndarray, labels: np.ndarray) -> float:
    """Seconds of a ``fit`` over the timed batches, after one over the warm-up batches."""
    warmup = BATCH * WARMUP_STEPS
    model.fit(batches(inputs[:warmup], labels[:warmup]), shuffle=False, verbose=0)
    timed = batches(inputs[warmup:], labels[warmup:])
    start = time.perf_counter()
    model.fit(timed, shuffle=False, verbose=0)
    return time.perf_counter() - start


def run(architecture: Architecture, options: dict[str, Any] | None, steps: int) -> float:
    inputs, labels = training_data(architecture, steps)
    model = compiled_model(architecture)
    monitor = None if options is None else ikkuna.attach(model, **options)
    try:
        return timed_fit(model, inputs, labels)
    finally:
        if monitor is not None:
            monitor.detach()
