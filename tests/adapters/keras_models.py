"""Small Keras models, batches, training steps and a recording metric for the Keras tests.

Nothing here imports keras or tensorflow at import time: every builder takes the ``keras``
module from the test's fixture (and ``tf`` where it needs TensorFlow itself), so the test
modules collect (and skip) where Keras is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

import ikkuna
from ikkuna.core import kinds as K
from ikkuna.core.arrays import Layout

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


# -- recording metric --------------------------------------------------------------------------


@dataclass
class Seen:
    """What one call of a recording metric received."""

    layer: str | None
    param: str | None
    step: int
    epoch: int
    values: np.ndarray | None  # a private copy of the array, if the event had one
    value: float | None
    layout: Layout | None
    matrix: np.ndarray | None  # Array.as_matrix() for per-parameter kinds


class Recorder(ikkuna.Metric):
    """Remembers every call it gets; records nothing. Subclassed per kind by :func:`recorder`."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.seen: list[Seen] = []

    def compute(self, group: ikkuna.EventGroup) -> None:
        kind = self.needs[0]
        event = group.event(kind)
        array = event.array
        self.seen.append(Seen(
            layer=group.layer.name if group.layer is not None else None,
            param=group.param,
            step=group.step,
            epoch=group.epoch,
            values=None if array is None else np.array(array.numpy(), copy=True),
            value=event.value,
            layout=None if array is None else array.layout,
            matrix=array.as_matrix().copy() if array is not None and kind in K.PARAMETER_KINDS
            else None,
        ))

    def steps(self, layer: str | None = None, param: str | None = None) -> list[int]:
        return [s.step for s in self.seen if s.layer == layer and s.param == param]

    def seen_layers(self) -> set[str | None]:
        return {s.layer for s in self.seen}

    def at(self, step: int, layer: str | None = None, param: str | None = None) -> Seen:
        """The one call for (step, layer, param); fails if there were none or several."""
        found = [s for s in self.seen if (s.step, s.layer, s.param) == (step, layer, param)]
        assert len(found) == 1, f"{self.name}: {len(found)} calls for {(step, layer, param)}"
        return found[0]


def recorder(kind: str, **options: Any) -> Recorder:
    """A fresh recording metric named ``record_<kind>`` that needs ``kind``."""
    cls: Callable[..., Recorder] = type(
        f"Record{kind.title().replace('_', '')}", (Recorder,),
        {"name": f"record_{kind}", "needs": (kind,)},
    )
    return cls(**options)


def recorders(*kinds: str, **options: Any) -> dict[str, Recorder]:
    return {kind: recorder(kind, **options) for kind in kinds}


def spy_on_emit(monitor: Any) -> list[tuple[str, int]]:
    """Record (kind, step) of every event the adapter emits from now on."""
    emitted: list[tuple[str, int]] = []
    emit = monitor.emit

    def spy(kind: str, **fields: Any) -> None:
        emitted.append((kind, monitor.step))
        emit(kind, **fields)

    monitor.emit = spy
    return emitted
