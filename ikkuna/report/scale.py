"""The y scale of a panel: linear, log or symlog, from the values it shows."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

YScale = Literal["linear", "log", "symlog"]

#: A ratio of largest to smallest magnitude at least this wide is drawn on a log axis.
WIDE_SPAN = 100.0


def y_scale(values: ArrayLike) -> YScale:
    """``"log"`` when the finite values are all positive and span :data:`WIDE_SPAN` or more;
    ``"symlog"`` when there are zeros or negatives and the non-zero magnitudes span that much;
    else ``"linear"``. NaN and Inf are ignored."""
    finite = _finite(values)
    magnitudes = np.abs(finite[finite != 0])
    if magnitudes.size == 0 or magnitudes.max() < WIDE_SPAN * magnitudes.min():
        return "linear"
    return "log" if bool(np.all(finite > 0)) else "symlog"


def linear_threshold(values: ArrayLike) -> float:
    """Where a symlog axis turns linear: the smallest non-zero magnitude among the finite
    values, but no less than a billionth of the largest (1.0 when there is none)."""
    magnitudes = np.abs(_finite(values))
    magnitudes = magnitudes[magnitudes != 0]
    if magnitudes.size == 0:
        return 1.0
    return float(max(magnitudes.min(), magnitudes.max() * 1e-9))


def _finite(values: ArrayLike) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    return array[np.isfinite(array)]
