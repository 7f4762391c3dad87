"""The y scale of a panel: log where values span decades, symlog with zeros or negatives."""

from __future__ import annotations

import numpy as np
import pytest

from ikkuna.report.scale import linear_threshold, y_scale


@pytest.mark.parametrize("values", [[1e-4, 1e-2, 1.0], [0.5, 50.0], np.logspace(-8, 3, 20)])
def test_positive_values_spanning_two_decades_or_more_get_a_log_axis(values):
    assert y_scale(values) == "log"


@pytest.mark.parametrize("values", [[1.0, 2.0, 99.0], [0.2, 0.25, 0.3], [5.0], [-3.0, -1.0, 2.0]])
def test_values_within_two_decades_stay_linear(values):
    assert y_scale(values) == "linear"


@pytest.mark.parametrize("values", [[0.0, 1e-4, 1.0], [-100.0, 0.5, 3.0], [-1e-3, -1.0]])
def test_zeros_or_negatives_with_a_wide_span_get_symlog(values):
    assert y_scale(values) == "symlog"


def test_nan_and_inf_are_ignored_when_choosing():
    assert y_scale([np.nan, 1.0, 2.0, np.inf]) == "linear"
    assert y_scale([np.nan, 1e-3, 1.0, -np.inf]) == "log"


@pytest.mark.parametrize("values", [[], [np.nan, np.inf], [0.0, 0.0]])
def test_nothing_to_span_is_linear(values):
    assert y_scale(values) == "linear"


def test_symlog_turns_linear_at_the_smallest_non_zero_magnitude():
    assert linear_threshold([0.0, -1e-3, 2.0, np.nan]) == pytest.approx(1e-3)
    assert linear_threshold([0.0, 1e-20, 1.0]) == pytest.approx(1e-9)
    assert linear_threshold([0.0]) == 1.0
