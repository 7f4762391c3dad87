"""Statistics metrics may declare instead of values: exact against numpy, combinable, and the
bus keeps no copy of a tensor whose every reader declared a statistic."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ikkuna.core import kinds as K
from ikkuna.core.arrays import CHANNELS_LAST, NO_LAYOUT, Array, Layout
from ikkuna.core.bus import Bus, MetricSlot
from ikkuna.core.events import Event
from ikkuna.core.layers import LayerInfo
from ikkuna.core.metric import EventGroup, Metric
from ikkuna.core.statistics import (
    FIRED_UNITS,
    MOMENTS,
    ROW_LENGTH,
    ROW_PARTIALS_RTOL,
    SUM_SQUARES,
    Moments,
    combine_fired,
    combine_moments,
    fired_units,
    moments,
    moments_of_rows,
)

RELU = LayerInfo("relu", "other", "numpy", {}, activation="relu")
TANH = LayerInfo("tanh", "other", "numpy", {}, activation="tanh")


def expected_moments(values: np.ndarray) -> tuple[float, float, float, float]:
    flat = values.astype(np.float64).reshape(-1)
    return float(flat.mean()), float(flat.std()), float(np.sqrt(np.sum(flat * flat))), float(np.mean(flat == 0))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("offset", [0.0, 3.0, 1e4])
def test_moments_match_numpy_in_float64(dtype, offset):
    rng = np.random.default_rng(3)
    values = rng.standard_normal((8, 4, 3, 3)) * 2 + offset
    values[values < offset - 1] = 0
    values = values.astype(dtype)
    found = moments(values)
    mean, std, norm, zero_fraction = expected_moments(values)
    assert found.count == values.size
    assert found.mean == pytest.approx(mean, rel=1e-12, abs=1e-12)
    assert found.std == pytest.approx(std, rel=1e-9)
    assert found.norm == pytest.approx(norm, rel=1e-12)
    assert found.zero_fraction == zero_fraction


def test_moments_of_constant_values_have_zero_spread_and_nan_propagates():
    assert moments(np.full((4, 3), 2.5, dtype=np.float32)).std == 0.0
    with_nan = moments(np.array([1.0, np.nan, 3.0]))
    assert math.isnan(with_nan.mean) and math.isnan(with_nan.std) and math.isnan(with_nan.norm)
    assert moments(np.array([0.0, -0.0, np.nan])).zeros == 2


def test_moments_of_an_empty_array_count_nothing():
    empty = moments(np.zeros((0, 3), dtype=np.float32))
    assert empty.count == 0 and math.isnan(empty.mean) and empty.norm == 0.0


@settings(max_examples=60, deadline=None)
@given(
    parts=st.lists(
        hnp.arrays(np.float64, st.integers(0, 12),
                   elements=st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False)),
        min_size=1, max_size=4,
    )
)
def test_combined_moments_equal_the_moments_of_the_joined_values(parts):
    joined = np.concatenate(parts)
    combined = combine_moments([moments(p) for p in parts])
    direct = moments(joined)
    assert combined.count == direct.count and combined.zeros == direct.zeros
    if direct.count:
        scale = max(1.0, float(np.max(np.abs(joined))))
        assert combined.mean == pytest.approx(direct.mean, abs=1e-12 * scale)
        assert combined.std == pytest.approx(direct.std, abs=1e-9 * scale)
        assert combined.sum_squares == pytest.approx(direct.sum_squares, rel=1e-12, abs=1e-300)


def test_fired_units_per_channel_in_either_layout_and_combined():
    values = np.zeros((2, 3, 4, 4), dtype=np.float32)  # NCHW, channel 1 fires once
    values[1, 1, 2, 3] = 0.5
    assert fired_units(values, 1).tolist() == [False, True, False]
    nhwc = np.moveaxis(values, 1, -1)
    assert fired_units(nhwc, -1).tolist() == [False, True, False]
    assert fired_units(np.zeros(0), 1) is None
    assert fired_units(np.array([0.0, 1.0]), None).tolist() == [True]
    other = np.array([True, False, False])
    assert combine_fired([other, fired_units(values, 1)]).tolist() == [True, True, False]
    assert combine_fired([np.array([True]), other]).tolist() == other.tolist()  # other channel count
    assert combine_fired([None, None]) is None


# -- the bus keeps statistics, not copies -------------------------------------------------------


class CountingArray:
    """Native stand-in that counts the copies the bus makes of it."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self.copies = 0


