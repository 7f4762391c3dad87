"""Terminal tables and numbers: the layout ``ikkuna show`` and the console sink print."""

from __future__ import annotations

import math

from ikkuna.core.tables import format_table, format_value


def test_values_show_four_significant_digits():
    assert [format_value(v) for v in (0.31214, 1234567.0, 1e-5, -2.5)] == [
        "0.3121", "1.235e+06", "1e-05", "-2.5"]


def test_zero_and_non_finite_values_show_as_python_prints_them():
    assert [format_value(v) for v in (0.0, math.nan, math.inf, -math.inf)] == [
        "0.0", "nan", "inf", "-inf"]


def test_a_histogram_shows_its_bins_and_a_missing_value_is_an_empty_cell():
    assert format_value(0.5, bins=30) == "[30 bins]"
    assert format_value(None) == ""


def test_a_table_aligns_columns_under_a_dashed_rule_without_trailing_blanks():
    table = format_table(("layer", "norm"), [("encoder.0", "1.5"), ("head", "")], indent="  ")
    assert table.split("\n") == [
        "  layer      norm",
        "  ---------  ----",
        "  encoder.0  1.5",
        "  head",
    ]
