"""Comparing runs: one overlay PNG per metric in either run, one colour per run."""

from __future__ import annotations

import pytest

import ikkuna
from ikkuna.report import write_report
from ikkuna.report.names import safe_name
from ikkuna.report.panels import RUN_PANEL, collect
from tests.conftest import require_framework
from tests.report.pages import Page, has_colour, read_png
from tests.report.stored import HISTOGRAM_METRICS, LAYERS, ODD_METRIC, SCALAR_METRICS, write_run

EVERY = set(SCALAR_METRICS) | set(HISTOGRAM_METRICS)
FIRST_COLOUR, SECOND_COLOUR = (0x1F / 255, 0x77 / 255, 0xB4 / 255), (0xFF / 255, 0x7F / 255, 0x0E / 255)


@pytest.fixture
def two_runs(private_store) -> tuple[str, str]:
    require_framework("matplotlib")
    base = write_run(private_store, "base", metrics=EVERY - {ODD_METRIC})
    tuned = write_run(private_store, "tuned", metrics=EVERY - {"learning_rate"}, scale=3.0)
    return base, tuned


def test_one_overlay_png_per_metric_in_either_run_under_a_compare_directory(two_runs, private_store):
    files = write_report(list(two_runs))
    assert files.html == private_store / "reports" / "compare-base-vs-tuned" / "index.html"
    assert sorted(path.name for path in files.images) == sorted(f"{safe_name(m)}.png" for m in EVERY)
    page = Page(files.html)
    assert len(page.all("section")) == len(EVERY) == len(page.embedded_images())
    assert "not recorded in run tuned" in page.text and "not recorded in run base" in page.text
    assert "base" in page.text and "tuned" in page.text


def test_each_panel_overlays_the_runs_in_the_order_given(two_runs):
    with ikkuna.open_run("base") as base, ikkuna.open_run("tuned") as tuned:
        plots = {plot.metric: plot for plot in collect([base, tuned])}
    loss = plots["loss"]
    assert [panel.title for panel in loss.panels] == [RUN_PANEL]
    assert [line.run for line in loss.panels[0].lines] == ["base", "tuned"]
    norms = plots["weight_norm"]
    assert [panel.title for panel in norms.panels] == [layer.name for layer in LAYERS]
    assert [(line.param, line.run) for line in norms.panels[0].lines] == [
        ("weight", "base"), ("weight", "tuned"), ("bias", "base"), ("bias", "tuned")]
    assert plots["learning_rate"].missing == ("tuned",) and plots[ODD_METRIC].missing == ("base",)
    histograms = plots["weight_histogram"]  # heatmaps cannot overlay: one panel per run
    assert len(histograms.panels) == 2 * len(LAYERS)
    assert histograms.panels[0].title.endswith("(base)") and histograms.panels[1].title.endswith("(tuned)")


def test_each_run_has_its_own_colour_in_the_picture(two_runs):
    files = write_report(list(two_runs))
    loss = read_png(files.html.parent / "loss.png")
    assert has_colour(loss, FIRST_COLOUR) and has_colour(loss, SECOND_COLOUR)
    only_base = read_png(files.html.parent / "learning_rate.png")
    assert has_colour(only_base, FIRST_COLOUR) and not has_colour(only_base, SECOND_COLOUR)


def test_a_run_cannot_be_compared_with_itself(two_runs):
    with pytest.raises(ValueError, match="once"):
        write_report(["base", "base"])


def test_dollar_signs_in_names_are_drawn_as_text_not_parsed_as_formulas(private_store):
    require_framework("matplotlib")
    odd = write_run(private_store, r"lr $\frac$", metrics={"loss", "weight_norm"})
    plain = write_run(private_store, "plain", metrics={"loss", "weight_norm"})
    files = write_report([odd, plain])  # a mathtext parse would fail on the legends
    assert [path.name for path in files.images] == ["loss.png", "weight_norm.png"]
