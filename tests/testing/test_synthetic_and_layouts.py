"""ikkuna.testing without a framework: synthetic steps in real layouts, run_metric, check_layouts."""

from __future__ import annotations

import numpy as np
import pytest

import ikkuna
from ikkuna.core import kinds as K
from ikkuna.metrics import BUILTIN_METRICS
from ikkuna.testing import (
    LAYOUTS,
    SYNTHETIC_KINDS,
    MetricFailed,
    assert_results_close,
    check_layouts,
    run_metric,
    synthetic_steps,
)

#: Options that make a built-in metric record within three synthetic steps.
OPTIONS = {"dead_unit_fraction": {"window": 2}}


def canonical(event: ikkuna.Event) -> np.ndarray:
    array = event.array
    return array.as_matrix() if event.kind in K.PARAMETER_KINDS else array.as_channels_last()


def keyed(steps) -> dict:
    return {(e.kind, e.layer.name if e.layer else None, e.param, e.step): e for s in steps for e in s}


def test_synthetic_steps_hold_every_kind_and_the_same_values_in_each_layout():
    torch_events = keyed(synthetic_steps("torch", steps=2))
    assert {key[0] for key in torch_events} == SYNTHETIC_KINDS
    for framework in ("keras", "jax"):
        events = keyed(synthetic_steps(framework, steps=2))
        assert set(events) == set(torch_events)
        for key, event in events.items():
            reference = torch_events[key]
            if event.array is None:
                assert event.value == reference.value
                continue
            np.testing.assert_array_equal(canonical(event), canonical(reference), err_msg=str(key))


def test_synthetic_layouts_are_the_frameworks_own():
    torch_events = keyed(synthetic_steps("torch", steps=1))
    keras_events = keyed(synthetic_steps("keras", steps=1))
    conv = ("activations", "conv1", None, 0)
    assert torch_events[conv].array.shape == (8, 4, 5, 5)  # NCHW
    assert keras_events[conv].array.shape == (8, 5, 5, 4)  # NHWC
    kernel = ("weights", "conv1", "weight", 0)
    assert torch_events[kernel].array.shape == (4, 3, 3, 3)  # (out, in, kh, kw)
    assert keras_events[kernel].array.shape == (3, 3, 3, 4)  # (kh, kw, in, out)
    assert torch_events[kernel].layer.params == {"weight": "weight", "bias": "bias"}
    assert keras_events[kernel].layer.params == {"kernel": "weight", "bias": "bias"}
    assert keras_events[("weights", "dense1", "weight", 0)].array.shape == (100, 6)  # (in, out)


def test_synthetic_updates_are_the_change_of_the_weights():
    events = keyed(synthetic_steps("keras", steps=2))
    before = events[("weights", "head", "weight", 0)].array.numpy()
    after = events[("weights", "head", "weight", 1)].array.numpy()
    update = events[("updates", "head", "weight", 1)].array.numpy()
    np.testing.assert_allclose(after - before, update, rtol=1e-6)


@pytest.mark.parametrize("bad", [{"framework": "mxnet"}, {"steps": 0}, {"batch": 0},
                                 {"dtype": "int32"}, {"dtype": "bfloat16"}])
def test_synthetic_steps_refuse_bad_arguments_naming_what_is_accepted(bad):
    with pytest.raises(ValueError, match="torch, keras, jax|>= 1|float16, float32, float64"):
        synthetic_steps(**{"framework": "torch", **bad})


@pytest.mark.parametrize("metric", [m for m in BUILTIN_METRICS if m.cost != "probe"],
                         ids=lambda m: m.name)
def test_every_builtin_metric_passes_check_layouts(metric):
    results = check_layouts(metric(**OPTIONS.get(metric.name, {})))
    assert results and all(key[3] in range(3) for key in results)


class RowZeroNorm(ikkuna.Metric):
    """Reads axis 0 of the native array: the output units in torch, the input units in Keras."""

    name = "row_zero_norm"
    needs = ("weights",)

    def compute(self, group):
        values = group["weights"]
        return float(np.linalg.norm(values.reshape(values.shape[0], -1)[0]))


class CanonicalRowZeroNorm(RowZeroNorm):
    """The same, through the canonical layout: the first output unit in every framework."""

    name = "canonical_row_zero_norm"

    def compute(self, group):
        return float(np.linalg.norm(group.array("weights").as_matrix()[0]))


def test_check_layouts_catches_a_metric_that_ignores_layouts():
    with pytest.raises(AssertionError, match="keras layout vs torch"):
        check_layouts(RowZeroNorm)
    results = check_layouts(CanonicalRowZeroNorm)
    assert ("canonical_row_zero_norm", "conv1", "weight", 2) in results


