"""Keras fit under tf.distribute.MirroredStrategy with ikkuna: one global series per layer.

    .venv/bin/python examples/distributed/tf_mirrored.py [--store DIR]

The one CPU is split into two logical devices, so this runs anywhere; with GPUs, leave
``logical_cpus()`` out and ``MirroredStrategy()`` takes them all. ikkuna is attached as for any
``fit`` (``ikkuna.keras.Callback``): each step is recorded once, with the activations of the
whole global batch and the all-reduced gradient the optimizer applies.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

REPLICAS = 2
GLOBAL_BATCH = 64  # each replica gets GLOBAL_BATCH / REPLICAS
SAMPLES, EPOCHS = 1280, 2  # 20 steps per epoch


def logical_cpus(count: int) -> list[str]:
    """Split the CPU into ``count`` logical devices; must run before TensorFlow initializes."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="ikkuna-runs")
    options = parser.parse_args()
    strategy = tf.distribute.MirroredStrategy(logical_cpus(REPLICAS))

    import keras

    import ikkuna

    keras.utils.set_random_seed(0)
    with strategy.scope():  # variables are mirrored on every replica
        model = keras.Sequential([
            keras.Input((20,)),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.Dense(4, name="out"),
        ])
        model.compile(optimizer=keras.optimizers.SGD(0.05),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 20)).astype("float32")
    y = x[:, :4].argmax(axis=1)
    callback = ikkuna.keras.Callback(run="tf-mirrored-example", store=options.store)
    model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=EPOCHS, verbose=0, callbacks=[callback])
    print(f"trained {int(model.optimizer.iterations.numpy())} steps on "
          f"{strategy.num_replicas_in_sync} replicas; stored run 'tf-mirrored-example' in "
          f"{options.store}; see it with: ikkuna show tf-mirrored-example --store {options.store}")


if __name__ == "__main__":
    main()
