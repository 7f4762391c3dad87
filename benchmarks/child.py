"""The work of one child process: the timed rounds of a framework, or one run for peak RSS.

The parent (``overhead.py``) starts a child per framework for timing and one per framework,
model and configuration for memory (peak RSS only grows within a process), each with a
timeout, and reads the child's last line, which starts with :data:`RESULT_MARKER`.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
from typing import Any

from benchmarks.architectures import ARCHITECTURES
from benchmarks.workloads import CONFIGURATIONS, loop_module

RESULT_MARKER = "benchmark-result: "


def timing(framework: str, steps: dict[str, int], rounds: int, store: str) -> dict[str, Any]:
    """Per model of ``steps``: its parameters and, per configuration, each round's seconds.

    A round times every configuration once on a fresh model; odd rounds go in reverse order,
    so drift of the machine weighs on all configurations alike.
    """
    loop = loop_module(framework)
    result: dict[str, Any] = {}
    for model, model_steps in steps.items():
        architecture = ARCHITECTURES[model]
        seconds: dict[str, list[float]] = {config: [] for config in CONFIGURATIONS}
        for round_index in range(rounds):
            order = list(CONFIGURATIONS)[:: -1 if round_index % 2 else 1]
            for config in order:
                options = CONFIGURATIONS[config]
                options = None if options is None else {**options, "store": store}
                seconds[config].append(loop.run(architecture, options, model_steps))
                _progress(f"{framework} {model} round {round_index + 1}/{rounds} {config}: "
                          f"{seconds[config][-1]:.2f} s")
        result[model] = {"parameters": loop.parameters(architecture), "seconds": seconds}
    return result


def peak_memory(framework: str, model: str, config: str, steps: int, store: str) -> dict[str, Any]:
    """Peak RSS (MiB) of this process after one run of ``steps`` steps (plus the warm-up)."""
    options = CONFIGURATIONS[config]
    options = None if options is None else {**options, "store": store}
    loop_module(framework).run(ARCHITECTURES[model], options, steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return {"peak_rss_mib": peak / 2**20 if sys.platform == "darwin" else peak / 2**10}


def main(task: dict[str, Any]) -> int:
    """Run ``task`` (from ``--child``) with a private store; print its result as the last line."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="ikkuna-benchmark-") as store:
        if task["task"] == "timing":
            result = timing(task["framework"], task["steps"], task["rounds"], store)
        else:
            result = peak_memory(task["framework"], task["model"], task["configuration"],
                                 task["steps"], store)
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