def test_run_metric_gives_what_the_metric_computes_per_layer_param_and_step():
    results = run_metric(CanonicalRowZeroNorm, synthetic_steps("torch", steps=2))
    expected = {}
    for step in synthetic_steps("torch", steps=2):
        for event in step:
            if event.kind == "weights":
                key = ("canonical_row_zero_norm", event.layer.name, event.param, event.step)
                expected[key] = float(np.linalg.norm(event.array.as_matrix()[0]))
    assert results == expected


class Raises(ikkuna.Metric):
    name = "raises"
    needs = ("gradients",)

    def compute(self, group):
        raise ZeroDivisionError("boom in the metric")


class ClaimsStatisticButReadsValues(ikkuna.Metric):
    name = "claims_statistic"
    needs = ("activations",)
    statistic = "moments"

    def compute(self, group):
        return float(group["activations"].mean())


def test_run_metric_raises_the_metrics_error_with_its_traceback():
    with pytest.raises(MetricFailed, match="ZeroDivisionError: boom in the metric") as error:
        run_metric(Raises, synthetic_steps("torch"))
    assert "Traceback" in str(error.value)
    assert "metric 'raises' raised at layer 'conv1', step 0 (in ikkuna.testing.run_metric)" in str(
        error.value)


class LogOfZero(ikkuna.Metric):
    name = "log_of_zero"
    needs = ("weights",)

    def compute(self, group):
        return float(np.log(np.zeros(1))[0])


def test_run_metric_lets_the_metrics_own_numpy_warnings_through():
    with pytest.warns(RuntimeWarning, match="divide by zero"):
        results = run_metric(LogOfZero, synthetic_steps("torch", steps=1))
    assert set(results.values()) == {-np.inf}


def test_run_metric_catches_a_statistic_metric_that_reads_values():
    with pytest.raises(MetricFailed, match="were not kept"):
        run_metric(ClaimsStatisticButReadsValues, synthetic_steps("jax"))


def test_run_metric_honours_every_and_layers():
    metric = CanonicalRowZeroNorm(layers=["head"], every=2)
    results = run_metric(metric, synthetic_steps("torch", steps=4))
    assert {(key[1], key[3]) for key in results} == {("head", 0), ("head", 2)}


def test_run_metric_refuses_probe_metrics_and_non_metrics():
    probe_metric = next(m for m in BUILTIN_METRICS if m.cost == "probe")
    with pytest.raises(ValueError, match="probe"):
        run_metric(probe_metric, synthetic_steps())
    with pytest.raises(TypeError, match="ikkuna.Metric subclass or instance, got str"):
        run_metric("weight_norm", synthetic_steps())


def test_an_instance_is_copied_so_each_run_starts_from_its_state():
    metric = next(m for m in BUILTIN_METRICS if m.name == "distance_from_init")()
    first = run_metric(metric, synthetic_steps("torch"))
    second = run_metric(metric, synthetic_steps("torch"))
    assert first == second


def test_assert_results_close_takes_an_absolute_tolerance_for_series_zero_but_for_rounding():
    zero = {("m", "a", None, 0): 0.0}
    with pytest.raises(AssertionError):
        assert_results_close({("m", "a", None, 0): 1e-12}, zero)
    assert_results_close({("m", "a", None, 0): 1e-12}, zero, atol=1e-9)


def test_assert_results_close_names_what_differs():
    expected = {("m", "a", None, 0): 1.0, ("m", "a", None, 1): 2.0}
    assert_results_close({("m", "a", None, 0): 1.0 + 1e-7, ("m", "a", None, 1): 2.0}, expected)
    with pytest.raises(AssertionError, match="step=1"):
        assert_results_close({("m", "a", None, 0): 1.0, ("m", "a", None, 1): 2.1}, expected)
    with pytest.raises(AssertionError, match="keys differ"):
        assert_results_close({("m", "a", None, 0): 1.0}, expected)
    histogram = ikkuna.Histogram(np.array([3, 1]), np.array([0.0, 0.5, 1.0]))
    moved = ikkuna.Histogram(np.array([2, 2]), np.array([0.0, 0.5, 1.0]))
    assert_results_close({("h", None, None, 0): moved}, {("h", None, None, 0): histogram})
    far = ikkuna.Histogram(np.array([0, 4]), np.array([0.0, 0.5, 1.0]))
    with pytest.raises(AssertionError, match="counts"):
        assert_results_close({("h", None, None, 0): far}, {("h", None, None, 0): histogram})


def test_layouts_are_the_three_frameworks():
    assert LAYOUTS == ("torch", "keras", "jax")
