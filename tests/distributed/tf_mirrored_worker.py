"""Keras ``fit`` under ``tf.distribute.MirroredStrategy`` on two logical CPU devices, with and
without ikkuna, and a single-device reference (run by test_tf_mirrored.py in a subprocess:
the logical devices must be configured before TensorFlow initializes). TensorFlow is imported
inside the functions, so that the test can import the constants without it.

Usage: python -m tests.distributed.tf_mirrored_worker STORE RESULT_JSON [--eager]

Writes RESULT_JSON: the replica count, the optimizer steps, the per-batch losses and final
weights of the run with ikkuna (run ``mirrored`` in STORE, attached with
``ikkuna.keras.Callback``, default metrics) and of the same run without it, and what one
device computes on the full global batch from the same initial weights (gradient norms,
losses, activation mean and std per layer and step). ``--eager``: fit with
``run_eagerly=True``.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

REPLICAS = 2
GLOBAL_BATCH = 16  # each replica gets 8
STEPS_PER_EPOCH, EPOCHS = 3, 2
FEATURES, HIDDEN, CLASSES = 6, 8, 3
LEARNING_RATE = 0.1
RUN = "mirrored"
ROLES = {"kernel": "weight", "bias": "bias"}


def logical_cpus(count: int = REPLICAS) -> list[str]:
    """Split the one physical CPU into ``count`` logical devices (before TF initializes)."""
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    size = GLOBAL_BATCH * STEPS_PER_EPOCH
    return (rng.normal(size=(size, FEATURES)).astype("float32"),
            rng.integers(0, CLASSES, size).astype("int32"))


def build(keras):
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((FEATURES,)),
        keras.layers.Dense(HIDDEN, activation="tanh", name="hidden"),
        keras.layers.Dense(CLASSES, name="out"),
    ])


def loss_function(keras):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def train(keras, strategy, initial, callbacks, eager: bool):
    """fit under ``strategy`` from ``initial`` weights; the model and its per-batch losses."""

    class BatchLosses(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.losses = []

        def on_train_batch_end(self, batch, logs=None):
            self.losses.append(float(logs["loss"]))  # Keras' running mean over the epoch

    with strategy.scope():
        model = build(keras)
        model.set_weights(initial)
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss=loss_function(keras),
                      run_eagerly=eager)
    losses = BatchLosses()
    x, y = data()
    model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[*callbacks, losses])
    return model, losses.losses


def reference(keras, initial) -> dict:
    """One device, no strategy, the whole global batch per step, the same SGD steps."""
    import tensorflow as tf

    model = build(keras)
    model.set_weights(initial)
    optimizer = keras.optimizers.SGD(LEARNING_RATE)
    loss_fn = loss_function(keras)
    hidden, out = model.get_layer("hidden"), model.get_layer("out")
    x, y = data()
    found: dict = {"gradient_norm": {}, "loss": {}, "activation_mean": {}, "activation_std": {}}
    step = 0
    for _ in range(EPOCHS):
        for index in range(STEPS_PER_EPOCH):
            batch = slice(index * GLOBAL_BATCH, (index + 1) * GLOBAL_BATCH)
            with tf.GradientTape() as tape:
                activations = {"hidden": hidden(x[batch])}
                activations["out"] = out(activations["hidden"])
                loss = loss_fn(y[batch], activations["out"])
            variables = model.trainable_variables
            gradients = tape.gradient(loss, variables)
            for layer in (hidden, out):
                for variable in layer.trainable_variables:
                    gradient = gradients[[id(v) for v in variables].index(id(variable))]
                    key = f"{layer.name}/{ROLES[variable.name]}/{step}"
                    found["gradient_norm"][key] = float(
                        np.linalg.norm(np.asarray(gradient, dtype=np.float64)))
                value = np.asarray(activations[layer.name], dtype=np.float64)
                found["activation_mean"][f"{layer.name}/{step}"] = float(value.mean())
                found["activation_std"][f"{layer.name}/{step}"] = float(value.std())
            found["loss"][str(step)] = float(loss)
            optimizer.apply(gradients, variables)
            step += 1
    return found


def main() -> None:
    store, result_path = sys.argv[1], sys.argv[2]
    eager = "--eager" in sys.argv[3:]
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    devices = logical_cpus()
    import keras
    import tensorflow as tf

    import ikkuna

    strategy = tf.distribute.MirroredStrategy(devices)
    assert strategy.num_replicas_in_sync == REPLICAS, strategy.num_replicas_in_sync
    initial = build(keras).get_weights()
    watched, losses_with = train(keras, strategy, initial,
                                 [ikkuna.keras.Callback(run=RUN, store=store)], eager)
    plain, losses_without = train(keras, strategy, initial, [], eager)
    result = {
        "replicas": strategy.num_replicas_in_sync,
        "devices": devices,
        "optimizer_steps": int(watched.optimizer.iterations.numpy()),
        "losses_with": losses_with,
        "losses_without": losses_without,
        "weights_with": [w.tolist() for w in watched.get_weights()],
        "weights_without": [w.tolist() for w in plain.get_weights()],
        "reference": reference(keras, initial),
    }
    with open(result_path, "w") as file:
        json.dump(result, file)
    print(f"trained {result['optimizer_steps']} steps on {strategy.num_replicas_in_sync} "
          f"replicas ({', '.join(devices)})", flush=True)


if __name__ == "__main__":
    main()
