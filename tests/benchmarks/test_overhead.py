"""The overhead benchmark runs end to end and reports every configuration (never a timing)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import overhead
from benchmarks.overhead import markdown
from tests.conftest import require_framework

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "overhead.py"
CONFIGURATIONS = ("no ikkuna", "attached, no metrics", "default metrics, every step",
                  "default metrics, every=10", "all built-in metrics, every step")


def run_benchmark(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *arguments], capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def quick_torch_mlp() -> dict[str, Any]:
    """The JSON of a quick run of the torch MLP (torch required)."""
    require_framework("torch")
    done = run_benchmark("--framework", "torch", "--model", "mlp", "--quick", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    output: dict[str, Any] = json.loads(done.stdout)
    return output


@pytest.mark.framework
def test_quick_json_reports_every_configuration_with_finite_ratios(quick_torch_mlp):
    output = quick_torch_mlp
    assert output["errors"] == []
    assert output["models"]["mlp"]["parameters"] == {"torch": 307}
    for table in ("time_ratio", "seconds_per_step", "peak_rss_mib", "peak_rss_ratio"):
        values = output[table]["torch mlp"]
        assert list(output[table]) == ["torch mlp"]
        assert tuple(values) == CONFIGURATIONS
        assert all(math.isfinite(value) and value > 0 for value in values.values()), values
    assert output["time_ratio"]["torch mlp"]["no ikkuna"] == 1.0
    assert output["peak_rss_ratio"]["torch mlp"]["no ikkuna"] == 1.0
    assert output["memory_runs"] == 1  # --quick: one process per cell
    assert {config: len(runs) for config, runs in output["peak_rss_runs_mib"]["torch mlp"].items()} == (
        dict.fromkeys(CONFIGURATIONS, 1))


@pytest.mark.framework
def test_markdown_has_the_machine_line_and_a_row_per_configuration_in_both_tables(quick_torch_mlp):
    lines = markdown(quick_torch_mlp).splitlines()
    assert lines[0].startswith("Machine: ") and "CPUs" in lines[0] and "torch " in lines[0]
    assert [line for line in lines if line.startswith("| configuration |")] == [
        "| configuration | torch MLP |"] * 2
    for config in CONFIGURATIONS[1:]:
        assert sum(line.startswith(f"| {config} |") for line in lines) == 2


def test_a_framework_that_is_not_a_choice_is_refused():
    done = run_benchmark("--framework", "theano")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


def test_peak_rss_is_the_median_of_the_runs_and_a_failed_run_is_reported(monkeypatch):
    peaks = iter([500.0, 400.0, 700.0, 650.0])  # no ikkuna: 500, 700; attached: 400, failed

    def run_children(tasks, timeout, jobs, verbose=False):
        assert [task["configuration"] for task in tasks] == [
            "no ikkuna", "attached, no metrics"] * 2  # the runs of all cells interleaved
        found = [{"peak_rss_mib": next(peaks)} for _ in tasks]
        found[3] = overhead.ChildFailed("killed")
        return found

    monkeypatch.setattr(overhead, "run_children", run_children)
    monkeypatch.setattr(overhead, "CONFIGURATIONS", dict.fromkeys(CONFIGURATIONS[:2]))
    args = overhead.parse_arguments(["--child", "{}"])  # no installed-framework check
    args.framework, args.model, args.timeout, args.verbose = ["torch"], ["mlp"], 1.0, False
    errors: list[str] = []
    runs = overhead.peak_memory(args, {"mlp": 5}, 2, errors, started=0.0)
    assert runs == {"torch mlp": {"no ikkuna": [500.0, 700.0], "attached, no metrics": [400.0]}}
    assert overhead.median_peaks(runs) == {"torch mlp": {"no ikkuna": 600.0,
                                                         "attached, no metrics": 400.0}}
    assert errors == ["peak RSS torch mlp, attached, no metrics: killed"]
    assert overhead.median_peaks({"torch mlp": {"no ikkuna": []}}) == {"torch mlp": {"no ikkuna": None}}
