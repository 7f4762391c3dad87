"""Overhead of ikkuna on training loops: time ratios and peak memory, with and without it.

    .venv/bin/python benchmarks/overhead.py [--framework torch keras jax] [--model mlp cnn]
        [--steps N] [--rounds R] [--memory-runs M] [--quick] [--json] [--timeout S] [--verbose]

For each framework (default: every installed one), the parity MLP and a CNN of 1,143,242
parameters (``benchmarks/architectures.py``) train with batch 64 and SGD with momentum in
torch's usual loop, Keras ``model.fit`` and a Flax NNX step under ``nnx.jit``, in each
configuration of ``benchmarks/workloads.py``. Timing: one child process per framework runs
rounds; a round times every configuration once on a fresh model (warm-up and compilation
excluded), and the table shows the median over rounds of each round's time ratio to
``no ikkuna``. Memory: child processes per framework, model and configuration (three each by
default) train the same steps and report their peak RSS; the table shows each cell's median.
Every child has a timeout; a failed one is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import child, results, tables
from benchmarks.architectures import ARCHITECTURES, DESCRIPTIONS
from benchmarks.processes import ChildFailed, run_child, run_children
from benchmarks.workloads import (
    BATCH,
    CONFIGURATIONS,
    LEARNING_RATE,
    MOMENTUM,
    REQUIREMENTS,
    WARMUP_STEPS,
    installed_frameworks,
)

DEFAULT_STEPS = {"mlp": 100, "cnn": 10}
QUICK_STEPS = {"mlp": 5, "cnn": 2}
DEFAULT_ROUNDS = 3
#: Processes per peak RSS cell: a process's peak varies by about 10% from one to the next.
DEFAULT_MEMORY_RUNS = 3


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", nargs="+", choices=list(REQUIREMENTS),
                        help="frameworks to measure (default: every installed one)")
    parser.add_argument("--model", nargs="+", choices=list(ARCHITECTURES),
                        help="models to train (default: all)")
    parser.add_argument("--steps", type=int, help="timed steps per run, for both models "
                        f"(default: MLP {DEFAULT_STEPS['mlp']}, CNN {DEFAULT_STEPS['cnn']})")
    parser.add_argument("--rounds", type=int, help=f"timing rounds (default {DEFAULT_ROUNDS})")
    parser.add_argument("--memory-runs", type=int, help="processes per peak RSS cell, whose "
                        f"median is reported (default {DEFAULT_MEMORY_RUNS})")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round, 1 memory "
                        f"run, MLP {QUICK_STEPS['mlp']} and CNN {QUICK_STEPS['cnn']} steps")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds each child process may run (default 600)")
    parser.add_argument("--verbose", action="store_true", help="show the children's stderr")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a task for a child process (JSON)
    args = parser.parse_args(argv)
    if args.child is None:
        installed = installed_frameworks()
        missing = sorted(set(args.framework or ()) - set(installed))
        if missing:
            parser.error(f"not installed: {', '.join(missing)}; installed: {', '.join(installed)}")
        args.framework = args.framework or installed
        args.model = args.model or list(ARCHITECTURES)
        if not args.framework:
            parser.error(f"none of the frameworks is installed: {', '.join(REQUIREMENTS)}")
        if any(value is not None and value < 1
               for value in (args.steps, args.rounds, args.memory_runs)):
            parser.error("--steps, --rounds and --memory-runs take a positive integer")
    return args


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Time every framework, then measure peak RSS; the results as one JSON-ready object."""
    started = time.perf_counter()
    defaults = QUICK_STEPS if args.quick else DEFAULT_STEPS
    steps = {model: args.steps or defaults[model] for model in args.model}
    rounds = args.rounds or (1 if args.quick else DEFAULT_ROUNDS)
    memory_runs = args.memory_runs or (1 if args.quick else DEFAULT_MEMORY_RUNS)
    errors: list[str] = []
    timings = time_frameworks(args, steps, rounds, errors, started)
    peak_runs = peak_memory(args, steps, memory_runs, errors, started)
    peaks = median_peaks(peak_runs)
    output: dict[str, Any] = {
        "machine": tables.machine(args.framework), "batch": BATCH,
        "optimizer": f"SGD, learning rate {LEARNING_RATE}, momentum {MOMENTUM}",
        "warmup_steps": WARMUP_STEPS, "steps": steps, "rounds": rounds,
        "memory_runs": memory_runs,
        "configurations": CONFIGURATIONS,
        "metrics": {framework: results.metric_counts(framework) for framework in args.framework},
        "models": {model: {"description": DESCRIPTIONS[model], "parameters": {
            framework: timings.get(framework, {}).get(model, {}).get("parameters")
            for framework in args.framework}} for model in args.model},
        "time_ratio": {}, "seconds_per_step": {}, "peak_rss_mib": peaks,
        "peak_rss_ratio": {workload: results.memory_ratios(p) for workload, p in peaks.items()},
        "peak_rss_runs_mib": peak_runs,
    }
    for framework in args.framework:
        for model in args.model:
            workload = f"{framework} {model}"
            seconds = timings.get(framework, {}).get(model, {}).get("seconds")
            output["time_ratio"][workload], output["seconds_per_step"][workload] = (
                results.time_results(seconds, steps[model]))
    output["errors"] = errors
    output["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    return output


def time_frameworks(args: argparse.Namespace, steps: dict[str, int], rounds: int,
                    errors: list[str], started: float) -> dict[str, Any]:
    """One timing child per framework, one after the other; failures go to ``errors``."""
    timings: dict[str, Any] = {}
    for framework in args.framework:
        _progress(f"timing {framework}: {rounds} round(s), steps {steps}", started)
        task = {"task": "timing", "framework": framework, "steps": steps, "rounds": rounds}
        try:
            timings[framework] = run_child(task, args.timeout, args.verbose)
        except ChildFailed as failure:
            errors.append(f"timing {framework}: {failure}")
    return timings


def peak_memory(args: argparse.Namespace, steps: dict[str, int], runs: int, errors: list[str],
                started: float) -> dict[str, dict[str, list[float]]]:
    """Peak RSS (MiB) per workload and configuration from ``runs`` child processes each, two at
    a time (the runs of all cells interleaved); failures go to ``errors``."""
    cells = [(framework, model, config) for framework in args.framework for model in args.model
             for config in CONFIGURATIONS]
    tasks = [{"task": "memory", "framework": framework, "model": model, "configuration": config,
              "steps": steps[model]} for _ in range(runs) for framework, model, config in cells]
    _progress(f"peak RSS: {len(tasks)} child processes", started)
    found = run_children(tasks, args.timeout, jobs=min(2, os.cpu_count() or 1),
                         verbose=args.verbose)
    measured: dict[tuple[str, str, str], list[float]] = {cell: [] for cell in cells}
    for task, result in zip(tasks, found):
        cell = (task["framework"], task["model"], task["configuration"])
        if isinstance(result, ChildFailed):
            errors.append(f"peak RSS {cell[0]} {cell[1]}, {cell[2]}: {result}")
        else:
            measured[cell].append(result["peak_rss_mib"])
    runs_by_workload: dict[str, dict[str, list[float]]] = {}
    for (framework, model, config), values in measured.items():
        runs_by_workload.setdefault(f"{framework} {model}", {})[config] = values
    return runs_by_workload


def median_peaks(runs: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float | None]]:
    """Each cell's median peak RSS (None where every run failed)."""
    return {workload: {config: statistics.median(values) if values else None
                       for config, values in cells.items()}
            for workload, cells in runs.items()}


