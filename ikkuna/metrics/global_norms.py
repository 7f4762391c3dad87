"""Norms over every monitored parameter together, one value per step for the whole run.

Each metric adds the squared norms of the parameters of a step in ``compute`` (float64) and
reports once in ``finish_step``: ``sqrt(sum over parameters of ||x||^2)``, the norm of all
parameters concatenated into one vector. "All" means the parameters the monitor and the
metric watch (``layers=`` narrows them).
"""

from __future__ import annotations

import math

from ikkuna.core.metric import EventGroup, Metric
from ikkuna.core.statistics import SUM_SQUARES
from ikkuna.metrics.norms import norm_ratio


class _GlobalNorm(Metric):
    """The norm of one kind over every parameter of a step."""

    statistic = SUM_SQUARES

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._sum = 0.0
        self._seen = False

    def compute(self, group: EventGroup) -> None:
        self._sum += group.statistic(self.needs[0], SUM_SQUARES)
        self._seen = True

    def finish_step(self, step: int) -> float | None:
        total, seen = self._sum, self._seen
        self._sum, self._seen = 0.0, False
        return math.sqrt(total) if seen else None


class GlobalWeightNorm(_GlobalNorm):
    """L2 norm of all parameters together after the optimizer step (one value per step)."""

    name = "global_weight_norm"
    needs = ("weights",)


class GlobalGradientNorm(_GlobalNorm):
    """L2 norm of all gradients together, as gradient clipping by global norm sees it."""

    name = "global_gradient_norm"
    needs = ("gradients",)


class GlobalUpdateNorm(_GlobalNorm):
    """L2 norm of the whole step's change of all parameters together."""

    name = "global_update_norm"
    needs = ("updates",)


class GlobalUpdateToWeightRatio(Metric):
    """||all updates|| / ||all weights|| of a step; healthy training sits near 1e-3.

    ``sqrt(sum ||update||^2) / sqrt(sum ||weight||^2)`` over every parameter, with the weights
    after the step. A zero weight norm gives ``inf`` for a non-zero update and ``0`` otherwise.
    """

    name = "global_update_to_weight_ratio"
    needs = ("weights", "updates")
    statistic = SUM_SQUARES

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._updates = self._weights = 0.0
        self._seen = False

    def compute(self, group: EventGroup) -> None:
        self._updates += group.statistic("updates", SUM_SQUARES)
        self._weights += group.statistic("weights", SUM_SQUARES)
        self._seen = True

    def finish_step(self, step: int) -> float | None:
        updates, weights, seen = self._updates, self._weights, self._seen
        self._updates = self._weights = 0.0
        self._seen = False
        return norm_ratio(math.sqrt(updates), math.sqrt(weights)) if seen else None
