"""The machine line and the markdown tables of the overhead benchmark."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Mapping, Sequence

from benchmarks.workloads import BASELINE, CONFIGURATIONS

#: Packages whose versions the machine line names, per framework (name: distributions to try).
VERSIONED: dict[str, dict[str, tuple[str, ...]]] = {
    "torch": {"torch": ("torch",)},
    "keras": {"TensorFlow": ("tensorflow", "tensorflow-cpu"), "Keras": ("keras",)},
    "jax": {"JAX": ("jax",), "Flax": ("flax",), "optax": ("optax",)},
}
COLUMN_NAMES = {"torch": "torch", "keras": "Keras fit", "jax": "JAX jit", "mlp": "MLP", "cnn": "CNN"}
Cells = Mapping[str, Mapping[str, float | None]]  # workload -> configuration -> value


def machine(frameworks: Sequence[str]) -> dict[str, object]:
    """CPU model and count, platform, Python and the versions of the frameworks measured."""
    versions = {name: _version(distributions) for framework in frameworks
                for name, distributions in VERSIONED[framework].items()}
    return {"cpu": _cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "versions": versions}


def machine_line(description: Mapping[str, object]) -> str:
    versions = description["versions"]
    assert isinstance(versions, Mapping)
    named = ", ".join(f"{name} {version}" for name, version in versions.items())
    return (f"{description['cpu']}, {description['cpus']} CPUs, {description['platform']}, "
            f"Python {description['python']}; {named}")


def column(workload: str) -> str:
    """``"torch cnn"`` -> ``"torch CNN"``, ``"keras mlp"`` -> ``"Keras fit MLP"``."""
    framework, model = workload.split()
    return f"{COLUMN_NAMES[framework]} {COLUMN_NAMES[model]}"


def ratio_table(ratios: Cells, step_seconds: Cells) -> str:
    """Median time ratios to ``no ikkuna`` (rows: configurations), under a row of its ms/step."""
    workloads = list(ratios)
    rows = [f"{BASELINE}, ms per step"
            + "".join(f" | {_number(step_seconds[w].get(BASELINE), 1000, '.3g')}" for w in workloads)]
    rows += [config + "".join(f" | {_number(ratios[w].get(config), 1, '.2f')}" for w in workloads)
             for config in CONFIGURATIONS if config != BASELINE]
    return _table(workloads, rows)


def memory_table(peak_mib: Cells, ratios: Cells) -> str:
    """Peak RSS in MiB and, in parentheses, its ratio to ``no ikkuna``."""
    workloads = list(peak_mib)
    rows = []
    for config in CONFIGURATIONS:
        cells = []
        for workload in workloads:
            mib, ratio = peak_mib[workload].get(config), ratios[workload].get(config)
            cells.append(_number(mib, 1, ".0f")
                         + ("" if mib is None or ratio is None else f" ({ratio:.2f})"))
        rows.append(config + "".join(f" | {cell}" for cell in cells))
    return _table(workloads, rows)


def _table(workloads: Sequence[str], rows: Sequence[str]) -> str:
    header = "| configuration | " + " | ".join(column(w) for w in workloads) + " |"
    rule = "|---" + "|---:" * len(workloads) + "|"
    return "\n".join([header, rule, *(f"| {row} |" for row in rows)])


def _number(value: float | None, scale: float, spec: str) -> str:
    return "failed" if value is None else format(value * scale, spec)


def _version(distributions: Sequence[str]) -> str:
    for distribution in distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
