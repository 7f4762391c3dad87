"""Statistics of each layer's outputs in the training forward pass."""

from __future__ import annotations

import math

import numpy as np

from ikkuna.core.metric import EventGroup, Metric

#: Relative error we accept from the one-pass variance (see :func:`std`).
_VARIANCE_TOLERANCE = 1e-9
_FLOAT64_EPSILON = float(np.finfo(np.float64).eps)


def mean(values: np.ndarray) -> float:
    """Mean of all entries, accumulated in float64."""
    flat = values.reshape(-1)
    return float(np.einsum("i->", flat, dtype=np.float64)) / flat.size


def std(values: np.ndarray) -> float:
    """Population standard deviation (ddof=0) of all entries, accumulated in float64.

    One pass over the data (mean and mean square) where that is exact enough: its relative
    error is at most about ``n * eps * mean_square / variance``. Where that bound exceeds
    ``_VARIANCE_TOLERANCE`` (a mean large next to the spread), the two-pass ``np.std`` runs.
    """
    flat = values.reshape(-1)
    mean_value = mean(flat)
    mean_square = float(np.einsum("i,i->", flat, flat, dtype=np.float64)) / flat.size
    variance = mean_square - mean_value * mean_value
    error_bound = flat.size * _FLOAT64_EPSILON * mean_square / variance if variance > 0 else math.inf
    if not error_bound <= _VARIANCE_TOLERANCE:
        return float(np.std(flat, dtype=np.float64))
    return math.sqrt(variance)


def zero_fraction(values: np.ndarray) -> float:
    """Fraction of entries exactly equal to zero."""
    return float(np.count_nonzero(values == 0) / values.size)


class _ActivationStatistic(Metric):
    """One statistic of a layer's outputs, over the batch and every unit; None if empty."""

    needs = ("activations",)
    statistic = staticmethod(mean)

    def compute(self, group: EventGroup) -> float | None:
        values = group["activations"]
        return self.statistic(values) if values.size else None


class ActivationMean(_ActivationStatistic):
    """Mean of a layer's outputs over the batch and every unit."""

    name = "activation_mean"
    statistic = staticmethod(mean)


class ActivationStd(_ActivationStatistic):
    """Standard deviation (population, ddof=0) of a layer's outputs."""

    name = "activation_std"
    statistic = staticmethod(std)


class ActivationZeroFraction(_ActivationStatistic):
    """Fraction of a layer's outputs that are exactly zero (dead ReLUs show here)."""

    name = "activation_zero_fraction"
    statistic = staticmethod(zero_fraction)
