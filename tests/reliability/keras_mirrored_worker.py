"""Keras ``fit`` of a Dense layer, then a separate ``Activation`` layer, under
``tf.distribute.MirroredStrategy`` on two logical CPUs, with ikkuna recording the Dense
layer's output and without ikkuna (run in a subprocess by ``test_non_interference.py``: the
logical devices must be configured before TensorFlow initializes).

Usage: python -m tests.reliability.keras_mirrored_worker ACTIVATION STORE RESULT_JSON
Writes RESULT_JSON: the replica count, the per-batch losses and final weights of both runs,
and the layers ikkuna recorded.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from tests.distributed.tf_mirrored_worker import logical_cpus


def train(keras, strategy, activation, callbacks):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((6,)), keras.layers.Dense(8, name="hidden"),
            keras.layers.Activation(activation, name="act"), keras.layers.Dense(3, name="out")])
        model.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(48, 6)).astype("float32")
    labels = rng.integers(0, 3, 48).astype("int32")
    losses = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(float(logs["loss"])))
    model.fit(inputs, labels, batch_size=16, epochs=2, shuffle=False, verbose=0,
              callbacks=[*callbacks, record])
    return losses, [w.tolist() for w in model.get_weights()]


def main() -> None:
    activation, store, result_path = sys.argv[1:4]
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    devices = logical_cpus()
    import keras
    import tensorflow as tf

    import ikkuna

    strategy = tf.distribute.MirroredStrategy(devices)
    callback = ikkuna.keras.Callback(run="mirrored", store=store, metrics=["activation_mean"])
    losses_with, weights_with = train(keras, strategy, activation, [callback])
    losses_without, weights_without = train(keras, strategy, activation, [])
    with ikkuna.open_run("mirrored", store=store) as run:
        layers = sorted(layer for layer, _ in run.keys("activation_mean"))
    with open(result_path, "w") as file:
        json.dump({"replicas": strategy.num_replicas_in_sync, "layers": layers,
                   "losses_with": losses_with, "losses_without": losses_without,
                   "weights_with": weights_with, "weights_without": weights_without}, file)


if __name__ == "__main__":
    main()
