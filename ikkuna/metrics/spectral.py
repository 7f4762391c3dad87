"""The singular-value spectrum of weight matrices: spectral norm, condition number, stable
rank and the heavy-tailed power-law exponent ``alpha`` of WeightWatcher.

Every metric here looks at a ``weight`` parameter with two or more axes as the
``(out_units, fan_in)`` matrix of :meth:`ikkuna.Array.as_matrix` (a conv kernel flattened to
``(out_channels, in_channels * kh * kw)`` in every framework), in float64; biases and other
vectors give ``None``. A call costs a singular value decomposition: the metrics of one
(layer, step) share it (see :func:`singular_values`).
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from ikkuna.core.arrays import Layout
from ikkuna.core.metric import EventGroup, Metric
from ikkuna.core.schedule import LayerSelection, ScheduleLike

#: Fewest eigenvalues at or above ``xmin`` that :func:`power_law_alpha` fits a tail to.
MIN_TAIL = 5

#: Elements of one block of the (candidate xmin, eigenvalue) table in the KS scan.
_SCAN_BLOCK = 1 << 20

# The last decomposition: (weak reference to the weights' numpy array, its layout, singular
# values). The metrics of one (layer, step) receive the same Array, whose numpy() is cached and
# read-only, so its identity (alive, hence not reused) names the values; a weak reference keeps
# no weights alive after their step.
_last: tuple[Any, Layout, np.ndarray] | None = None


def singular_values(group: EventGroup) -> np.ndarray | None:
    """Singular values (descending, float64) of the group's weight matrix, or ``None``.

    ``None`` for anything but a ``weight`` parameter with at least two axes, or for an empty
    matrix. Non-finite weights give an array of NaN (the SVD is undefined). The result of the
    latest call is reused while the same weights array is alive, so the spectral metrics of one
    (layer, step) decompose the matrix once.
    """
    global _last
    if group.param != "weight":
        return None
    array = group.array("weights")
    if array.ndim < 2 or 0 in array.shape:
        return None
    values = array.numpy()
    cached = _last
    if cached is not None and cached[0]() is values and cached[1] == array.layout:
        return cached[2]
    matrix = np.asarray(array.as_matrix(), dtype=np.float64)
    if np.all(np.isfinite(matrix)):
        sigma = np.linalg.svd(matrix, compute_uv=False)
    else:
        sigma = np.full(min(matrix.shape), np.nan)
    sigma.flags.writeable = False
    try:
        _last = (weakref.ref(values), array.layout, sigma)
    except TypeError:  # an object that takes no weak reference: no sharing, still correct
        _last = None
    return sigma


class SpectralNorm(Metric):
    """Largest singular value of each weight matrix (conv kernels as (out, in*kh*kw))."""

    name = "spectral_norm"
    needs = ("weights",)
    cost = "expensive"

    def compute(self, group: EventGroup) -> float | None:
        sigma = singular_values(group)
        return None if sigma is None else float(sigma[0])


class ConditionNumber(Metric):
    """Largest over smallest singular value of each weight matrix; inf when it is singular.

    The smallest is the least of the ``min(out, fan_in)`` singular values, so a wide or tall
    matrix of full rank has a finite condition number.
    """

    name = "condition_number"
    needs = ("weights",)
    cost = "expensive"

    def compute(self, group: EventGroup) -> float | None:
        sigma = singular_values(group)
        if sigma is None:
            return None
        largest, smallest = float(sigma[0]), float(sigma[-1])
        if smallest == 0.0:
            return float("inf")
        return largest / smallest


class StableRank(Metric):
    """Stable rank ||W||_F^2 / ||W||_2^2 of each weight matrix (0 for a zero matrix)."""

    name = "stable_rank"
    needs = ("weights",)
    cost = "expensive"

    def compute(self, group: EventGroup) -> float | None:
        sigma = singular_values(group)
        if sigma is None:
            return None
        largest = float(sigma[0])
        if largest == 0.0:
            return 0.0
        return float(np.sum((sigma / largest) ** 2))


class SpectralAlpha(Metric):
    """Power-law exponent alpha of the weight eigenvalue spectrum (WeightWatcher); every 100 steps.

    The eigenvalues of ``W^T W`` (the squared singular values; exact zeros dropped) are fitted
    with a continuous power law ``p(x) ~ x^-alpha`` for ``x >= xmin`` by maximum likelihood,
    choosing ``xmin`` by the least Kolmogorov-Smirnov distance (Clauset, Shalizi & Newman 2009),
    as WeightWatcher does. Well-trained layers typically show alpha between 2 and 6. A matrix
    with fewer than :data:`MIN_TAIL` non-zero eigenvalues gives ``None``; so do non-finite
    weights. Runs every 100 steps unless ``every=`` says otherwise.
    """

    name = "spectral_alpha"
    needs = ("weights",)
    cost = "expensive"

    def __init__(self, *, layers: LayerSelection = None, every: ScheduleLike = 100) -> None:
        super().__init__(layers=layers, every=every)

    def compute(self, group: EventGroup) -> float | None:
        sigma = singular_values(group)
        if sigma is None or not np.all(np.isfinite(sigma)):
            return None
        array = group.array("weights")
        out_units = array.shape[array.layout.out_axis or 0]
        largest_side = max(out_units, int(np.prod(array.shape)) // out_units)
        fit = power_law_fit(_nonzero_eigenvalues(sigma, largest_side))
        return None if fit is None else fit[0]


def _nonzero_eigenvalues(sigma: np.ndarray, size: int) -> np.ndarray:
    """The squared singular values above rounding (numpy's ``matrix_rank`` tolerance)."""
    if sigma.size == 0 or sigma[0] == 0.0:
        return np.empty(0)
    tolerance = sigma[0] * size * np.finfo(np.float64).eps
    kept = sigma[sigma > tolerance]
    return kept * kept


def power_law_fit(eigenvalues: np.ndarray, min_tail: int = MIN_TAIL) -> tuple[float, float, float] | None:
    """``(alpha, ks_distance, xmin)`` of a continuous power law fitted to the upper tail.

    For every distinct value ``xmin`` among the (positive) ``eigenvalues`` with at least
    ``min_tail`` values ``>= xmin``, alpha is the maximum-likelihood estimate
    ``1 + n / sum(ln(x_i / xmin))`` over those ``n`` values, and the distance is the
    Kolmogorov-Smirnov statistic ``sup_x |S(x) - P(x)|`` between their empirical CDF ``S`` and
    the fitted ``P(x) = 1 - (x / xmin)^(1 - alpha)`` (checked on both sides of every step of
    ``S``). The fit with the least distance wins, the smaller ``xmin`` on ties. ``None`` when no
    candidate has ``min_tail`` values (or only equal ones).

    The scan is vectorized: sorted values and suffix sums of their logarithms give every alpha
    at once, and the distances are taken over a (candidate, value) table in blocks.
    """
    x = np.sort(np.asarray(eigenvalues, dtype=np.float64).reshape(-1))
    x = x[x > 0]
    m = x.size
    if m < min_tail:
        return None
    logs = np.log(x)
    count = m - np.arange(m)  # values >= x[k], for the first k of a run of ties
    suffix = np.cumsum(logs[::-1])[::-1]  # sum of logs[k:]
    spread = suffix - count * logs  # sum of ln(x_i / x[k]) over i >= k
    first_of_ties = np.ones(m, dtype=bool)
    first_of_ties[1:] = x[1:] > x[:-1]
    candidates = np.flatnonzero(first_of_ties & (count >= min_tail) & (spread > 0))
    if candidates.size == 0:
        return None
    alphas = 1.0 + count[candidates] / spread[candidates]
    distances = np.empty(candidates.size)
    positions = np.arange(m)
    rows = max(1, _SCAN_BLOCK // m)
    for start in range(0, candidates.size, rows):
        k = candidates[start:start + rows, None]
        n = count[k]
        alpha = alphas[start:start + rows, None]
        rank = positions[None, :] - k  # the value's index within the tail; < 0 below xmin
        log_ratio = np.maximum(logs[None, :] - logs[k], 0.0)
        fitted = -np.expm1((1.0 - alpha) * log_ratio)  # 1 - (x / xmin)^(1 - alpha)
        below = np.abs(fitted - rank / n)  # S just before the value
        above = np.abs(fitted - (rank + 1) / n)  # S at the value
        gap = np.where(rank >= 0, np.maximum(below, above), 0.0)
        distances[start:start + rows] = gap.max(axis=1)
    best = int(np.argmin(distances))
    return float(alphas[best]), float(distances[best]), float(x[candidates[best]])
