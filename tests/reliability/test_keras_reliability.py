"""Keras 3 ``model.fit``: float32, float64 and mixed_float16 training, layers without
parameters, memory over a long run, and training left bitwise unchanged by every metric."""

from __future__ import annotations

import gc
import math
import time

import numpy as np
import pytest

import ikkuna
from ikkuna.testing import MemorySink
from tests.kept import rss_mib

pytestmark = pytest.mark.framework

EXPECTED = {"weight_norm", "gradient_norm", "update_norm", "activation_mean", "activation_std",
            "saturated_fraction", "distance_from_init"}


def dense_model(keras, seed=0, activation="tanh"):
    """Dense ``hidden`` -> Activation ``act`` -> Flatten ``flatten`` -> Dense ``head``."""
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    return keras.Sequential([
        keras.Input((4,)),
        layers.Dense(8, name="hidden"),
        layers.Activation(activation, name="act"),
        layers.Flatten(name="flatten"),
        layers.Dense(3, name="head"),
    ], name="dense_model")


def compile_sgd(keras, model, learning_rate=0.1):
    model.compile(optimizer=keras.optimizers.SGD(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def data(samples, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((samples, 4)).astype(dtype),
            rng.integers(0, 3, samples).astype("int32"))


@pytest.fixture
def policy(keras):
    """Sets the global dtype policy; restores the policy (unset included) and floatx after."""
    from keras.src.backend.common import global_state

    floatx, before = keras.config.floatx(), global_state.get_global_attribute("dtype_policy")
    yield keras.mixed_precision.set_global_policy
    global_state.set_global_attribute("dtype_policy", before)
    keras.config.set_floatx(floatx)


@pytest.mark.parametrize("dtype", ["float32", "float64", "mixed_float16"])
def test_fit_in_every_training_dtype_records_every_default_metric(keras, policy, dtype):
    policy(dtype)
    model = compile_sgd(keras, dense_model(keras))
    inputs, labels = data(24, "float32" if dtype == "mixed_float16" else dtype)
    sink = MemorySink()
    monitor = ikkuna.attach(model, sinks=[sink])
    model.fit(inputs, labels, batch_size=8, epochs=1, shuffle=False, verbose=0)
    monitor.detach()
    assert not monitor.problems
    assert model.layers[0].compute_dtype == ("float16" if dtype == "mixed_float16" else dtype)
    assert model.layers[0].kernel.dtype == ("float32" if dtype == "mixed_float16" else dtype)
    names = {r.metric for r in sink.records}
    assert EXPECTED <= names, EXPECTED - names
    values = [r.value for r in sink.records if isinstance(r.value, float)]
    assert values and all(math.isfinite(v) for v in values)
    assert {r.step for r in sink.records if r.metric == "weight_norm"} == {0, 1, 2}
    assert {r.layer for r in sink.records if r.metric == "activation_mean"} >= {"act", "flatten"}


def test_fit_memory_does_not_grow_over_5000_steps_with_the_default_metrics(keras, tmp_path):
    model = compile_sgd(keras, dense_model(keras), learning_rate=0.01)
    inputs, labels = data(5000)
    measured = {}

    class Measure(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch in (1000, 4999):
                gc.collect()
                measured[batch] = rss_mib()

    monitor = ikkuna.attach(model, store=tmp_path)
    started = time.perf_counter()
    model.fit(inputs, labels, batch_size=1, epochs=1, shuffle=False, verbose=0,
              callbacks=[Measure()])
    elapsed = time.perf_counter() - started
    monitor.detach()
    assert int(model.optimizer.iterations.numpy()) == 5000
    # 5,000 steps write about 250,000 records to the store; a leak of one step's arrays (or
    # of every record) would grow by tens of MiB. 20 MiB leaves room for TensorFlow's and the
    # allocator's noise.
    assert measured[4999] - measured[1000] < 20.0, (measured, elapsed)
    with ikkuna.open_run(monitor.run, store=tmp_path) as run:
        assert len(run.series("loss")) == 5000
    print(f"5,000 steps in {elapsed:.1f} s, rss {measured}")


def fit_losses_and_weights(keras, initial, monitor_options=None):
    """Per-step running losses, History's epoch losses and final weights of 24 unshuffled
    steps (2 epochs) of a ReLU ``dense_model`` with Adam from the weights ``initial``; with
    ikkuna attached when ``monitor_options`` is given. (Separate tanh, sigmoid and ELU
    layers: see ``test_non_interference.py``.)"""
    model = dense_model(keras, seed=1, activation="relu")
    model.set_weights(initial)
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    inputs, labels = data(48, seed=2)
    losses = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(float(logs["loss"])))
    monitor = None if monitor_options is None else ikkuna.attach(model, **monitor_options)
    history = model.fit(inputs, labels, batch_size=4, epochs=2, shuffle=False, verbose=0,
                        callbacks=[record])
    if monitor is not None:
        monitor.detach()
        assert not monitor.problems
    return losses, history.history["loss"], [w.copy() for w in model.get_weights()]


@pytest.mark.parametrize("options", [{"metrics": "full"}, {"every": 3}], ids=["full", "every3"])
def test_fit_losses_and_weights_are_bitwise_unchanged_by_ikkuna(keras, options):
    initial = dense_model(keras, seed=0, activation="relu").get_weights()
    sink = MemorySink()
    plain = fit_losses_and_weights(keras, initial)
    watched = fit_losses_and_weights(keras, initial, {**options, "sinks": [sink]})
    recorded = {r.step for r in sink.records if r.metric == "activation_mean"}
    assert recorded == set(range(0, 24, options.get("every", 1)))  # ikkuna did record
    assert watched[0] == plain[0] and len(plain[0]) == 24  # every step's running loss
    assert watched[1] == plain[1]  # History's epoch losses
    for after, wanted in zip(watched[2], plain[2]):
        np.testing.assert_array_equal(after, wanted)
    assert not all(np.array_equal(a, b) for a, b in zip(plain[2], initial))  # it trained
