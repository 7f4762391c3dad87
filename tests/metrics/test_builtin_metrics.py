"""Built-in metrics against values computed by hand on small fixed arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ikkuna

from ikkuna.core.arrays import Array, Layout
from ikkuna.core.events import Event, Histogram
from ikkuna.core.layers import LayerInfo
from ikkuna.core.metric import EventGroup
from ikkuna.core.statistics import moments
from ikkuna.metrics import BUILTIN_METRICS, ikkuna_metrics
from ikkuna.metrics.activations import ActivationMean, ActivationStd, ActivationZeroFraction
from ikkuna.metrics.histograms import (
    DEFAULT_BINS,
    ActivationHistogram,
    GradientHistogram,
    WeightHistogram,
)
from ikkuna.metrics.norms import GradientNorm, UpdateNorm, UpdateToWeightRatio, WeightNorm

FC = LayerInfo("fc", "dense", "numpy", {"weight": "weight", "bias": "bias"})
ACTIVATION_LAYOUT = Layout(batch_axis=0, channel_axis=1)
WEIGHT_LAYOUT = Layout(out_axis=0, in_axis=1)


def group(**arrays) -> EventGroup:
    """An EventGroup for layer ``fc``, param ``weight``, step 3, one Event per keyword."""
    events = {}
    for kind, values in arrays.items():
        layout = ACTIVATION_LAYOUT if kind == "activations" else WEIGHT_LAYOUT
        array = Array.from_numpy(np.asarray(values, dtype=np.float32), layout)
        events[kind] = Event(kind, 3, 0, FC, None if kind == "activations" else "weight", array=array)
    return EventGroup(events, step=3, epoch=0, layer=FC,
                      param=None if "activations" in arrays else "weight")


# --- registration ------------------------------------------------------------------------------


def test_every_builtin_metric_is_provided_by_the_plugin_hook_and_validates():
    provided = ikkuna_metrics()
    assert provided == list(BUILTIN_METRICS)
    for metric_class in provided:
        metric_class.validate()
    names = [metric_class.name for metric_class in provided]
    assert len(names) == len(set(names))
    assert set(names) >= {
        "weight_norm", "gradient_norm", "update_norm", "update_to_weight_ratio",
        "activation_mean", "activation_std", "activation_zero_fraction",
        "weight_histogram", "gradient_histogram", "activation_histogram",
        "spectral_norm", "condition_number", "stable_rank", "spectral_alpha",
    }
    assert set(ikkuna.DEFAULT_METRICS) <= set(names)


@pytest.mark.parametrize(
    "metric_class, needs",
    [
        (WeightNorm, ("weights",)),
        (GradientNorm, ("gradients",)),
        (UpdateNorm, ("updates",)),
        (UpdateToWeightRatio, ("weights", "updates")),
        (ActivationMean, ("activations",)),
        (ActivationStd, ("activations",)),
        (ActivationZeroFraction, ("activations",)),
        (WeightHistogram, ("weights",)),
        (GradientHistogram, ("gradients",)),
        (ActivationHistogram, ("activations",)),
    ],
)
def test_builtin_metric_needs_the_kind_its_name_says(metric_class, needs):
    assert metric_class.needs == needs


# --- norms -------------------------------------------------------------------------------------


def test_weight_norm_of_3_4_is_5():
    assert WeightNorm().compute(group(weights=[[3.0, 4.0]])) == pytest.approx(5.0)


def test_weight_norm_is_over_every_entry_of_a_conv_kernel():
    kernel = np.arange(24.0).reshape(2, 3, 2, 2)
    expected = math.sqrt(sum(x * x for x in range(24)))
    assert WeightNorm().compute(group(weights=kernel)) == pytest.approx(expected, rel=1e-12)


def test_gradient_norm_is_the_l2_norm_of_the_gradient():
    assert GradientNorm().compute(group(gradients=[[1.0, -2.0], [2.0, 0.0]])) == pytest.approx(3.0)


def test_update_norm_is_the_l2_norm_of_the_update():
    assert UpdateNorm().compute(group(updates=[-6.0, 8.0])) == pytest.approx(10.0)


def test_norm_returns_a_python_float():
    result = WeightNorm().compute(group(weights=[[3.0, 4.0]]))
    assert type(result) is float


def test_norm_accumulates_in_float64_so_large_float32_values_do_not_overflow():
    # 3e20 squared overflows float32 (max ~3.4e38); the norm itself fits.
    result = WeightNorm().compute(group(weights=[3e20, 4e20]))
    assert math.isfinite(result)
    assert result == pytest.approx(5e20, rel=1e-6)


def test_norm_of_an_empty_parameter_is_zero():
    assert WeightNorm().compute(group(weights=np.zeros((0, 3)))) == 0.0


def test_update_to_weight_ratio_is_update_norm_over_weight_norm():
    ratio = UpdateToWeightRatio().compute(group(weights=[[3.0, 4.0]], updates=[[0.003, 0.004]]))
    assert ratio == pytest.approx(1e-3, rel=1e-5)


def test_update_to_weight_ratio_of_zero_weight_and_zero_update_is_zero():
    ratio = UpdateToWeightRatio().compute(group(weights=[0.0, 0.0], updates=[0.0, 0.0]))
    assert ratio == 0.0


def test_update_to_weight_ratio_of_zero_weight_and_nonzero_update_is_inf():
    ratio = UpdateToWeightRatio().compute(group(weights=[0.0, 0.0], updates=[0.0, 1e-3]))
    assert ratio == math.inf


def test_update_to_weight_ratio_of_zero_update_is_zero():
    ratio = UpdateToWeightRatio().compute(group(weights=[1.0, 2.0], updates=[0.0, 0.0]))
    assert ratio == 0.0


# --- activation statistics ---------------------------------------------------------------------


def test_activation_mean_is_over_batch_and_units():
    assert ActivationMean().compute(group(activations=[[1.0, 2.0], [3.0, 6.0]])) == pytest.approx(3.0)


def test_activation_std_is_the_population_std():
    values = [[1.0, 2.0], [3.0, 4.0]]
    # mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, / 4 = 1.25
    assert ActivationStd().compute(group(activations=values)) == pytest.approx(math.sqrt(1.25))


def test_activation_std_of_constant_outputs_is_zero():
    assert ActivationStd().compute(group(activations=np.full((3, 4), 7.0))) == 0.0


def test_activation_zero_fraction_of_0_1_0_2_is_one_half():
    assert ActivationZeroFraction().compute(group(activations=[[0.0, 1.0, 0.0, 2.0]])) == 0.5


def test_activation_zero_fraction_counts_only_exact_zeros():
    values = [[0.0, -0.0, 1e-30, -1e-30]]
    assert ActivationZeroFraction().compute(group(activations=values)) == 0.5


def test_activation_zero_fraction_of_all_relu_dead_is_one():
    assert ActivationZeroFraction().compute(group(activations=np.zeros((2, 3, 4, 4)))) == 1.0


def test_activation_metrics_do_not_depend_on_channel_layout():
    nchw = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2) - 10.0
    nhwc = np.transpose(nchw, (0, 2, 3, 1))
    for metric in (ActivationMean(), ActivationStd(), ActivationZeroFraction()):
        assert metric.compute(group(activations=nchw)) == pytest.approx(
            metric.compute(group(activations=nhwc)))


@pytest.mark.parametrize("metric_class", [ActivationMean, ActivationStd, ActivationZeroFraction])
def test_activation_statistics_return_python_floats(metric_class):
    result = metric_class().compute(group(activations=[[0.0, 1.0, 2.0]]))
    assert type(result) is float


@pytest.mark.parametrize("metric_class", [ActivationMean, ActivationStd, ActivationZeroFraction])
def test_activation_statistics_of_empty_outputs_are_none(metric_class):
    assert metric_class().compute(group(activations=np.zeros((0, 4)))) is None


# --- histograms --------------------------------------------------------------------------------


def test_weight_histogram_counts_values_in_equal_bins_between_min_and_max():
    result = WeightHistogram(bins=4).compute(group(weights=[[0.0, 1.0, 2.0, 3.0], [3.0, 3.0, 0.5, 2.9]]))
    assert isinstance(result, Histogram)
    np.testing.assert_allclose(result.edges, [0.0, 0.75, 1.5, 2.25, 3.0])
    # bins: [0, .75) -> 0, 0.5; [.75, 1.5) -> 1; [1.5, 2.25) -> 2; [2.25, 3] -> 3, 3, 3, 2.9
    np.testing.assert_array_equal(result.counts, [2, 1, 1, 4])


def test_histogram_default_has_default_bins():
    result = GradientHistogram().compute(group(gradients=np.linspace(-1.0, 1.0, 100)))
    assert result.counts.size == DEFAULT_BINS
    assert result.edges.size == DEFAULT_BINS + 1
    assert result.counts.sum() == 100


def test_histogram_ignores_nan_and_inf():
    values = [0.0, 1.0, np.nan, np.inf, -np.inf, 2.0]
    result = ActivationHistogram(bins=2).compute(group(activations=[values]))
    assert result.counts.sum() == 3
    np.testing.assert_allclose(result.edges, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(result.counts, [1, 2])
    assert np.all(np.isfinite(result.edges))


@pytest.mark.parametrize(
    "metric_class, kind",
    [(WeightHistogram, "weights"), (GradientHistogram, "gradients"),
     (ActivationHistogram, "activations")],
)
def test_histogram_of_only_non_finite_values_is_none(metric_class, kind):
    assert metric_class(bins=3).compute(group(**{kind: [[np.nan, np.inf, -np.inf]]})) is None


@pytest.mark.parametrize(
    "metric_class, kind",
    [(WeightHistogram, "weights"), (GradientHistogram, "gradients"),
     (ActivationHistogram, "activations")],
)
def test_histogram_of_empty_array_is_none(metric_class, kind):
    assert metric_class(bins=3).compute(group(**{kind: np.zeros((0, 2))})) is None


def test_histogram_of_constant_values_puts_everything_in_one_bin():
    result = WeightHistogram(bins=5).compute(group(weights=np.full(7, 2.0)))
    assert result.counts.sum() == 7
    assert np.count_nonzero(result.counts) == 1


@pytest.mark.parametrize("bins", [0, -1, 2.5, True, "10"])
def test_histogram_rejects_bins_that_are_not_a_positive_int(bins):
    with pytest.raises(ValueError, match="bins must be a positive int"):
        WeightHistogram(bins=bins)


def test_histogram_metric_keeps_layer_and_every_options():
    metric = ActivationHistogram(bins=4, layers="enc*", every=5)
    assert (metric.bins, metric.layers, metric.every) == (4, "enc*", 5)


@pytest.mark.parametrize("offset", [0.0, 1.0, 1e3, 1e6])
def test_activation_std_matches_two_pass_numpy_even_with_a_large_mean(offset):
    rng = np.random.default_rng(7)
    values = (rng.standard_normal((16, 8, 5, 5)) * 0.5 + offset).astype(np.float32)
    expected = np.std(values.astype(np.float64))
    assert moments(values).std == pytest.approx(expected, rel=1e-9)
    assert moments(values).mean == pytest.approx(np.mean(values.astype(np.float64)), rel=1e-12)


def test_activation_std_of_constant_values_is_zero():
    assert moments(np.full((4, 3), 2.5, dtype=np.float32)).std == 0.0
