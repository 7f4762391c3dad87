"""The floors benchmark measures every row it reports (never a timing)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.architectures import CNN, parameter_count
from benchmarks.floors import markdown, per_step_with_worker, ratios
from tests.conftest import require_framework

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "floors.py"
TORCH_ROWS = ("ikkuna, default metrics", "ikkuna without its statistics",
              "ikkuna without its statistics nor distance_from_init", "spare core, inline",
              "spare core, on a thread", "one read, alone", "ikkuna's statistics, alone")
KERAS_CNN_ROWS = ("ikkuna, default metrics", "ikkuna, default metrics, its callback doing nothing",
                  "ikkuna's host side, alone")
JAX_CNN_ROWS = ("ikkuna, no metrics", "a no-op IO callback, ordered",
                "ikkuna, default metrics", "ikkuna, default metrics, its callbacks doing nothing",
                "the same, with the outputs' and gradients' statistics computed in the graph",
                "ikkuna's host side, alone")
JAX_ROWS = ("ikkuna, no metrics", "a no-op IO callback, ordered", "a no-op IO callback, unordered")


def run_floors(*arguments: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(SCRIPT), "--steps", "1", "--rounds", "1", "--json",
                           *arguments], capture_output=True, text=True, timeout=600, check=False,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def assert_measured(entry: dict[str, Any], rows: tuple[str, ...]) -> None:
    assert tuple(entry["ratios"]) == rows
    assert math.isfinite(entry["baseline_ms"]) and entry["baseline_ms"] > 0
    assert all(math.isfinite(ratio) and ratio > 0 for ratio in entry["ratios"].values())


@pytest.mark.framework
def test_torch_reports_each_measurement_and_the_values_a_cnn_step_reads():
    require_framework("torch")
    found = run_floors("--framework", "torch")
    assert list(found) == ["torch CNN", "torch MLP"]
    assert_measured(found["torch CNN"], TORCH_ROWS)
    assert_measured(found["torch MLP"], ("ikkuna, no metrics", "three no-op hooks"))
    # each weight, gradient, update and initial weight, and the layer outputs (at least the
    # first conv's and its ReLU's, 64x32x32x32 each)
    assert found["torch CNN"]["values_read"] > 4 * parameter_count(CNN) + 2 * 64 * 32 * 32 * 32


@pytest.mark.framework
def test_compiled_adds_the_fused_statistics_and_how_long_compiling_took(tmp_path):
    require_framework("torch")
    # a cache of its own: compiled from scratch, as on a fresh machine
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    found = run_floors("--framework", "torch", "--compiled", env=env)
    assert_measured(found["torch CNN"], (*TORCH_ROWS, "fused statistics, alone"))
    assert found["torch CNN"]["compile_seconds"] > 0
    assert any((tmp_path / "inductor").iterdir())  # torch.compile did build kernels


@pytest.mark.framework
def test_keras_mlp_reports_ikkuna_and_a_no_op_host_callback():
    require_framework("tensorflow")
    require_framework("keras")
    found = run_floors("--framework", "keras")
    assert list(found) == ["Keras CNN", "Keras MLP"]
    assert_measured(found["Keras CNN"], KERAS_CNN_ROWS)
    assert_measured(found["Keras MLP"], ("ikkuna, no metrics", "a no-op host callback"))


@pytest.mark.framework
def test_jax_reports_the_cnn_s_callbacks_and_host_side_and_the_mlp_s_ordered_and_unordered_callback():
    require_framework("jax")
    found = run_floors("--framework", "jax")
    assert list(found) == ["JAX CNN", "JAX MLP"]
    assert_measured(found["JAX CNN"], JAX_CNN_ROWS)
    assert_measured(found["JAX MLP"], JAX_ROWS)


@pytest.mark.framework
def test_jax_statistics_in_the_graph_restore_how_the_adapter_hands_values_over():
    require_framework("jax")
    import ikkuna.adapters.jax as adapter
    from benchmarks.floors import jax_cnn

    kept = adapter.to_host_in_parts
    found = jax_cnn(steps=1, rounds=1)
    assert_measured(found, JAX_CNN_ROWS)
    assert adapter.to_host_in_parts is kept


def test_the_threaded_measurement_times_every_step_s_work_to_its_end():
    done: list[int] = []
    steps: list[int] = []

    def work() -> None:
        time.sleep(0.01)
        done.append(1)

    seconds = per_step_with_worker(lambda: steps.append(1), work, steps=5)
    assert len(steps) == 5 + 2  # two warm-up steps, whose work is not handed over
    assert len(done) == 5
    assert seconds >= 0.009  # instant steps: the time is the work's, all of it


def test_a_failing_work_is_raised_after_the_steps_instead_of_leaving_the_timing_waiting():
    def work() -> None:
        raise ValueError("on purpose")

    with pytest.raises(ValueError, match="on purpose"):  # after every step, not hanging
        per_step_with_worker(lambda: None, work, steps=3)


def test_ratios_alternate_the_measurements_and_add_the_work_timed_alone_to_the_step():
    calls: list[str] = []

    def timed(name: str, seconds: float) -> Callable[[], float]:
        def run() -> float:
            calls.append(name)
            return seconds
        return run

    found = ratios(timed("step", 2.0), {"with ikkuna": timed("with ikkuna", 3.0)}, rounds=2,
                   alone={"work": timed("work", 1.0)})
    assert calls == ["step", "with ikkuna", "work"] * 2
    assert found == {"baseline_ms": 2000.0, "ratios": {"with ikkuna": 1.5, "work": 1.5}}


def test_markdown_shows_each_row_in_milliseconds_and_as_a_ratio():
    found = {"torch CNN": {"baseline_ms": 40.0, "ratios": {"one read": 1.05}, "values_read": 11e6,
                           "compile_seconds": 14.6}}
    lines = markdown(found).splitlines()
    assert lines[:4] == [
        "| workload | measurement | ms per step | ratio to the step |",
        "|---|---|---:|---:|",
        "| torch CNN | the step without ikkuna | 40 | 1.00 |",
        "| torch CNN | one read | 42 | 1.05 |",
    ]
    assert "torch CNN: 11.0 million values read a step." in lines
    assert "torch.compile took 15 s." in lines


def test_a_framework_that_is_not_a_choice_is_refused():
    done = subprocess.run([sys.executable, str(SCRIPT), "--framework", "theano"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


@pytest.mark.framework
def test_without_statistics_answers_constants_while_it_times_and_then_restores_the_reducers():
    require_framework("torch")
    import torch

    import ikkuna.adapters.torch as adapter
    from benchmarks.floors import _without_statistics
    from ikkuna.core.arrays import Layout

    kept = dict(adapter.REDUCERS)
    tensor = torch.full((2, 3, 4, 4), float("nan"))  # read, it would give NaN moments
    seen: dict[str, Any] = {}

    def timed() -> float:
        layout = Layout(batch_axis=0, channel_axis=1)
        seen.update({name: reducer(tensor, layout) for name, reducer in adapter.REDUCERS.items()})
        return 0.25

    assert _without_statistics(timed)() == 0.25
    assert math.isfinite(seen["moments"].mean) and seen["sum_squares"] == 1.0
    assert seen["fired_units"].tolist() == [True, True, True]
    assert adapter.REDUCERS == kept

    def failing() -> float:
        raise RuntimeError("the step failed")

    with pytest.raises(RuntimeError, match="the step failed"):
        _without_statistics(failing)()
    assert adapter.REDUCERS == kept
