"""write_report for one run: one PNG per metric and a self-contained, escaped index.html."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import ikkuna
from ikkuna.report import ReportFiles, write_report
from ikkuna.report.drawing import NON_FINITE_COLOUR, image_size
from ikkuna.report.names import run_folder_name, safe_name
from tests.conftest import require_framework
from tests.report.pages import Page, has_colour, read_png
from tests.report.stored import (
    HISTOGRAM_METRICS,
    NAN_STEP,
    ODD_METRIC,
    SCALAR_METRICS,
    SCRIPT_LAYER,
    write_run,
)

RUN = "exp <b>&"
METRICS = {**SCALAR_METRICS, **HISTOGRAM_METRICS}
#: panels each metric's figure needs: one per layer (run-level: one), one per histogram series
PANELS = {metric: len({layer for layer, _ in keys}) for metric, keys in SCALAR_METRICS.items()}
PANELS.update({metric: len(keys) for metric, keys in HISTOGRAM_METRICS.items()})
RED = (1.0, 0.0, 0.0)


@pytest.fixture
def report(private_store) -> ReportFiles:
    require_framework("matplotlib")
    assert write_run(private_store, RUN) == RUN
    return write_report([RUN])


def image_of(files: ReportFiles, metric: str):
    path = files.html.parent / f"{safe_name(metric)}.png"
    assert path in files.images
    return read_png(path)


def test_one_png_per_metric_and_an_index_page_under_the_store_by_default(report, private_store):
    directory = private_store / "reports" / run_folder_name(RUN)
    assert directory.name.startswith("exp_b_-")  # unsafe characters: the safe name and a hash
    assert report.html == directory / "index.html" and report.html.is_file()
    assert len(report.images) == len(set(report.images)) == len(METRICS)
    assert all(path.parent == directory and path.is_file() for path in report.images)
    assert "/" not in safe_name(ODD_METRIC) and (directory / f"{safe_name(ODD_METRIC)}.png").is_file()


def test_each_png_decodes_to_a_non_blank_image_sized_for_its_panels(report):
    for metric, panels in PANELS.items():
        image = image_of(report, metric)
        width, height = image_size(panels)
        assert image.shape[:2] == (height, width), metric
        drawn = np.any(image[..., :3] < 0.9, axis=-1).mean()
        assert 0.01 < drawn < 0.9, (metric, drawn)
    single, triple = image_size(1), image_size(3)
    assert triple == (3 * single[0], single[1])  # three layers: three panels side by side


def test_nan_steps_are_marked_red_only_where_there_are_some(report):
    assert NON_FINITE_COLOUR == "red"
    assert has_colour(image_of(report, "gradient_norm"), RED)
    assert not has_colour(image_of(report, "weight_norm"), RED)
    page = Page(report.html)
    assert f"non-finite values in head weight from step {NAN_STEP}" in page.text


def test_the_page_is_self_contained_with_every_png_embedded(report):
    page = Page(report.html)
    assert page.embedded_images() == [path.read_bytes() for path in report.images]
    assert not page.all("script") and not page.all("link") and "<script" not in page.raw.lower()
    links = [attrs["href"] for attrs in page.all("a")]
    sections = [attrs["id"] for attrs in page.all("section")]
    assert len(sections) == len(METRICS)
    assert links == [f"#{section}" for section in sections]


def test_names_from_the_store_are_text_on_the_page_never_markup(report):
    page = Page(report.html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.raw
    assert "exp &lt;b&gt;&amp;" in page.raw
    assert all(tag not in ("b", "i") for tag, _ in page.tags)
    for text in (SCRIPT_LAYER, RUN, ODD_METRIC, "<b>config</b>"):
        assert text in page.text


def test_the_top_says_framework_versions_config_and_times(report):
    page = Page(report.html)
    with ikkuna.open_run(RUN) as run:
        started = run.started
    for text in ("numpy", f"version: numpy{np.__version__}", "config: lr0.1", "started", "finished"):
        assert text in page.text.replace("\n", ""), text
    assert started > 0 and "not finished" not in page.text


def test_the_diagnosis_lists_the_doctors_findings(report):
    findings = ikkuna.diagnose(RUN)
    assert findings, "a NaN gradient norm is something the doctor reports"
    page = Page(report.html)
    assert "Diagnosis" in page.text
    for finding in findings:
        assert finding.message in page.text and finding.hint in page.text


def test_a_healthy_run_says_the_doctor_found_nothing(private_store, tmp_path):
    require_framework("matplotlib")
    name = write_run(private_store, "healthy", metrics={"weight_norm"})
    files = write_report([name], directory=tmp_path / "out")
    assert files.html == tmp_path / "out" / "index.html"
    assert "The doctor found no problems." in Page(files.html).text
    assert [path.name for path in files.images] == ["weight_norm.png"]


def test_without_matplotlib_the_error_says_what_to_install(private_store, monkeypatch):
    write_run(private_store, "plain", metrics={"loss"})
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'ikkuna\[report\]'"):
        write_report(["plain"])


def test_runs_must_be_a_list_of_names_not_one_name(private_store):
    write_run(private_store, "plain", metrics={"loss"})
    with pytest.raises(TypeError, match="list of run names"):
        write_report("plain")


def test_an_unknown_run_is_refused_naming_the_runs_there(private_store):
    require_framework("matplotlib")
    write_run(private_store, "present", metrics={"loss"})
    with pytest.raises(ikkuna.RunNotFoundError, match="present"):
        write_report(["absent"])


def test_runs_whose_safe_names_are_alike_keep_reports_of_their_own(private_store):
    require_framework("matplotlib")
    pages = []
    for name in ("a b", "a_b", "a?b"):
        write_run(private_store, name, metrics={"loss"})
        pages.append(write_report([name]).html)
    assert len({page.parent for page in pages}) == 3
    assert all(name in page.read_text(encoding="utf-8") for name, page in zip(("a b", "a_b"), pages))
