"""Statistics of each layer's outputs in the training forward pass.

They read only the outputs' moments (combined in float64, see :mod:`ikkuna.core.statistics`), so no
copy of the activations is made or kept for them.
"""

from __future__ import annotations

from ikkuna.core.metric import EventGroup, Metric
from ikkuna.core.statistics import MOMENTS, Moments


class _ActivationStatistic(Metric):
    """One statistic of a layer's outputs, over the batch and every unit; None if empty."""

    needs = ("activations",)
    statistic = MOMENTS

    def compute(self, group: EventGroup) -> float | None:
        found = group.moments("activations")
        return self.of(found) if found.count else None

    @staticmethod
    def of(found: Moments) -> float:
        raise NotImplementedError


class ActivationMean(_ActivationStatistic):
    """Mean of a layer's outputs over the batch and every unit."""

    name = "activation_mean"

    @staticmethod
    def of(found: Moments) -> float:
        return found.mean


class ActivationStd(_ActivationStatistic):
    """Standard deviation (population, ddof=0) of a layer's outputs."""

    name = "activation_std"

    @staticmethod
    def of(found: Moments) -> float:
        return found.std


class ActivationZeroFraction(_ActivationStatistic):
    """Fraction of a layer's outputs that are exactly zero (dead ReLUs show here)."""

    name = "activation_zero_fraction"

    @staticmethod
    def of(found: Moments) -> float:
        return found.zero_fraction
