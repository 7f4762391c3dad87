"""The doctor with a jitted Flax NNX step: no finding on healthy digits trainings, the NaN
origin and a learning rate too high named, warn once and raise out of the training loop."""

from __future__ import annotations

import pytest

import ikkuna
from tests.doctor import jax_cases


@pytest.mark.parametrize("build, images", [("mlp", False), ("cnn", True)])
def test_healthy_jax_digits_training_has_no_finding(jax, build, images):
    monitor = jax_cases.train(getattr(jax_cases, build)(), images=images, run=build,
                              doctor="warn", doctor_every=1)
    assert monitor.step == 134
    assert ikkuna.diagnose(build) == []
    assert monitor.doctor.detected_at == {}


def test_jax_nan_origin_is_the_layer_and_step_of_x_over_0(jax):
    monitor = jax_cases.train(jax_cases.mlp(breaks_from=3), steps=10, run="nan", doctor="warn",
                              doctor_every=1)
    first = ikkuna.diagnose("nan")[0]
    assert (first.rule, first.layers, first.steps[0]) == ("nan_or_inf", ("dense2",), 3)
    assert monitor.doctor.detected_at[first.key] == 3


def test_jax_learning_rate_too_high_is_named(jax):
    monitor = jax_cases.train(jax_cases.mlp(activation="tanh"), lr=1.0, momentum=0.0, steps=90,
                              run="high", doctor="warn", doctor_every=1)
    (finding,) = ikkuna.diagnose("high")
    assert (finding.rule, finding.layers) == ("learning_rate_too_high", ("dense1", "dense2", "head"))
    assert finding.key in monitor.doctor.detected_at


def test_jax_jit_warns_each_finding_once(jax):
    with pytest.warns(ikkuna.TrainingWarning) as caught:
        monitor = jax_cases.train(jax_cases.mlp(breaks_from=3), steps=10, sinks=[],
                                  ignore_warnings=False, doctor="warn", doctor_every=1)
    messages = [str(w.message) for w in caught if w.category is ikkuna.TrainingWarning]
    assert len(messages) == len(set(messages)) == len(monitor.doctor.findings) == 2
    assert "nan_or_inf in dense2 (step 3)" in messages[0]


def test_jax_jit_stops_with_the_finding_in_the_error_and_with_block_raises_it(jax):
    with pytest.raises(ikkuna.TrainingProblem) as raised:
        jax_cases.train(jax_cases.mlp(breaks_from=3), steps=20, sinks=[], doctor="raise",
                        doctor_every=1)
    finding = raised.value.finding
    assert (finding.rule, finding.layers, finding.steps[0]) == ("nan_or_inf", ("dense2",), 3)
    framework_error = raised.value.__cause__
    assert isinstance(framework_error, jax.errors.JaxRuntimeError)
    assert "nan_or_inf in dense2" in str(framework_error)
