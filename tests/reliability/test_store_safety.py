"""The store under a killed process, two writers at once, and run names that try to escape."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ikkuna
from ikkuna.sinks.store import COMMIT_SECONDS

pytestmark = pytest.mark.framework
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 120


def writer(store: Path, run: str, steps: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.store_writer", str(store), run, str(steps)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def stored_steps(store: Path, run: str) -> dict[str, set[int]]:
    with sqlite3.connect(store / "ikkuna.sqlite") as connection:
        rows = connection.execute(
            "SELECT r.metric, r.step FROM records r JOIN runs ON runs.id = r.run_id "
            "WHERE runs.name = ?", (run,)).fetchall()
    steps: dict[str, set[int]] = {}
    for metric, step in rows:
        steps.setdefault(metric, set()).add(step)
    return steps


def test_sigkill_mid_run_keeps_every_step_flushed_commit_seconds_before(torch, tmp_path):
    child = writer(tmp_path, "killed", 100_000)
    try:
        last = -1
        for line in child.stdout:  # bounded: the child prints a line per step
            last = int(line.split()[1])
            if last >= 40:
                # step `last` finished, so every step before it was handed to the store (at
                # the start of the next one); the store's thread commits what it was handed
                # every COMMIT_SECONDS: wait for three of them, while training goes on
                time.sleep(3 * COMMIT_SECONDS)
                child.send_signal(signal.SIGKILL)
                break
        child.wait(timeout=TIMEOUT_S)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL and last >= 40
    with ikkuna.open_run("killed", store=tmp_path) as run:  # opens, whatever the kill hit
        assert len(run.series("loss")) >= last
    steps = stored_steps(tmp_path, "killed")
    assert set(steps) >= {"loss", "gradient_norm", "activation_mean", "weight_norm"}
    for metric, found in steps.items():
        if metric == "dead_unit_fraction":  # one value per 10-step window
            continue
        assert set(range(last)) <= found, metric


def test_two_processes_writing_one_store_at_once_both_keep_every_record(torch, tmp_path):
    children = [writer(tmp_path, name, 150) for name in ("first", "second")]
    try:
        outputs = [child.communicate(timeout=TIMEOUT_S) for child in children]
    finally:
        for child in children:
            child.kill()
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0 and "detached" in out, err
        assert "ikkuna: sink" not in err  # no sink was disabled
    counts = {name: stored_steps(tmp_path, name) for name in ("first", "second")}
    for name, steps in counts.items():
        assert steps["loss"] == set(range(150)), name
        assert steps["gradient_norm"] == set(range(150)), name
    assert counts["first"] == counts["second"]


@pytest.mark.parametrize("name", ["../escape", "/tmp/absolute", "a/../../b", "..", ".", "x\\y"])
def test_run_names_cannot_leave_the_store_directory(torch, tmp_path, name):
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="run= must not contain"):
        ikkuna.attach(model, run=name, store=tmp_path)
    assert not any(Path(tmp_path).parent.glob("escape*"))
    assert os.listdir(tmp_path) == []  # nothing was written