def counted(native: CountingArray, layout: Layout = CHANNELS_LAST) -> Array:
    def to_numpy(n: CountingArray) -> np.ndarray:
        n.copies += 1
        return n.values.copy()

    return Array(native, to_numpy, shape=native.values.shape, dtype=str(native.values.dtype),
                 layout=layout, view=lambda n: n.values)


class Mean(Metric):
    name = "test_mean"
    needs = ("activations",)
    statistic = MOMENTS

    def compute(self, group: EventGroup) -> float:
        return group.moments("activations").mean


class Fired(Metric):
    name = "test_fired"
    needs = ("activations",)
    statistic = FIRED_UNITS

    def compute(self, group: EventGroup) -> float | None:
        fired = group.statistic("activations", FIRED_UNITS)
        return None if fired is None else float(fired.sum())


class Values(Metric):
    name = "test_values"
    needs = ("activations",)

    def compute(self, group: EventGroup) -> float:
        return float(group["activations"].max())


class OnlyTanh(Values):
    name = "test_only_tanh"

    def applies_to(self, layer: LayerInfo) -> bool:
        return layer.activation == "tanh"


def run_step(metrics: list[Metric], arrivals: list[tuple[LayerInfo, Array]]) -> dict:
    bus = Bus([MetricSlot(m) for m in metrics], run="r", on_problem=lambda p: pytest.fail(p.message))
    bus.open_step(0, 0)
    for layer, array in arrivals:
        bus.publish(Event(K.ACTIVATIONS, 0, 0, layer, None, array=array))
    return {(r.metric, r.layer): r.value for r in bus.close_step()}


def test_statistic_metrics_make_no_copy_and_combine_two_arrivals_of_a_layer():
    rng = np.random.default_rng(0)
    first, second = (CountingArray(np.maximum(rng.standard_normal((4, 3)), 0)) for _ in range(2))
    arrays = [counted(first), counted(second)]
    records = run_step([Mean(), Fired()], [(RELU, arrays[0]), (RELU, arrays[1])])
    joined = np.concatenate([first.values, second.values])
    assert first.copies == second.copies == 0
    assert records[("test_mean", "relu")] == pytest.approx(joined.mean(), rel=1e-12)
    assert records[("test_fired", "relu")] == float(np.any(joined != 0, axis=0).sum())
    assert all(not a.has_values for a in arrays)  # nothing of the tensor is held


def test_a_values_metric_beside_statistic_metrics_costs_one_copy_per_arrival():
    native = CountingArray(np.arange(12, dtype=np.float32).reshape(4, 3))
    records = run_step([Mean(), Values(), Fired()], [(RELU, counted(native))])
    assert native.copies == 1
    assert records[("test_values", "relu")] == 11.0
    assert records[("test_mean", "relu")] == pytest.approx(5.5)


def test_applies_to_keeps_a_metric_and_its_copies_off_other_layers():
    relu_values, tanh_values = CountingArray(np.ones((2, 2))), CountingArray(np.ones((2, 2)) * 0.5)
    records = run_step([OnlyTanh()], [(RELU, counted(relu_values)), (TANH, counted(tanh_values))])
    assert relu_values.copies == 0 and tanh_values.copies == 1
    assert list(records) == [("test_only_tanh", "tanh")]


