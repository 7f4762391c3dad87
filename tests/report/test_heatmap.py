"""Histograms over steps as one bins x steps grid."""

from __future__ import annotations

import numpy as np
import pytest

from ikkuna.core.events import Histogram
from ikkuna.report.heatmap import GRID_BINS, heatmap


def test_histograms_with_moving_edges_are_spread_onto_one_value_grid_keeping_their_mass():
    narrow = Histogram([2.0, 2.0], [0.0, 0.5, 1.0])
    wide = Histogram([1.0, 3.0], [-1.0, 0.0, 1.0])
    grid = heatmap([(0, narrow), (5, wide)])
    assert grid.by_value
    np.testing.assert_array_equal(grid.steps, [0, 5])
    assert grid.edges[0] == -1.0 and grid.edges[-1] == 1.0 and grid.edges.size == GRID_BINS + 1
    np.testing.assert_allclose(grid.fractions.sum(axis=0), [1.0, 1.0])
    below_zero = grid.edges[1:] <= 0.0
    assert grid.fractions[below_zero, 0].sum() == pytest.approx(0.0)
    assert grid.fractions[below_zero, 1].sum() == pytest.approx(0.25)


def test_vectors_without_edges_keep_their_bins_and_shorter_ones_are_padded_with_nan():
    grid = heatmap([(0, np.array([1.0, 3.0])), (1, np.array([1.0, 1.0, 2.0]))])
    assert not grid.by_value
    np.testing.assert_array_equal(grid.edges, [0, 1, 2, 3])
    np.testing.assert_allclose(grid.fractions[:, 0], [0.25, 0.75, np.nan])
    np.testing.assert_allclose(grid.fractions[:, 1], [0.25, 0.25, 0.5])


def test_a_step_with_no_counts_is_blank_not_divided_by_zero():
    grid = heatmap([(0, Histogram([0.0, 0.0], [0.0, 1.0, 2.0])), (1, Histogram([1.0, 1.0], [0.0, 1.0, 2.0]))])
    assert np.isnan(grid.fractions[:, 0]).all()
    assert np.nansum(grid.fractions[:, 1]) == pytest.approx(1.0)
