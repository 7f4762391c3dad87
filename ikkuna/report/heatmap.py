"""Histograms over steps as one grid (bins x steps) that a heatmap can draw."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ikkuna.core.events import Histogram

#: Bins of the common value grid that histograms with their own edges are spread onto.
GRID_BINS = 40


@dataclass(frozen=True)
class Heatmap:
    """``fractions[b, s]``: the fraction of step ``steps[s]``'s values in bin ``b`` (NaN: none).

    ``edges`` bound the bins: values where the histograms had edges (``by_value``), else the
    bin indices ``0..n`` of stored vectors.
    """

    steps: np.ndarray
    edges: np.ndarray
    fractions: np.ndarray
    by_value: bool


def heatmap(histograms: Sequence[tuple[int, Histogram | np.ndarray]]) -> Heatmap:
    """One grid for a series of histograms (as ``Run.histograms`` gives them), by step.

    Histograms whose edges move from step to step are spread onto :data:`GRID_BINS` equal bins
    from the smallest to the largest edge; vectors without edges keep their own bins.
    """
    steps = np.array([step for step, _ in histograms], dtype=np.int64)
    values = [value for _, value in histograms]
    with_edges = [value for value in values if isinstance(value, Histogram)]
    if values and len(with_edges) == len(values):
        edges, counts = _value_grid(with_edges)
        by_value = True
    else:
        counts = _padded([np.asarray(getattr(v, "counts", v), dtype=np.float64) for v in values])
        edges = np.arange(counts.shape[0] + 1, dtype=np.float64)
        by_value = False
    totals = np.nansum(counts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = np.where(totals > 0, counts / totals, np.nan)
    return Heatmap(steps, edges, fractions, by_value)


def _value_grid(histograms: Sequence[Histogram]) -> tuple[np.ndarray, np.ndarray]:
    usable = [h.edges.size > 1 and bool(np.all(np.isfinite(h.edges))) for h in histograms]
    low = min((h.edges[0] for h, ok in zip(histograms, usable) if ok), default=0.0)
    high = max((h.edges[-1] for h, ok in zip(histograms, usable) if ok), default=1.0)
    if not high > low:
        low, high = low - 0.5, low + 0.5
    grid = np.linspace(low, high, GRID_BINS + 1)
    columns = np.full((GRID_BINS, len(histograms)), np.nan)
    for index, (histogram, ok) in enumerate(zip(histograms, usable)):
        if ok:
            cumulative = np.concatenate(([0.0], np.cumsum(histogram.counts)))
            columns[:, index] = np.diff(np.interp(grid, histogram.edges, cumulative))
    return grid, columns


def _padded(vectors: Sequence[np.ndarray]) -> np.ndarray:
    columns = np.full((max((v.size for v in vectors), default=0), len(vectors)), np.nan)
    for index, vector in enumerate(vectors):
        columns[: vector.size, index] = vector.reshape(-1)
    return columns