def markdown(output: dict[str, Any]) -> str:
    """The machine line, the setup, the two tables and how long it took."""
    steps = ", ".join(f"{model.upper()} {count}" for model, count in output["steps"].items())
    counts = {f"default {c['default']}, full {c['full']}" for c in output["metrics"].values()}
    metrics = counts.pop() if len(counts) == 1 else "; ".join(
        f"{framework}: default {c['default']}, full {c['full']}"
        for framework, c in output["metrics"].items())
    lines = [f"Machine: {tables.machine_line(output['machine'])}.", ""]
    lines += [f"- {model.upper()} ({results.parameters_text(entry['parameters'])}): "
              f"{entry['description']}." for model, entry in output["models"].items()]
    setup = (f"- Batch {output['batch']}, {output['optimizer']}; timed steps per run: {steps}, "
             f"after {output['warmup_steps']} warm-up steps; {output['rounds']} round(s).")
    presets = (f"- Metrics per preset: {metrics}. `every=10` applies to the monitor; `full` keeps "
               "each metric's own schedule (`spectral_alpha`: every 100 steps).")
    lines += [
        setup,
        presets,
        "",
        "Time per step, median ratio to the same loop without ikkuna (1.00 = no overhead):",
        "",
        tables.ratio_table(output["time_ratio"], output["seconds_per_step"]),
        "",
        (f"Peak RSS of a run in its own process, MiB, median of {output['memory_runs']} "
         "process(es) (ratio to no ikkuna):"),
        "",
        tables.memory_table(output["peak_rss_mib"], output["peak_rss_ratio"]),
        "",
        f"Took {output['elapsed_seconds']:.0f} s.",
    ]
    lines += [f"Failed: {error}" for error in output["errors"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    if args.child is not None:
        return child.main(json.loads(args.child))
    output = measure(args)
    print(json.dumps(output, indent=2) if args.json else markdown(output))
    return 1 if output["errors"] else 0


def _progress(message: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:5.0f} s] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
