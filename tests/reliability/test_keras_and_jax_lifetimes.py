"""Keras and JAX: no array handed to ikkuna during a step outlives the step (the torch
counterpart is in ``test_torch_numbers_and_lifetimes.py``).

Every value an adapter hands to the metrics is wrapped in an :class:`ikkuna.core.arrays.Array`;
these tests watch each one made (a weak reference to the native value it wraps: the numpy
array a Keras or JAX host callback received, the tensor or array a user logged) and check
that, with all built-in metrics on, none is alive once the steps are done and garbage is
collected. Keras' EagerTensors and ``jax.Array`` support weak references, as do numpy arrays.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import ikkuna
from ikkuna.core.arrays import Array
from ikkuna.testing import MemorySink
from ikkuna.testing.parity.jax_models import cross_entropy_step

pytestmark = pytest.mark.framework


@pytest.fixture
def handed(monkeypatch):
    """Weak references to the native value of every Array made from now on (all of them:
    an Array that wraps a value that cannot be weakly referenced fails the test)."""
    references: list[weakref.ref] = []
    original = Array.__init__

    def watched(self, native, *args, **kwargs):
        if native is not None:
            references.append(weakref.ref(native))
        original(self, native, *args, **kwargs)

    monkeypatch.setattr(Array, "__init__", watched)
    return references


def alive(references: list[weakref.ref]) -> list[str]:
    gc.collect()
    return [f"{type(ref()).__name__} {getattr(ref(), 'shape', '')}"
            for ref in references if ref() is not None]


def keras_model(keras):
    layers = keras.layers
    model = keras.Sequential([keras.Input((4,)), layers.Dense(8, name="hidden"),
                              layers.Activation("relu", name="act"), layers.Dense(3, name="head")])
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def keras_data(count=12):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((count, 4)).astype("float32"),
            rng.integers(0, 3, count).astype("int32"))


def test_keras_fit_keeps_no_array_of_a_step_alive(keras, handed):
    model = keras_model(keras)
    inputs, labels = keras_data()
    sink = MemorySink()
    monitor = ikkuna.attach(model, metrics="full", sinks=[sink])
    model.fit(inputs, labels, batch_size=4, epochs=1, shuffle=False, verbose=0)
    try:
        assert {r.step for r in sink.records if r.metric == "activation_mean"} >= {0, 1}
        assert len(handed) > 20  # activations, gradients, weights, updates... of 3 steps
        assert alive(handed) == []
    finally:
        monitor.detach()
    assert not monitor.problems


def test_keras_eager_gradient_tape_steps_keep_no_tensor_alive(keras, handed):
    import tensorflow as tf

    model = keras_model(keras)
    optimizer = keras.optimizers.SGD(0.1)
    loss_of = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    inputs, labels = keras_data()
    outputs: list[weakref.ref] = []  # the tensors the model computed, as the torch test keeps
    with ikkuna.attach(model, optimizer=optimizer, metrics="full", sinks=[MemorySink()]) as monitor:
        for start in range(0, 12, 4):
            x, y = tf.constant(inputs[start:start + 4]), tf.constant(labels[start:start + 4])
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = loss_of(y, logits)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            monitor.log(loss=loss, inputs=x, labels=y)
            outputs += [weakref.ref(logits), weakref.ref(x), weakref.ref(y)]
            outputs += [weakref.ref(g) for g in gradients]
            del x, y, logits, loss, gradients, tape
        assert len(handed) > 20
        assert alive(handed) == []
        assert alive(outputs) == []
    assert not monitor.problems


def jax_model_and_step(jit: bool):
    import jax
    import optax
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.dense1 = nnx.Linear(4, 8, rngs=rngs)
            self.head = nnx.Linear(8, 3, rngs=rngs)

        def __call__(self, x):
            return self.head(jax.nn.relu(self.dense1(x)))

    step = cross_entropy_step()
    model = Net(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
                              wrt=nnx.Param)
    return model, optimizer, nnx.jit(step) if jit else step


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
def test_jax_steps_keep_no_array_alive(jax, handed, jit):
    model, optimizer, step = jax_model_and_step(jit)
    rng = np.random.default_rng(0)
    arrays: list[weakref.ref] = []
    sink = MemorySink()
    with ikkuna.attach(model, optimizer=optimizer, metrics="full", sinks=[sink]) as monitor:
        for _ in range(3):
            x = jax.numpy.asarray(rng.standard_normal((4, 4)), jax.numpy.float32)
            y = jax.numpy.asarray(rng.integers(0, 3, 4))
            loss = step(model, optimizer, x, y)
            monitor.log(loss=loss, inputs=x, labels=y)
            arrays += [weakref.ref(x), weakref.ref(y), weakref.ref(loss)]
            del x, y, loss
        jax.effects_barrier()  # every step's host callback has run
        assert len(handed) > 20
        assert alive(handed) == []
        assert alive(arrays) == []
    assert not monitor.problems
    assert {r.step for r in sink.records if r.metric == "gradient_norm"} == {0, 1, 2}
