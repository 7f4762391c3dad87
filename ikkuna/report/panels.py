"""What a report draws, read from stored runs: per metric, one panel per layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ikkuna.report.heatmap import Heatmap, heatmap
from ikkuna.sinks.reader import Run

#: The title of the panel of run-level series (loss, accuracy, global norms).
RUN_PANEL = "whole run"


@dataclass(frozen=True, eq=False)
class Line:
    """One series in a panel: a parameter's (or the layer's) values of one run, by step."""

    run: str
    param: str | None
    steps: np.ndarray
    values: np.ndarray

    @property
    def first_non_finite(self) -> int | None:
        """The first step whose value is NaN or Inf, None if all are finite."""
        bad = ~np.isfinite(self.values)
        return int(self.steps[np.argmax(bad)]) if bad.any() else None


@dataclass(frozen=True, eq=False)
class Panel:
    """One small multiple: lines (scalar metrics) or one heatmap (histogram metrics)."""

    title: str
    lines: tuple[Line, ...] = ()
    heatmap: Heatmap | None = None


@dataclass(frozen=True, eq=False)
class MetricPlot:
    """Everything one metric's figure shows; ``missing``: the runs that did not record it."""

    metric: str
    panels: tuple[Panel, ...]
    missing: tuple[str, ...] = ()

    def non_finite(self) -> list[tuple[str, Line, int]]:
        """(panel title, line, first bad step) for each line with NaN or Inf values."""
        return [(panel.title, line, step) for panel in self.panels for line in panel.lines
                if (step := line.first_non_finite) is not None]


def collect(runs: Sequence[Run]) -> list[MetricPlot]:
    """One :class:`MetricPlot` per metric recorded in any of ``runs``: run-level metrics first,
    then the others, each by name; panels in model order (the first run's, then new layers)."""
    order = _layer_order(runs)
    recorded = {run.name: set(run.metrics()) for run in runs}
    plots = []
    for metric in sorted(set().union(*recorded.values())):
        having = [run for run in runs if metric in recorded[run.name]]
        plots.append(MetricPlot(metric, _panels(metric, having, order, compare=len(runs) > 1),
                                tuple(run.name for run in runs if run not in having)))
    return sorted(plots, key=lambda plot: (any(p.title != RUN_PANEL for p in plot.panels), plot.metric))


def _panels(metric: str, runs: Sequence[Run], order: dict[str | None, tuple[int, dict[str, int]]],
            compare: bool) -> tuple[Panel, ...]:
    lines: dict[str | None, list[Line]] = {}
    maps: list[tuple[str | None, str | None, Panel]] = []
    for run in runs:
        for layer, param in run.keys(metric):
            try:
                series = run.series(metric, layer, param)
            except KeyError:  # stored as vectors: a histogram metric
                title = " ".join(filter(None, (layer or RUN_PANEL, param, f"({run.name})" if compare else None)))
                maps.append((layer, param, Panel(title, heatmap=heatmap(run.histograms(metric, layer, param)))))
                continue
            lines.setdefault(layer, []).append(Line(run.name, param, series.steps, series.values))

    def rank(layer: str | None, param: str | None = None) -> tuple[int, int, str, str]:
        position, params = order.get(layer, (len(order), {}))
        return (position, params.get(param or "", len(params)), layer or "", param or "")

    panels = [Panel(layer if layer is not None else RUN_PANEL,
                    tuple(sorted(found, key=lambda line: rank(layer, line.param)[1:])))
              for layer, found in sorted(lines.items(), key=lambda item: rank(item[0]))]
    maps.sort(key=lambda item: rank(item[0], item[1]))  # stable: runs stay in the order given
    return tuple(panels) + tuple(panel for _, _, panel in maps)


def _layer_order(runs: Sequence[Run]) -> dict[str | None, tuple[int, dict[str, int]]]:
    """Position of each layer (run-level first) and of each of its parameter roles."""
    order: dict[str | None, tuple[int, dict[str, int]]] = {None: (-1, {})}
    for run in runs:
        for layer in run.layers():
            if layer.name not in order:
                roles = {role: index for index, role in enumerate(dict.fromkeys(layer.roles))}
                order[layer.name] = (len(order), roles)
    return order
