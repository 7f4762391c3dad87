"""One PNG per metric: small multiples, one panel per layer, drawn with matplotlib's Agg canvas.

matplotlib is imported here on first use only, never by ``import ikkuna``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ikkuna.report.heatmap import Heatmap
from ikkuna.report.panels import Line, MetricPlot, Panel
from ikkuna.report.scale import linear_threshold, y_scale

PANEL_INCHES = (3.4, 2.4)
DPI = 90
MAX_COLUMNS = 3
NON_FINITE_COLOUR = "red"
_LINE_STYLES = ("-", "--", ":", "-.")
_STYLE: dict[str, Any] = {"font.size": 7, "axes.titlesize": 8, "figure.titlesize": 10, "legend.fontsize": 6}
# names come from the store: "$" in them must not start mathtext (a bad formula stops the report)
_PLAIN = {"parse_math": False}


def grid(panels: int) -> tuple[int, int]:
    """(rows, columns) of the small multiples for ``panels`` panels."""
    columns = max(1, min(MAX_COLUMNS, panels))
    return max(1, math.ceil(panels / columns)), columns


def image_size(panels: int) -> tuple[int, int]:
    """(width, height) in pixels of the PNG of a figure with ``panels`` panels."""
    rows, columns = grid(panels)
    return round(columns * PANEL_INCHES[0] * DPI), round(rows * PANEL_INCHES[1] * DPI)


def render(plot: MetricPlot, runs: Sequence[str]) -> bytes:
    """The PNG of ``plot``. ``runs``: every run in the report, in order; with more than one,
    each run keeps its own colour in every panel and the legends name the runs."""
    import_matplotlib()
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, columns = grid(len(plot.panels))
    with matplotlib.rc_context(_STYLE):  # type: ignore[arg-type]  # keys checked by matplotlib
        figure = Figure(figsize=(columns * PANEL_INCHES[0], rows * PANEL_INCHES[1]), dpi=DPI)
        FigureCanvasAgg(figure)
        figure.suptitle(plot.metric, y=1 - 0.08 / (rows * PANEL_INCHES[1]), va="top", **_PLAIN)
        axes = figure.subplots(rows, columns, squeeze=False,
                               gridspec_kw=_margins(rows, columns)).reshape(-1)
        for index, (panel, axis) in enumerate(zip(plot.panels, axes)):
            axis.set_title(panel.title, **_PLAIN)
            if panel.heatmap is not None:
                _draw_heatmap(axis, panel.heatmap)
            else:
                _draw_lines(axis, panel, runs)
            if index + columns >= len(plot.panels):
                axis.set_xlabel("step")
        for axis in axes[len(plot.panels):]:
            axis.set_visible(False)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _margins(rows: int, columns: int) -> dict[str, float]:
    """Fixed margins in inches as gridspec fractions (constrained layout costs half the time)."""
    width, height = columns * PANEL_INCHES[0], rows * PANEL_INCHES[1]
    left, right, top, bottom, across, down = 0.6, 0.15, 0.5, 0.4, 0.75, 0.6
    axis_width = (width - left - right - (columns - 1) * across) / columns
    axis_height = (height - top - bottom - (rows - 1) * down) / rows
    return {"left": left / width, "right": 1 - right / width, "top": 1 - top / height,
            "bottom": bottom / height, "wspace": across / axis_width, "hspace": down / axis_height}


def import_matplotlib() -> None:
    """Import matplotlib, or say how to install it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"the report draws with matplotlib, which is not installed ({error}); "
            "pip install 'ikkuna[report]'"
        ) from error


def _draw_lines(axis: Any, panel: Panel, runs: Sequence[str]) -> None:
    params = list(dict.fromkeys(line.param for line in panel.lines))
    compare = len(runs) > 1
    for line in panel.lines:
        colour = f"C{runs.index(line.run) % 10}" if compare else f"C{params.index(line.param) % 10}"
        style = _LINE_STYLES[params.index(line.param) % len(_LINE_STYLES)] if compare else "-"
        values = np.where(np.isfinite(line.values), line.values, np.nan)
        axis.plot(line.steps, values, color=colour, linestyle=style, linewidth=1.2,
                  marker="o" if line.steps.size < 3 else None, markersize=3,
                  label=_label(line, compare, len(params) > 1))
    values = np.concatenate([line.values for line in panel.lines]) if panel.lines else np.empty(0)
    scale = y_scale(values)
    if scale == "symlog":
        axis.set_yscale("symlog", linthresh=linear_threshold(values))
    else:
        axis.set_yscale(scale)
    _mark_non_finite(axis, panel.lines, compare)
    if compare or len(params) > 1:
        for text in axis.legend(loc="best", frameon=False).get_texts():
            text.set_parse_math(False)


def _label(line: Line, compare: bool, several_params: bool) -> str:
    parts = [line.run] if compare else []
    if several_params or not compare:
        parts.append(line.param or "value")
    return " ".join(parts)


def _mark_non_finite(axis: Any, lines: Sequence[Line], compare: bool) -> None:
    """Red triangles at the panel's top edge at each NaN/Inf step, and a note of the first."""
    first: tuple[int, Line] | None = None
    for line in lines:
        bad = ~np.isfinite(line.values)
        if not bad.any():
            continue
        axis.plot(line.steps[bad], np.ones(int(bad.sum())), transform=axis.get_xaxis_transform(),
                  linestyle="none", marker="v", markersize=5, color=NON_FINITE_COLOUR, clip_on=False)
        step = int(line.steps[bad][0])
        if first is None or step < first[0]:
            first = (step, line)
    if first is not None:
        step, line = first
        which = f" ({_label(line, compare, True)})" if len(lines) > 1 else ""
        axis.text(0.02, 0.03, f"non-finite from step {step}{which}", transform=axis.transAxes,
                  color=NON_FINITE_COLOUR, fontsize=7, fontweight="bold", **_PLAIN,
                  bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})


def _draw_heatmap(axis: Any, heat: Heatmap) -> None:
    if heat.fractions.size == 0:
        axis.text(0.5, 0.5, "empty histograms", transform=axis.transAxes, ha="center")
        return
    axis.pcolormesh(_step_edges(heat.steps), heat.edges, np.ma.masked_invalid(heat.fractions),
                    cmap="viridis", shading="flat", vmin=0.0)
    axis.set_ylabel("value" if heat.by_value else "bin")


def _step_edges(steps: np.ndarray) -> np.ndarray:
    """Cell boundaries around each step (halfway to its neighbours)."""
    centres = steps.astype(np.float64)
    if centres.size < 2:
        return np.array([centres[0] - 0.5, centres[0] + 0.5]) if centres.size else np.array([0.0, 1.0])
    middle = (centres[:-1] + centres[1:]) / 2
    return np.concatenate(([2 * centres[0] - middle[0]], middle, [2 * centres[-1] - middle[-1]]))