def test_values_of_an_array_kept_only_as_statistics_give_a_clear_error():
    array = counted(CountingArray(np.ones(3)), NO_LAYOUT)
    assert array.statistic(MOMENTS).count == 3
    array.release()
    assert array.statistic(MOMENTS).count == 3  # cached
    with pytest.raises(ValueError, match="not kept.*moments.*statistic"):
        array.numpy()
    with pytest.raises(ValueError, match="unknown statistic 'median'.*fired_units, moments"):
        Array.from_numpy(np.ones(2)).statistic("median")


def test_a_metric_declaring_an_unknown_statistic_is_refused_at_registration():
    class Bad(Mean):
        name = "bad"
        statistic = "median"

    with pytest.raises(ValueError, match="statistic 'median' is not one of fired_units, moments"):
        Bad.validate()


def test_from_host_copies_only_when_values_are_read():
    source = np.arange(6, dtype=np.float32)
    array = Array.from_host(source)
    assert array.statistic(MOMENTS).total == 15.0
    values = array.numpy()
    source[0] = 100.0
    assert values[0] == 0.0 and not values.flags.writeable


def test_moments_is_a_frozen_value_with_a_neutral_empty_element():
    found = moments(np.array([1.0, 2.0]))
    assert found + Moments(0, 0.0, 0.0, 0.0, 0) == found
    with pytest.raises(AttributeError):
        found.count = 3  # type: ignore[misc]


def test_moments_of_non_finite_values_warn_nothing():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = moments(np.array([1.0, np.inf, -np.inf, np.nan], dtype=np.float32))
    assert math.isnan(found.std) and found.count == 4


# -- moments from a framework's float32 row partials -------------------------------------------


