"""distance_from_init against ||w_t - w_0|| computed from a simulated training."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ikkuna.core.layers import LayerInfo
from ikkuna.metrics.distance import DistanceFromInit
from tests.metrics.events import group

OTHER = LayerInfo("other", "dense", "numpy", {"weight": "weight"})


def sgd_trajectory(initial: np.ndarray, steps: int, seed: int = 0):
    """(weights after, update) of each step of a random float32 walk, as an optimizer makes."""
    rng = np.random.default_rng(seed)
    weights = initial.astype(np.float32)
    for _ in range(steps):
        after = (weights - np.float32(0.01) * rng.standard_normal(weights.shape)).astype(np.float32)
        yield after, after - weights
        weights = after


def test_distance_is_the_norm_of_weights_minus_the_weights_before_the_first_step():
    initial = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    metric = DistanceFromInit()
    for step, (weights, update) in enumerate(sgd_trajectory(initial, 6)):
        result = metric.compute(group(step=step, weights=weights, updates=update))
        expected = np.linalg.norm(weights.astype(np.float64) - initial.astype(np.float64))
        assert result == pytest.approx(expected, rel=1e-12), step


def test_the_initial_value_is_recovered_exactly_from_the_first_step():
    initial = np.random.default_rng(2).standard_normal(100).astype(np.float32)
    weights, update = next(sgd_trajectory(initial, 1))
    metric = DistanceFromInit()
    metric.compute(group(weights=weights, updates=update))
    np.testing.assert_array_equal(metric._initial[("fc", "weight")], initial)


def test_each_layer_and_parameter_has_its_own_initial_value():
    metric = DistanceFromInit()
    metric.compute(group(weights=[1.0, 1.0], updates=[1.0, 1.0]))  # fc.weight from [0, 0]
    metric.compute(group(param="bias", weights=[5.0], updates=[0.0]))  # fc.bias from [5]
    metric.compute(group(layer=OTHER, weights=[3.0], updates=[3.0]))  # other.weight from [0]
    assert metric.compute(group(weights=[3.0, 4.0], updates=[2.0, 3.0])) == 5.0
    assert metric.compute(group(param="bias", weights=[2.0], updates=[-3.0])) == 3.0
    assert metric.compute(group(layer=OTHER, weights=[-4.0], updates=[-7.0])) == 4.0


def test_distance_at_the_first_step_is_the_norm_of_its_update():
    assert DistanceFromInit().compute(group(weights=[[1.0, 2.0]], updates=[[0.3, 0.4]])) == \
        pytest.approx(0.5, rel=1e-6)


def test_distance_returns_a_python_float():
    assert type(DistanceFromInit().compute(group(weights=[1.0], updates=[0.0]))) is float


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spread", [1e-3, 10.0])  # near (exact float32 differences), and far
def test_difference_norm_over_several_blocks_equals_the_float64_norm(dtype, spread):
    """float64 parameters: exact to rounding; float32: float32 differences and row sums,
    within ROW_PARTIALS_RTOL, also where the values are far apart (differences rounded)."""
    from ikkuna.core.statistics import ROW_PARTIALS_RTOL
    from ikkuna.metrics.distance import _BLOCK, difference_norm

    rng = np.random.default_rng(5)
    a = rng.standard_normal(2 * _BLOCK + 17).astype(dtype)
    b = (a + rng.standard_normal(a.size) * spread).astype(dtype)
    expected = np.linalg.norm(a.astype(np.float64) - b.astype(np.float64))
    rtol = 1e-12 if dtype == "float64" else ROW_PARTIALS_RTOL
    assert difference_norm(a.reshape(-1, 1), b.reshape(-1, 1)) == pytest.approx(expected, rel=rtol)


@pytest.mark.parametrize("value", [1e20, 3e38])
def test_float32_differences_that_overflow_float32_are_measured_in_float64(value):
    """A diverging parameter's distance stays finite where float64 holds it (the float32
    square of 1e20, and the float32 difference 3e38 - -3e38, overflow)."""
    from ikkuna.metrics.distance import difference_norm

    a = np.full(1000, value, dtype=np.float32)
    expected = math.sqrt(1000) * 2 * float(np.float32(value))
    assert difference_norm(a, -a) == pytest.approx(expected, rel=1e-12)
    assert difference_norm(np.full(3, np.inf, dtype=np.float32), np.zeros(3, np.float32)) == math.inf
