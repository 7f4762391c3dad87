"""Histograms of parameters and activations."""

from __future__ import annotations

import numpy as np

from ikkuna.core.events import Histogram
from ikkuna.core.metric import EventGroup, Metric
from ikkuna.core.schedule import LayerSelection, ScheduleLike

DEFAULT_BINS = 30


def histogram(values: np.ndarray, bins: int) -> Histogram | None:
    """Counts of the finite values in ``bins`` equal bins between their min and max."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return None
    counts, edges = np.histogram(flat, bins=bins)
    return Histogram(counts, edges)


class _HistogramMetric(Metric):
    """Shared by the histogram metrics: one histogram of their single needed kind."""

    cost = "moderate"

    def __init__(self, *, bins: int = DEFAULT_BINS, layers: LayerSelection = None,
                 every: ScheduleLike = None) -> None:
        super().__init__(layers=layers, every=every)
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f"bins must be a positive int, got {bins!r}")
        self.bins = bins

    def compute(self, group: EventGroup) -> Histogram | None:
        return histogram(group[self.needs[0]], self.bins)


class WeightHistogram(_HistogramMetric):
    """Histogram of each parameter's values after the optimizer step."""

    name = "weight_histogram"
    needs = ("weights",)


class GradientHistogram(_HistogramMetric):
    """Histogram of each parameter's gradient."""

    name = "gradient_histogram"
    needs = ("gradients",)


class ActivationHistogram(_HistogramMetric):
    """Histogram of each layer's outputs."""

    name = "activation_histogram"
    needs = ("activations",)
