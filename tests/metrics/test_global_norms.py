"""Global norms over every parameter: numpy references, reset per step, and the bus."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ikkuna.core.arrays import Array
from ikkuna.core.bus import Bus, MetricSlot
from ikkuna.core.events import Event
from ikkuna.metrics.global_norms import (
    GlobalGradientNorm,
    GlobalUpdateNorm,
    GlobalUpdateToWeightRatio,
    GlobalWeightNorm,
)
from tests.metrics.events import FC, WEIGHT_LAYOUT, group

RNG = np.random.default_rng(0)
PARAMETERS = [RNG.standard_normal((4, 3)), RNG.standard_normal(4), RNG.standard_normal((2, 4, 3, 3))]


def concatenated_norm(arrays) -> float:
    """The textbook global norm: one vector of every entry, float64."""
    return float(np.linalg.norm(np.concatenate([np.ravel(a).astype(np.float64) for a in arrays])))


@pytest.mark.parametrize(
    "metric_class, kind",
    [(GlobalWeightNorm, "weights"), (GlobalGradientNorm, "gradients"), (GlobalUpdateNorm, "updates")],
)
def test_global_norm_is_the_norm_of_all_parameters_concatenated(metric_class, kind):
    metric = metric_class()
    for values in PARAMETERS:
        assert metric.compute(group(**{kind: values})) is None
    expected = concatenated_norm(np.asarray(p, dtype=np.float32) for p in PARAMETERS)
    assert metric.finish_step(0) == pytest.approx(expected, rel=1e-12)


def test_global_norm_starts_again_at_each_step():
    metric = GlobalWeightNorm()
    metric.compute(group(weights=[3.0, 4.0]))
    assert metric.finish_step(0) == 5.0
    metric.compute(group(weights=[6.0, 8.0]))
    assert metric.finish_step(1) == 10.0


def test_global_norm_of_a_step_without_parameters_records_nothing():
    metric = GlobalGradientNorm()
    assert metric.finish_step(0) is None
    metric.compute(group(gradients=np.zeros(3)))
    assert metric.finish_step(1) == 0.0


def test_global_norm_accumulates_in_float64_so_float32_squares_do_not_overflow():
    metric = GlobalWeightNorm()
    metric.compute(group(weights=[3e20]))
    metric.compute(group(weights=[4e20]))
    assert metric.finish_step(0) == pytest.approx(5e20, rel=1e-6)


def test_global_update_to_weight_ratio_is_global_update_norm_over_global_weight_norm():
    metric = GlobalUpdateToWeightRatio()
    updates = [p * 1e-3 * (i + 1) for i, p in enumerate(PARAMETERS)]
    for weights, update in zip(PARAMETERS, updates):
        metric.compute(group(weights=weights, updates=update))
    as32 = lambda arrays: [np.asarray(a, dtype=np.float32) for a in arrays]  # noqa: E731
    expected = concatenated_norm(as32(updates)) / concatenated_norm(as32(PARAMETERS))
    result = metric.finish_step(0)
    assert result == pytest.approx(expected, rel=1e-12)
    assert result != pytest.approx(2e-3)  # not the mean of the per-parameter ratios 1e-3, 2e-3, 3e-3
    assert metric.finish_step(1) is None


@pytest.mark.parametrize("update, expected", [([0.0, 0.0], 0.0), ([0.0, 1.0], math.inf)])
def test_global_update_to_weight_ratio_of_zero_weights(update, expected):
    metric = GlobalUpdateToWeightRatio()
    metric.compute(group(weights=[0.0, 0.0], updates=update))
    assert metric.finish_step(0) == expected


def test_the_bus_records_one_run_level_value_per_step():
    slot = MetricSlot(GlobalWeightNorm())
    bus = Bus([slot], "run", on_problem=lambda problem: None)
    for step, scale in enumerate((1.0, 2.0)):
        bus.open_step(step, 0)
        for role, values in (("weight", [[3.0, 0.0]]), ("bias", [4.0])):
            array = Array.from_numpy(np.asarray(values, dtype=np.float32) * scale, WEIGHT_LAYOUT)
            bus.publish(Event("weights", step, 0, FC, role, array=array))
        records = bus.close_step()
        assert [(r.metric, r.layer, r.param, r.step, r.value) for r in records] == [
            ("global_weight_norm", None, None, step, 5.0 * scale)
        ]
