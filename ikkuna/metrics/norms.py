"""Norms of parameters, their gradients and updates, and the update-to-weight ratio.

They read only each array's sum of squares (``statistic = "sum_squares"``): one pass, no copy.
"""

from __future__ import annotations

import math

from ikkuna.core.metric import EventGroup, Metric
from ikkuna.core.statistics import SUM_SQUARES


def norm(group: EventGroup, kind: str) -> float:
    """The L2 norm of a kind's values, from their sum of squares."""
    return math.sqrt(group.statistic(kind, SUM_SQUARES))


def norm_ratio(update_norm: float, weight_norm: float) -> float:
    """``update_norm / weight_norm``; a zero weight norm gives ``inf``, or ``0`` for no update."""
    if weight_norm == 0.0:
        return 0.0 if update_norm == 0.0 else math.inf
    return update_norm / weight_norm


class WeightNorm(Metric):
    """L2 norm of each parameter after the optimizer step."""

    name = "weight_norm"
    needs = ("weights",)
    statistic = SUM_SQUARES

    def compute(self, group: EventGroup) -> float:
        return norm(group, "weights")


class GradientNorm(Metric):
    """L2 norm of each parameter's gradient, before the optimizer step."""

    name = "gradient_norm"
    needs = ("gradients",)
    statistic = SUM_SQUARES

    def compute(self, group: EventGroup) -> float:
        return norm(group, "gradients")


class UpdateNorm(Metric):
    """L2 norm of each parameter's change in the optimizer step."""

    name = "update_norm"
    needs = ("updates",)
    statistic = SUM_SQUARES

    def compute(self, group: EventGroup) -> float:
        return norm(group, "updates")


class UpdateToWeightRatio(Metric):
    """||update|| / ||weight|| per parameter; healthy training sits near 1e-3.

    The weight is the value after the step. A zero weight gives ``inf`` for a non-zero
    update and ``0`` for a zero one.
    """

    name = "update_to_weight_ratio"
    needs = ("weights", "updates")
    statistic = SUM_SQUARES

    def compute(self, group: EventGroup) -> float:
        return norm_ratio(norm(group, "updates"), norm(group, "weights"))
