"""The ``ikkuna report`` command."""

from __future__ import annotations

import pytest

from ikkuna.cli import main
from tests.conftest import require_framework
from tests.report.stored import write_run


@pytest.fixture(autouse=True)
def matplotlib():
    return require_framework("matplotlib")


def test_report_writes_to_the_given_directory_and_prints_where_the_page_is(private_store, tmp_path, capsys):
    write_run(private_store, "shown", metrics={"loss", "weight_norm"})
    assert main(["report", "shown", "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    index = (tmp_path / "out" / "index.html").resolve()
    assert index.is_file() and str(index) in out
    assert "2 images" in out


def test_report_without_a_run_reports_the_latest(private_store, capsys):
    write_run(private_store, "older", metrics={"loss"})
    write_run(private_store, "latest", metrics={"loss"})
    assert main(["report"]) == 0
    assert str((private_store / "reports" / "latest" / "index.html").resolve()) in capsys.readouterr().out


def test_report_of_two_runs_compares_them(private_store, capsys):
    write_run(private_store, "a", metrics={"loss"})
    write_run(private_store, "b", metrics={"loss", "weight_norm"})
    assert main(["report", "a", "b", "--store", str(private_store)]) == 0
    out = capsys.readouterr().out
    assert str((private_store / "reports" / "compare-a-vs-b" / "index.html").resolve()) in out
    assert "2 images" in out


def test_report_of_an_unknown_run_fails_and_lists_the_runs_there(private_store, capsys):
    write_run(private_store, "present", metrics={"loss"})
    assert main(["report", "absent"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ikkuna report:") and "absent" in err and "present" in err


@pytest.mark.parametrize("output", ["afile", "afile/report"])
def test_an_output_that_cannot_be_a_directory_fails_with_one_line_not_a_traceback(
        private_store, tmp_path, capsys, output):
    write_run(private_store, "shown", metrics={"loss"})
    (tmp_path / "afile").write_text("mine", encoding="utf-8")
    assert main(["report", "shown", "-o", str(tmp_path / output)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ikkuna report: cannot write the report: ") and "afile" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (tmp_path / "afile").read_text(encoding="utf-8") == "mine"