def float32_row_partials(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a framework hands over: per row of ROW_LENGTH values, a float32 mean, the sum of
    deviations from it and their sum of squares, all computed in float32."""
    flat = values.astype(np.float32).reshape(-1)
    rows = [flat[i:i + ROW_LENGTH] for i in range(0, flat.size, ROW_LENGTH)]
    means = np.array([row.mean(dtype=np.float32) for row in rows], dtype=np.float32)
    deviations = [row - mean for row, mean in zip(rows, means)]
    return (means, np.array([d.sum(dtype=np.float32) for d in deviations]),
            np.array([np.square(d).sum(dtype=np.float32) for d in deviations]))


@pytest.mark.parametrize("size", [1, 1000, ROW_LENGTH, 5 * ROW_LENGTH + 7])
@pytest.mark.parametrize("offset", [0.0, 3.0, -1e4])
def test_moments_of_float32_rows_are_within_their_tolerance_of_float64(size, offset):
    values = (np.random.default_rng(size).standard_normal(size) * 0.5 + offset).astype(np.float32)
    values[::7] = 0.0
    zeros = int(np.count_nonzero(values == 0))
    found = moments_of_rows(*float32_row_partials(values), values.size, zeros)
    expected = moments(values)
    assert (found.count, found.zeros) == (expected.count, expected.zeros)
    assert found.sum_squares == pytest.approx(expected.sum_squares, rel=ROW_PARTIALS_RTOL)
    assert found.m2 == pytest.approx(expected.m2, rel=ROW_PARTIALS_RTOL, abs=1e-30)
    magnitudes = float(np.abs(values.astype(np.float64)).sum())
    assert found.total == pytest.approx(expected.total, abs=ROW_PARTIALS_RTOL * magnitudes)


@pytest.mark.parametrize("values", [np.array([1.0, np.nan]), np.array([np.inf, 1.0]),
                                    np.full(3000, 1e-15)], ids=["nan", "inf", "vanishing"])
def test_moments_of_rows_refuse_what_float32_rows_cannot_hold(values):
    """The caller computes these exactly instead (see the adapters)."""
    with np.errstate(invalid="ignore"):
        partials = float32_row_partials(values)
    assert moments_of_rows(*partials, values.size, 0) is None
    assert moments_of_rows(*float32_row_partials(np.zeros(5)), 5, 5) == Moments(5, 0.0, 0.0, 0.0, 5)


def test_large_arrays_are_summed_in_two_halves_as_exactly_as_in_one(monkeypatch):
    """Above the size where a helper thread sums the second half, the moments and fired units
    equal those of one pass (to float64 rounding); a forked child starts its own helper."""
    from ikkuna.core import statistics

    rng = np.random.default_rng(5)
    values = np.maximum(rng.standard_normal((40, 60, 60, 8)), 0).astype(np.float32)
    values[:, :, :, 3] = 0
    assert values.size >= statistics._TWO_HALVES_FROM
    halves, fired = moments(values), fired_units(values, -1)
    monkeypatch.setattr(statistics, "_TWO_HALVES_FROM", values.size + 1)
    whole = moments(values)
    assert (halves.count, halves.zeros) == (whole.count, whole.zeros)
    for name in ("total", "sum_squares", "m2"):
        assert getattr(halves, name) == pytest.approx(getattr(whole, name), rel=1e-12)
    assert fired.tolist() == fired_units(values, -1).tolist() == [True, True, True, False] + [True] * 4
    monkeypatch.undo()
    # a forked child has none of its parent's threads (and no holder of the lock): there the
    # helper must start anew; forking this test process itself could deadlock (JAX and
    # torch have threads here), so the hook os.register_at_fork runs in the child is called
    parents = statistics._helper()
    statistics._forget_helper_in_child()
    childs = statistics._helper()
    assert childs is not parents and childs.submit(int, "7").result(timeout=30) == 7
    parents.shutdown()


def test_the_helper_thread_sums_a_large_array_itself_instead_of_waiting_for_itself():
    from ikkuna.core import statistics

    values = np.ones(statistics._TWO_HALVES_FROM * 2, dtype=np.float32)
    inside = statistics._helper().submit(moments, values)
    assert inside.result(timeout=30) == moments(values)


def test_large_arrays_are_summed_here_when_the_helper_takes_no_more_work(monkeypatch):
    """At interpreter exit (a monitor detached then delivers its last steps) the helper
    refuses new work; the sums are then done on the calling thread, with the same result."""
    from ikkuna.core import statistics

    class ShutDown:
        def submit(self, *args, **kwargs):
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    values = np.arange(statistics._TWO_HALVES_FROM * 2, dtype=np.float32).reshape(-1, 4) % 7
    expected, fired = moments(values), fired_units(values, -1)
    monkeypatch.setattr(statistics, "_helper", ShutDown)
    assert moments(values) == expected
    assert fired_units(values, -1).tolist() == fired.tolist()


# -- float32 arrays: uncentered row sums, with a fallback -------------------------------------


def exact_moments(values: np.ndarray) -> Moments:
    """The float64 reference: float64 values never take the float32 rows."""
    return moments(np.asarray(values, dtype=np.float64))


FLOAT32_SAMPLES = {
    "normal": lambda rng, n: rng.standard_normal(n),
    "relu": lambda rng, n: np.maximum(rng.standard_normal(n), 0),
    "uniform": lambda rng, n: rng.random(n),
    "heavy tail": lambda rng, n: rng.lognormal(0, 2, n),  # a few values dominate the squares
    # sum_squares 3.9 m2 (with every 11th value zeroed below): just inside the uncentered gate
    "mean 2.1 spread 1": lambda rng, n: 2.1 + rng.standard_normal(n),
    "tiny": lambda rng, n: 1e-8 * rng.standard_normal(n),
    # the same two values throughout round alike in every row: the worst case found
    "two values alternating": lambda rng, n: np.resize(np.array([1.3517389, 0.35178673]), n),
}


@pytest.mark.parametrize("size", [1 << 15, (1 << 20) + 77], ids=["one thread", "two halves"])
@pytest.mark.parametrize("sample", FLOAT32_SAMPLES)
def test_large_float32_arrays_are_summed_by_rows_within_their_tolerance(size, sample, monkeypatch):
    from ikkuna.core import statistics

    assert size >= statistics._FLOAT32_ROWS_FROM
    rng = np.random.default_rng(size)
    values = FLOAT32_SAMPLES[sample](rng, size).astype(np.float32)
    values[::11] = 0.0
    taken = []
    original = statistics.moments_of_row_sums
    monkeypatch.setattr(statistics, "moments_of_row_sums",
                        lambda *args: taken.append(original(*args)) or taken[-1])
    found, expected = moments(values), exact_moments(values)
    assert taken and all(part is not None for part in taken)  # the rows were trusted
    ratio = expected.sum_squares / expected.m2
    assert ratio < 4.0 and (sample != "mean 2.1 spread 1" or ratio > 3.5)
    assert (found.count, found.zeros) == (expected.count, expected.zeros)
    assert found.sum_squares == pytest.approx(expected.sum_squares, rel=ROW_PARTIALS_RTOL)
    assert found.m2 == pytest.approx(expected.m2, rel=ROW_PARTIALS_RTOL)
    magnitudes = float(np.abs(values.astype(np.float64)).sum())
    assert found.total == pytest.approx(expected.total, abs=ROW_PARTIALS_RTOL * magnitudes)


@pytest.mark.parametrize("offset", [1.8, 50.0, -1e4])
def test_float32_arrays_whose_mean_dwarfs_their_spread_are_summed_in_float64(offset):
    """Beyond sum_squares = 4 m2 the uncentered rows would cancel: float64 sums instead."""
    values = (np.random.default_rng(3).standard_normal(1 << 16) + offset).astype(np.float32)
    found, expected = moments(values), exact_moments(values)
    for name in ("total", "sum_squares", "m2"):
        assert getattr(found, name) == pytest.approx(getattr(expected, name), rel=1e-12)


def test_float32_arrays_with_nan_or_inf_give_what_float64_sums_give():
    for special in (np.nan, np.inf, -np.inf):
        values = np.ones(1 << 16, dtype=np.float32)
        values[123] = special
        with np.errstate(invalid="ignore"):
            expected = exact_moments(values)
        np.testing.assert_equal(moments(values).__dict__, expected.__dict__)


def test_moments_of_row_sums_refuse_what_they_cannot_hold():
    from ikkuna.core.statistics import moments_of_row_sums

    assert moments_of_row_sums(np.array([1.0, np.nan]), np.array([1.0, 1.0]), 512, 0) is None
    assert moments_of_row_sums(np.array([1.0, 1.0]), np.array([np.inf, 1.0]), 512, 0) is None
    assert moments_of_row_sums(np.array([1e-9]), np.array([1e-18]), 256, 0) is None  # vanishing
    # 256 values of 5 +- 1: sum_squares = 26 * 256 is 26 times m2
    assert moments_of_row_sums(np.array([1280.0]), np.array([26.0 * 256]), 256, 0) is None
    assert moments_of_row_sums(np.zeros(2), np.zeros(2), 300, 300) == Moments(300, 0.0, 0.0, 0.0, 300)
    # 256 values of +-1: m2 = sum_squares
    assert moments_of_row_sums(np.array([0.0]), np.array([256.0]), 256, 0) == Moments(256, 0.0, 256.0, 256.0, 0)


def test_float32_sum_of_squares_is_within_the_row_tolerance():
    from ikkuna.core.statistics import SUM_ROW_LENGTH, float32_sum_of_squares

    for size in (0, 5, SUM_ROW_LENGTH, 3 * SUM_ROW_LENGTH + 11):
        values = np.random.default_rng(size).lognormal(0, 2, size).astype(np.float32)
        expected = float(np.sum(values.astype(np.float64) ** 2))
        assert float32_sum_of_squares(values) == pytest.approx(expected, rel=ROW_PARTIALS_RTOL)
    assert float32_sum_of_squares(np.full(300, 1e30, dtype=np.float32)) == math.inf


@pytest.mark.parametrize("shape", [(7, 5), (3000, 3), (2, 4097), (70_000, 1), (64, 8, 8, 33),
                                   (1, 9), (5000, 1024)])
def test_fired_units_of_channels_last_arrays_equal_any_not_zero(shape):
    """The OR over wide rows equals ``np.any(x != 0)`` per channel: NaN fires, -0.0 does
    not, whatever the row count next to the rows folded into one wide row."""
    rng = np.random.default_rng(len(shape) + shape[-1])
    values = rng.standard_normal(shape).astype(np.float32)
    values[values < 1.5] = 0.0
    rows = values.reshape(-1, shape[-1])
    rows[:, 0] = -0.0
    if shape[-1] > 2:
        rows[-1, 2] = np.nan
        rows[:, 1] = 0.0
    expected = np.any(values != 0, axis=tuple(range(values.ndim - 1)))
    assert fired_units(values, -1).tolist() == expected.tolist()
    strided = values[..., ::-1]  # not contiguous: the plain reduction
    assert fired_units(strided, -1).tolist() == expected[::-1].tolist()


# -- an activation's moments and fired units share one "not zero" mask ------------------------


@pytest.mark.parametrize("shape", [(64, 9, 9, 7), (600, 40, 50)], ids=["one thread", "two halves"])
def test_fired_units_and_zeros_count_what_moments_count(shape):
    from ikkuna.core.statistics import fired_units_and_zeros

    rng = np.random.default_rng(7)
    values = np.maximum(rng.standard_normal(shape), 0).astype(np.float32)
    values[..., 1] = -0.0  # equal to zero, and not fired
    values.reshape(-1)[5] = np.nan  # not zero, and fired
    fired, zeros = fired_units_and_zeros(values, -1)
    assert zeros == int(np.count_nonzero(values == 0)) == moments(values).zeros
    assert fired.tolist() == np.any(values != 0, axis=tuple(range(values.ndim - 1))).tolist()
    assert fired_units_and_zeros(np.zeros((0, 3)), -1) == (None, 0)
    assert moments(values, zeros=3).zeros == 3  # a count the caller has is taken as it is


@pytest.mark.parametrize("first", [MOMENTS, FIRED_UNITS])
def test_an_activation_counts_its_zeros_once_for_moments_and_fired_units(first, monkeypatch):
    """Whichever statistic is read first, the mask is built once and the second reuses it;
    both equal the statistics computed on their own."""
    from ikkuna.core import statistics

    values = np.maximum(np.random.default_rng(8).standard_normal((32, 6, 6, 16)), 0).astype(np.float32)
    values[..., 4] = 0.0
    expected_moments, expected_fired = moments(values), fired_units(values, -1)
    calls = []
    original = statistics.fired_units_and_zeros
    monkeypatch.setattr(statistics, "fired_units_and_zeros",
                        lambda *args: calls.append(1) or original(*args))
    array = Array.from_host(values, CHANNELS_LAST)
    second = FIRED_UNITS if first == MOMENTS else MOMENTS
    found = {first: array.statistic(first), second: array.statistic(second)}
    assert len(calls) == 1
    assert found[MOMENTS] == expected_moments
    assert found[FIRED_UNITS].tolist() == expected_fired.tolist()
    assert found[FIRED_UNITS].tolist()[4] is False
    with pytest.raises(ValueError, match="unknown statistic"):  # kept inside, not a statistic
        array.statistic("zero_count")
    # a parameter (no channel axis) gets its moments alone
    weights = Array.from_host(values.reshape(-1, 16), Layout(out_axis=1, in_axis=0))
    assert weights.statistic(MOMENTS) == expected_moments and len(calls) == 1


def float64_sum_of_squares(values: np.ndarray) -> float:
    flat = values.astype(np.float64).reshape(-1)
    return float(np.dot(flat, flat))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("size", [7, 1 << 15, (1 << 20) + 999],
                         ids=["float64 sums", "float32 rows", "two halves"])
def test_sum_of_squares_is_what_moments_give_in_one_pass(dtype, size):
    from ikkuna.core.statistics import sum_of_squares

    values = (np.random.default_rng(size).standard_normal(size) * 3 + 0.5).astype(dtype)
    found = sum_of_squares(values.reshape(-1, 1) if size > 7 else values)
    exact = dtype in (np.float64, np.int32) or values.size < (1 << 15)  # only large float32 by rows
    rtol = 1e-12 if exact else ROW_PARTIALS_RTOL
    assert found == pytest.approx(float64_sum_of_squares(values), rel=rtol)
    assert found == pytest.approx(moments(values).sum_squares, rel=rtol)


@pytest.mark.parametrize("special", ["nan", "inf", "overflow", "vanishing", "zeros", "empty"])
def test_sum_of_squares_the_float32_rows_cannot_hold_are_summed_in_float64(special):
    from ikkuna.core.statistics import sum_of_squares

    values = np.random.default_rng(4).standard_normal(1 << 16).astype(np.float32)
    if special == "nan":
        values[9] = np.nan
    elif special == "inf":
        values[9] = -np.inf
    elif special == "overflow":
        values *= np.float32(1e30)  # float32 squares overflow; float64 holds them
    elif special == "vanishing":
        values *= np.float32(1e-30)  # float32 squares underflow to zero
    elif special == "zeros":
        values[:] = 0.0
    else:
        values = values[:0]
    with np.errstate(invalid="ignore", over="ignore"):
        expected = float64_sum_of_squares(values)
    found = sum_of_squares(values)
    if special in ("nan", "inf"):
        np.testing.assert_equal(found, expected)
    else:
        assert math.isfinite(found) and found == pytest.approx(expected, rel=1e-12)
        assert (found > 0) == (special in ("overflow", "vanishing"))


def test_sum_of_squares_refuses_complex_values_as_moments_do():
    from ikkuna.core.statistics import sum_of_squares

    values = np.ones(4, dtype=np.complex64)
    with pytest.raises(TypeError) as refused_by_moments:
        moments(values)
    with pytest.raises(TypeError) as refused:
        sum_of_squares(values)
    assert type(refused.value) is type(refused_by_moments.value)


def test_sum_of_row_squares_refuses_what_float32_rows_cannot_hold():
    from ikkuna.core.statistics import sum_of_row_squares

    assert sum_of_row_squares(np.array([2.0, 3.0]), 512) == 5.0
    assert sum_of_row_squares(np.array([np.inf, 1.0]), 512) is None  # a float32 overflow
    assert sum_of_row_squares(np.array([np.nan, 1.0]), 512) is None
    assert sum_of_row_squares(np.array([1e-19]), 256) is None  # vanishing: may have underflowed
    assert sum_of_row_squares(np.zeros(3), 700) is None  # all zero, or all underflowed


def squares_of(kind: str) -> Metric:
    """A metric that records the sum of squares of ``kind``'s values."""

    class Squares(Metric):
        name = f"test_{kind}_squares"
        needs = (kind,)
        statistic = SUM_SQUARES

        def compute(self, group: EventGroup) -> float:
            return group.statistic(kind, SUM_SQUARES)

    return Squares()


def test_a_sum_squares_metric_makes_no_copy_and_adds_the_squares_of_two_arrivals():
    rng = np.random.default_rng(5)
    first, second = (CountingArray(rng.standard_normal((40, 3))) for _ in range(2))
    records = run_step([squares_of(K.ACTIVATIONS)], [(RELU, counted(first)), (RELU, counted(second))])
    expected = float64_sum_of_squares(np.concatenate([first.values, second.values]))
    assert records[("test_activations_squares", "relu")] == pytest.approx(expected, rel=1e-12)
    assert first.copies == second.copies == 0


@pytest.mark.parametrize("where", ["host", "framework"])
def test_sum_squares_is_read_off_moments_already_known(where, monkeypatch):
    """Whether numpy or the framework's reducer would compute it."""
    from ikkuna.core import statistics

    values = np.random.default_rng(6).standard_normal((50, 4))
    reducers = {MOMENTS: lambda native, layout: moments(native),
                SUM_SQUARES: lambda native, layout: pytest.fail("summed again")}
    array = (Array.from_host(values) if where == "host" else
             Array(values, np.array, shape=values.shape, dtype="float64", reducers=reducers))
    known = array.statistic(MOMENTS)
    monkeypatch.setattr(statistics, "sum_of_squares", lambda values: pytest.fail("summed again"))
    assert array.statistic(SUM_SQUARES) == known.sum_squares


def test_an_all_zero_float32_array_is_known_without_a_float64_pass(monkeypatch):
    from ikkuna.core import statistics
    from ikkuna.core.statistics import sum_of_squares

    monkeypatch.setattr(statistics, "_float64_sum_of_squares", lambda flat: pytest.fail("float64"))
    assert sum_of_squares(np.zeros(1 << 16, dtype=np.float32)) == 0.0
    assert sum_of_squares(np.zeros(1 << 21, dtype=np.float32)) == 0.0  # two halves


class WeightMean(Mean):
    name = "test_weight_mean"
    needs = ("weights",)

    def compute(self, group: EventGroup) -> float:
        return group.moments("weights").mean


@pytest.mark.parametrize("kind", [K.ACTIVATIONS, K.WEIGHTS], ids=["kept to the step's end", "at once"])
def test_a_kind_read_as_moments_and_as_sums_of_squares_is_summed_once(kind):
    """Whatever the metrics' order, the moments come first and the sum of squares is read
    off them."""
    values = np.random.default_rng(9).standard_normal((6, 5))
    reduced: list[str] = []
    reducers = {MOMENTS: lambda native, layout: reduced.append(MOMENTS) or moments(native),
                SUM_SQUARES: lambda native, layout: pytest.fail("a second pass")}
    array = Array(values, np.array, shape=values.shape, dtype="float64", layout=CHANNELS_LAST,
                  reducers=reducers)
    metrics = [squares_of(kind), Mean() if kind == K.ACTIVATIONS else WeightMean()]
    bus = Bus([MetricSlot(m) for m in metrics], run="r", on_problem=lambda p: pytest.fail(p.message))
    bus.open_step(0, 0)
    param = None if kind == K.ACTIVATIONS else "weight"
    bus.publish(Event(kind, 0, 0, RELU, param, array=array))
    records = [r.value for r in bus.close_step()]
    assert reduced == [MOMENTS]
    assert records == [pytest.approx(float(np.sum(values**2)), rel=1e-12),
                       pytest.approx(float(values.mean()), rel=1e-12)]


class Size(Metric):
    name = "test_size"
    needs = ("activations",)

    def compute(self, group: EventGroup) -> float:
        return float(group["activations"].size)


def test_a_kept_statistic_that_cannot_be_computed_disables_its_metrics_not_the_step():
    """Moments of complex values fail: the metric that declared them is disabled with one
    warning and one problem, as if its compute had raised; the others go on."""
    problems = []
    bus = Bus([MetricSlot(Mean()), MetricSlot(Size())], run="r", on_problem=problems.append)
    for step in range(2):
        bus.open_step(step, 0)
        values = np.ones((4, 3), dtype=np.complex64)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            bus.publish(Event(K.ACTIVATIONS, step, 0, RELU, None,
                              array=Array.from_host(values, CHANNELS_LAST)))
            records = bus.close_step()
        assert [(r.metric, r.value) for r in records] == [("test_size", 12.0)]
        assert len(caught) == (1 if step == 0 else 0)
    assert len(problems) == 1 and problems[0].source == "metric:test_mean"
    assert "TypeError" in problems[0].message and problems[0].layer == "relu"
