"""What a demo prints at its end: the result, where the run is, how to look at it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ikkuna.core.monitor import Monitor
from ikkuna.sinks.schema import DATABASE_FILE


def _ikkuna_command() -> str:
    """How this user runs `ikkuna`: the bare name if it is on PATH, else the venv's script."""
    script = Path(sys.executable).parent / "ikkuna"
    found = shutil.which("ikkuna")
    if found and Path(found).resolve() == script.resolve():
        return "ikkuna"
    if script.exists():
        return os.path.relpath(script)
    return f"{sys.executable} -m ikkuna"


def print_summary(monitor: Monitor, test_accuracy: float) -> None:
    """Tell the person where the run is stored and how to look at it."""
    store = monitor.store_path
    print(f"\nheld-out accuracy: {test_accuracy:.3f} after {monitor.step + 1} steps")
    print(f"run:   {monitor.run}")
    if store is not None:
        print(f"store: {os.path.abspath(store / DATABASE_FILE)}")
        flag = "" if os.path.abspath(store) == os.path.abspath("ikkuna-runs") else f" --store {store}"
        command = _ikkuna_command()
        print(f"see it: {command} show {monitor.run}{flag}    (all runs: {command} runs{flag})")
    for problem in monitor.problems:
        print(f"problem: {problem.message}")
