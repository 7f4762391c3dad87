"""How far each parameter has moved from where monitoring found it."""

from __future__ import annotations

import math

import numpy as np

from ikkuna.core.metric import EventGroup, Metric
from ikkuna.core.statistics import float32_sum_of_squares


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
            # in the parameter's dtype: correctly rounded, as a float64 difference cast back
            initial = self._initial[key] = np.subtract(weights, group["updates"], dtype=weights.dtype)
        return difference_norm(weights, initial)


#: Entries per block of :func:`difference_norm`: the float64 difference of one block is 512 KiB.
_BLOCK = 1 << 16


def difference_norm(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b||``, a block at a time (no copy of a whole parameter).

    float32 parameters: the difference in float32 (correctly rounded, and exact where the
    two values are within a factor of two of each other, as a parameter and its earlier
    value mostly are), its squares summed in float32 rows (``float32_sum_of_squares``) and the
    rows added in float64: within ``ROW_PARTIALS_RTOL``, three times faster. Other dtypes, and float32
    differences whose squares overflow float32: the difference and its squares in float64.
    """
    a, b = a.reshape(-1), b.reshape(-1)
    if a.dtype == np.float32 and b.dtype == np.float32:
        found = _float32_difference_norm(a, b)
        if math.isfinite(found):
            return found  # else a difference or its square overflowed float32: float64 below
    total = 0.0
    for start in range(0, a.size, _BLOCK):
        difference = np.subtract(a[start:start + _BLOCK], b[start:start + _BLOCK], dtype=np.float64)
        total += float(np.einsum("i,i->", difference, difference))
    return math.sqrt(total)


def _float32_difference_norm(a: np.ndarray, b: np.ndarray) -> float:
    total = 0.0
    difference = np.empty(min(a.size, _BLOCK), dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # an infinite distance is recorded as such
        for start in range(0, a.size, _BLOCK):
            block = np.subtract(a[start:start + _BLOCK], b[start:start + _BLOCK],
                                out=difference[: min(_BLOCK, a.size - start)])
            total += float32_sum_of_squares(block)
    return math.sqrt(total)
