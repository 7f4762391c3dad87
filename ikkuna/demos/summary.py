"""What a demo prints at its end: the result, where the run, report and logs are, the diagnosis."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ikkuna.core.monitor import Monitor
from ikkuna.sinks.schema import DATABASE_FILE


@dataclass
class DemoOutcome:
    """A finished demo: its monitor (``.run`` is the run's name), accuracy and files."""

    monitor: Monitor
    test_accuracy: float
    tensorboard: Path | None = None
    report: Path | None = None
    findings: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def run(self) -> str:
        return self.monitor.run


def _ikkuna_command() -> str:
    """How this user runs `ikkuna`: the bare name if it is on PATH, else the venv's script."""
    script = Path(sys.executable).parent / "ikkuna"
    found = shutil.which("ikkuna")
    if found and Path(found).resolve() == script.resolve():
        return "ikkuna"
    if script.exists():
        try:
            return shlex.quote(os.path.relpath(script))
        except ValueError:  # another drive (Windows)
            return shlex.quote(str(script))
    return f"{sys.executable} -m ikkuna"


def print_summary(outcome: DemoOutcome) -> None:
    """Tell the person where the run, the report and the logs are, and what the doctor says."""
    monitor = outcome.monitor
    store = monitor.store_path
    command = _ikkuna_command()
    run = shlex.quote(monitor.run)
    print(f"\nheld-out accuracy: {outcome.test_accuracy:.3f} after {monitor.step + 1} steps")
    print(f"run:         {monitor.run}")
    flag = ""
    if store is not None:
        print(f"store:       {os.path.abspath(store / DATABASE_FILE)}")
        if os.path.abspath(store) != os.path.abspath("ikkuna-runs"):
            flag = f" --store {shlex.quote(str(store))}"
    if outcome.report is not None:
        print(f"report:      {os.path.abspath(outcome.report)}    (open it in a browser)")
    if outcome.tensorboard is not None:
        print(f"tensorboard: tensorboard --logdir {shlex.quote(os.path.abspath(outcome.tensorboard))}")
    if store is not None:
        print(f"see it:      {command} show {run}{flag}    (all runs: {command} runs{flag})")
    for note in outcome.notes:
        print(f"note:        {note}")
    for problem in monitor.problems:
        print(f"problem:     {problem.message}")
    if store is not None:
        print(f"\n{command} doctor {run}{flag} says:")
        if not outcome.findings:
            print("  no problems found")
        for finding in outcome.findings:
            print("  " + finding.describe().replace("\n", "\n  "))
