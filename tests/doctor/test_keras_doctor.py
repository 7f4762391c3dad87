"""The doctor with Keras ``fit``: no finding on healthy digits trainings, the NaN origin and a
learning rate too high named, warn once and raise out of ``fit``."""

from __future__ import annotations

import warnings

import pytest

import ikkuna
from tests.doctor import keras_cases


@pytest.mark.parametrize("build, images", [("mlp", False), ("cnn", True)])
def test_healthy_keras_digits_training_has_no_finding(keras, build, images):
    monitor = keras_cases.fit(keras, getattr(keras_cases, build)(keras), images=images,
                              run=build, doctor="warn", doctor_every=1)
    assert monitor.step == 134
    assert ikkuna.diagnose(build) == []
    assert monitor.doctor.detected_at == {}


def test_keras_nan_origin_is_the_layer_and_step_of_x_over_0(keras):
    monitor = keras_cases.fit(keras, keras_cases.mlp(keras, breaks_from=3), steps=10, run="nan",
                              doctor="warn", doctor_every=1)
    first = ikkuna.diagnose("nan")[0]
    assert (first.rule, first.layers, first.steps[0]) == ("nan_or_inf", ("dense2",), 3)
    assert monitor.doctor.detected_at[first.key] == 3


def test_keras_learning_rate_too_high_is_named(keras):
    monitor = keras_cases.fit(keras, keras_cases.mlp(keras, activation="tanh"), lr=1.0,
                              momentum=0.0, epochs=2, run="high", doctor="warn", doctor_every=1)
    (finding,) = ikkuna.diagnose("high")
    assert (finding.rule, finding.layers) == ("learning_rate_too_high", ("dense1", "dense2", "head"))
    assert finding.key in monitor.doctor.detected_at


def test_keras_fit_warns_each_finding_once(keras):
    with pytest.warns(ikkuna.TrainingWarning) as caught:
        monitor = keras_cases.fit(keras, keras_cases.mlp(keras, breaks_from=3), steps=10,
                                  ignore_warnings=False, sinks=[], doctor="warn", doctor_every=1)
    messages = [str(w.message) for w in caught if w.category is ikkuna.TrainingWarning]
    assert len(messages) == len(set(messages)) == len(monitor.doctor.findings) == 2
    assert "nan_or_inf in dense2 (step 3)" in messages[0]


def test_keras_fit_stops_with_the_finding_in_the_error_and_with_block_raises_it(keras):
    import tensorflow as tf

    with pytest.raises(ikkuna.TrainingProblem) as raised:
        keras_cases.fit(keras, keras_cases.mlp(keras, breaks_from=3), steps=20, sinks=[],
                        doctor="raise", doctor_every=1)
    finding = raised.value.finding
    assert (finding.rule, finding.layers, finding.steps[0]) == ("nan_or_inf", ("dense2",), 3)
    framework_error = raised.value.__cause__
    assert isinstance(framework_error, tf.errors.OpError)
    assert "nan_or_inf in dense2" in str(framework_error)


def test_keras_fit_without_a_with_block_raises_tensorflows_error_naming_the_finding(keras):
    import tensorflow as tf

    from ikkuna.demos.digits import load

    model = keras_cases.mlp(keras, breaks_from=3)
    model.compile(optimizer=keras.optimizers.SGD(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    digits = load()
    monitor = ikkuna.attach(model, sinks=[], doctor="raise", doctor_every=1)
    with pytest.raises(tf.errors.OpError, match="TrainingProblem: ikkuna doctor: error: nan_or_inf"):
        model.fit(digits.train_images.reshape(-1, 64), digits.train_labels, batch_size=32,
                  steps_per_epoch=20, verbose=0)
    assert monitor.step == 4  # stopped where step 4 began
    assert monitor.doctor.raised.finding.layers == ("dense2",)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monitor.detach()  # reported once: detach does not raise it again
