"""Small Keras models, batches, training steps and a recording metric for the Keras tests.

Nothing here imports keras or tensorflow at import time: every builder takes the ``keras``
module from the test's fixture (and ``tf`` where it needs TensorFlow itself), so the test
modules collect (and skip) where Keras is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

CLASSES = 3
BATCH = 4
IMAGE = (5, 5, 3)  # height, width, channels (NHWC)
FEATURES = 4
SEQUENCE = 3
VOCABULARY = 10
LEARNING_RATE = 0.1


# -- models ------------------------------------------------------------------------------------


def small_cnn(keras: ModuleType) -> Any:
    """Functional Conv2D ``conv`` -> BatchNormalization ``norm`` -> ReLU ``relu`` ->
    Flatten ``flatten`` -> Dense ``head``; every layer is top level. Input: ``image_batch``.
    """
    layers = keras.layers
    inputs = keras.Input(IMAGE, name="images")
    hidden = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    hidden = layers.BatchNormalization(name="norm")(hidden)
    hidden = layers.ReLU(name="relu")(hidden)
    hidden = layers.Flatten(name="flatten")(hidden)
    return keras.Model(inputs, layers.Dense(CLASSES, name="head")(hidden), name="small_cnn")


def embedding_model(keras: ModuleType) -> Any:
    """Sequential Embedding ``embed`` -> Flatten ``flatten`` -> Dense ``head``.

    Input: ``token_batch`` (integer ids of shape (batch, SEQUENCE)).
    """
    layers = keras.layers
    return keras.Sequential([
        keras.Input((SEQUENCE,), dtype="int32"),
        layers.Embedding(VOCABULARY, 4, name="embed"),
        layers.Flatten(name="flatten"),
        layers.Dense(CLASSES, name="head"),
    ], name="embedding_model")


def encoder(keras: ModuleType) -> Any:
    """A Sequential ``encoder`` of Dense ``dense`` (ReLU) and BatchNormalization ``norm``."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input((FEATURES,)),
        layers.Dense(8, activation="relu", name="dense"),
        layers.BatchNormalization(name="norm"),
    ], name="encoder")


def nested_functional(keras: ModuleType) -> Any:
    """A functional model calling the Sequential ``encoder``, then Dense ``head``.

    Layers: ``encoder.dense``, ``encoder.norm``, ``head``. Input: ``vector_batch``.
    """
    inputs = keras.Input((FEATURES,), name="vectors")
    outputs = keras.layers.Dense(CLASSES, name="head")(encoder(keras)(inputs))
    return keras.Model(inputs, outputs, name="nested_functional")


def nested_subclassed(keras: ModuleType) -> Any:
    """A ``keras.Model`` subclass holding the Sequential ``encoder`` and Dense ``head`` as
    attributes, built on a batch. Layers as :func:`nested_functional`.
    """

    class Classifier(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="classifier")
            self.encoder = encoder(keras)
            self.head = keras.layers.Dense(CLASSES, name="head")

        def call(self, inputs: Any, training: bool = False) -> Any:
            return self.head(self.encoder(inputs, training=training))

    model = Classifier()
    model(np.zeros((1, FEATURES), np.float32))
    return model


def mlp(keras: ModuleType) -> Any:
    """Sequential Dense ``hidden`` (ReLU) -> Dense ``head``. Input: ``vector_batch``."""
    return keras.Sequential([
        keras.Input((FEATURES,)),
        keras.layers.Dense(8, activation="relu", name="hidden"),
        keras.layers.Dense(CLASSES, name="head"),
    ], name="mlp")


def loss_function(keras: ModuleType) -> Any:
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def compiled(keras: ModuleType, model: Any, *, momentum: float = 0.0, **options: Any) -> Any:
    """``model`` compiled with SGD and cross-entropy on logits; other settings Keras' default."""
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=momentum),
                  loss=loss_function(keras), **options)
    return model


def twin(keras: ModuleType, build: Callable[[ModuleType], Any], model: Any) -> Any:
    """An unmonitored model of the same architecture holding ``model``'s current weights."""
    copy = build(keras)
    copy.set_weights(model.get_weights())
    return copy


def layer_at(model: Any, dotted: str) -> Any:
    """The Keras layer at a dotted path of layer names (``encoder.dense``)."""
    layer = model
    for name in dotted.split("."):
        layer = next(c for c in layer._flatten_layers(include_self=False, recursive=False)
                     if c.name == name)
    return layer


def variables_by_role(model: Any, monitor: Any) -> dict[tuple[str, str], Any]:
    """(layer name, role) -> the Keras variable, from the monitor's LayerInfos."""
    found = {}
    for info in monitor.layers:
        variables = {v.name: v for v in layer_at(model, info.name).trainable_variables}
        for native, role in info.params.items():
            found[(info.name, role)] = variables[native]
    return found


# -- batches -----------------------------------------------------------------------------------


def image_batch(seed: int, size: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    images = generator.standard_normal((size, *IMAGE)).astype(np.float32)
    return images, generator.integers(0, CLASSES, size).astype(np.int32)


def token_batch(seed: int, size: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    tokens = generator.integers(0, VOCABULARY, (size, SEQUENCE)).astype(np.int32)
    return tokens, generator.integers(0, CLASSES, size).astype(np.int32)


def vector_batch(seed: int, size: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    vectors = generator.standard_normal((size, FEATURES)).astype(np.float32)
    return vectors, generator.integers(0, CLASSES, size).astype(np.int32)


# -- custom training steps ---------------------------------------------------------------------


def tape_step(tf: ModuleType, keras: ModuleType) -> Callable[..., tuple[Any, Any]]:
    """A GradientTape step ``step(model, optimizer, inputs, labels) -> (loss, logits)``."""
    loss_of = loss_function(keras)

    def step(model: Any, optimizer: Any, inputs: Any, labels: Any) -> tuple[Any, Any]:
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)
            loss = loss_of(labels, logits)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss, logits

    return step
