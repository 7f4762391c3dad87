"""From the children's measurements to the benchmark's results: medians and ratios."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from benchmarks.workloads import BASELINE, CONFIGURATIONS


def time_results(seconds: Mapping[str, Sequence[float]] | None,
                 steps: int) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Median ratio to :data:`BASELINE` (each round's time over the same round's baseline) and
    median seconds per step, per configuration; None throughout if the timing failed."""
    if seconds is None:
        return dict.fromkeys(CONFIGURATIONS), dict.fromkeys(CONFIGURATIONS)
    baseline = seconds[BASELINE]
    ratios: dict[str, float | None] = {
        config: statistics.median(t / b for t, b in zip(times, baseline))
        for config, times in seconds.items()}
    per_step: dict[str, float | None] = {
        config: statistics.median(times) / steps for config, times in seconds.items()}
    return ratios, per_step


def memory_ratios(peak_mib: Mapping[str, float | None]) -> dict[str, float | None]:
    """Each configuration's peak RSS over the baseline's (None where either is missing)."""
    baseline = peak_mib.get(BASELINE)
    return {config: None if value is None or not baseline else value / baseline
            for config, value in peak_mib.items()}


def metric_counts(framework: str) -> dict[str, int]:
    """How many metrics ``metrics="default"`` and ``metrics="full"`` give ``framework``'s adapter."""
    from ikkuna.core.attach import expand_presets
    from ikkuna.core.plugins import get_plugin_manager

    plugins = get_plugin_manager()
    adapter = plugins.adapters()[framework].item
    return {preset: len(expand_presets([preset], plugins.metrics(), adapter))
            for preset in ("default", "full")}


def parameters_text(parameters: Mapping[str, int | None]) -> str:
    """``"307 parameters"`` if every framework agrees, else each framework's count."""
    counts = {count for count in parameters.values() if count is not None}
    if len(counts) == 1:
        return f"{counts.pop():,} parameters"
    return "parameters: " + ", ".join(f"{name} {count:,}" if count is not None else f"{name} ?"
                                      for name, count in parameters.items())

