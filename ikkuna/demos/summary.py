"""What a demo prints at its end: the result, where the run, report and logs are, the diagnosis."""

from __future__ import annotations

import os
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
        return os.path.relpath(script)
    return f"{sys.executable} -m ikkuna"


def print_summary(outcome: DemoOutcome) -> None:
    """Tell the person where the run, the report and the logs are, and what the doctor says."""
    monitor = outcome.monitor
    store = monitor.store_path
    command = _ikkuna_command()
    print(f"\nheld-out accuracy: {outcome.test_accuracy:.3f} after {monitor.step + 1} steps")
    print(f"run:         {monitor.run}")
    flag = ""
    if store is not None:
        print(f"store:       {os.path.abspath(store / DATABASE_FILE)}")
        if os.path.abspath(store) != os.path.abspath("ikkuna-runs"):
            flag = f" --store {store}"
    if outcome.report is not None:
        print(f"report:      {os.path.abspath(outcome.report)}    (open it in a browser)")
    if outcome.tensorboard is not None:
        print(f"tensorboard: tensorboard --logdir {os.path.abspath(outcome.tensorboard)}")
    print(f"see it:      {command} show {monitor.run}{flag}    (all runs: {command} runs{flag})")
    for note in outcome.notes:
        print(f"note:        {note}")
    for problem in monitor.problems:
        print(f"problem:     {problem.message}")
    print(f"\n{command} doctor {monitor.run}{flag} says:")
    if not outcome.findings:
        print("  no problems found")
    for finding in outcome.findings:
        print("  " + finding.describe().replace("\n", "\n  "))
