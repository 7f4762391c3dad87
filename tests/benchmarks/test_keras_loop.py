"""The benchmark's Keras loop: in-order batches without tf.data's autotuning, every batch fitted."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from benchmarks import keras_loop
from benchmarks.workloads import BATCH, WARMUP_STEPS
from ikkuna.testing.parity.specs import MLP


def test_batches_are_the_arrays_in_order_with_autotuning_off(keras: ModuleType) -> None:
    inputs, labels = keras_loop.training_data(MLP, steps=3)
    dataset = keras_loop.batches(inputs, labels)
    assert dataset.options().autotune.enabled is False
    seen = [(x.numpy(), y.numpy()) for x, y in dataset]
    assert [len(x) for x, _ in seen] == [BATCH] * (WARMUP_STEPS + 3)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in seen]), inputs)
    np.testing.assert_array_equal(np.concatenate([y for _, y in seen]), labels)


def test_timed_fit_trains_on_the_warmup_and_then_the_timed_batches(keras: ModuleType) -> None:
    inputs, labels = keras_loop.training_data(MLP, steps=3)
    model = keras_loop.compiled_model(MLP)
    seconds = keras_loop.timed_fit(model, inputs, labels)
    assert seconds > 0
    assert int(model.optimizer.iterations.numpy()) == WARMUP_STEPS + 3
