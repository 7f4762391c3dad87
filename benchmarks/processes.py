"""Start child processes of ``overhead.py`` with a timeout and read their results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.child import RESULT_MARKER

SCRIPT = Path(__file__).with_name("overhead.py")
_STDERR_TAIL = 2000  # characters of a failed child's stderr kept in its error


class ChildFailed(Exception):
    """A child timed out, exited with an error or printed no result."""


def run_child(task: dict[str, Any], timeout: float, verbose: bool = False) -> dict[str, Any]:
    """Run ``overhead.py --child TASK`` and return its result; :class:`ChildFailed` if none."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    environment.setdefault("KERAS_BACKEND", "tensorflow")
    command = [sys.executable, str(SCRIPT), "--child", json.dumps(task)]
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE,
                              stderr=None if verbose else subprocess.PIPE, text=True,
                              timeout=timeout, env=environment, check=False)
    except subprocess.TimeoutExpired:
        raise ChildFailed(f"timed out after {timeout:.0f} s") from None
    results = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if done.returncode != 0 or not results:
        tail = (done.stderr or "")[-_STDERR_TAIL:].strip()
        raise ChildFailed(f"exit status {done.returncode}: {tail}")
    result: dict[str, Any] = json.loads(results[-1][len(RESULT_MARKER):])
    return result


def run_children(tasks: Sequence[dict[str, Any]], timeout: float, jobs: int,
                 verbose: bool = False) -> list[dict[str, Any] | ChildFailed]:
    """Run ``tasks`` ``jobs`` at a time; each result in order, or the child's failure."""

    def attempt(task: dict[str, Any]) -> dict[str, Any] | ChildFailed:
        try:
            return run_child(task, timeout, verbose)
        except ChildFailed as failure:
            return failure

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(attempt, tasks))
