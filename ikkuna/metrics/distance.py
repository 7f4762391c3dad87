"""How far each parameter has moved from where monitoring found it."""

from __future__ import annotations

import numpy as np

from ikkuna.core.metric import EventGroup, Metric
from ikkuna.metrics.norms import l2_norm


class DistanceFromInit(Metric):
    """L2 distance of each parameter from its value before the first step seen.

    ``||w_t - w_0||`` with ``w_t`` the value after step t. ``w_0`` is the value before the
    first step this metric sees, recovered exactly as ``weights - updates`` of that step (the
    update is ``after - before`` in the parameter's dtype, so ``w_0`` is the value before
    that step to the rounding of that subtraction, which is exact for updates small next to
    the weights). Attach before training to measure from the initialization; attached later,
    it measures from there. Keeps one copy of every watched parameter, in its own dtype.
    """

    name = "distance_from_init"
    needs = ("weights", "updates")

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._initial: dict[tuple[str | None, str | None], np.ndarray] = {}

    def compute(self, group: EventGroup) -> float:
        weights = group["weights"]
        key = (group.layer.name if group.layer is not None else None, group.param)
        initial = self._initial.get(key)
        if initial is None or initial.shape != weights.shape:
            before = np.subtract(weights, group["updates"], dtype=np.float64)
            initial = self._initial[key] = before.astype(weights.dtype)
        return l2_norm(np.subtract(weights, initial, dtype=np.float64))
