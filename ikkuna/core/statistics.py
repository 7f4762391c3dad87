"""Statistics of an array that metrics may declare instead of its values.

A metric that sets ``statistic = "moments"`` (or ``"sum_squares"``, ``"fired_units"``) reads
only that summary of each array (``group.moments(kind)``, ``group.statistic(kind, name)``),
never the values. The bus then computes the summary
while the native tensor is alive (from a zero-copy host view, or by the adapter in the
framework) and keeps only the summary: no copy of the tensor is made or held until the step
ends. Summaries of several arrivals in one step (a layer called twice) combine exactly as the
joined arrays would.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

MOMENTS = "moments"
FIRED_UNITS = "fired_units"
SUM_SQUARES = "sum_squares"
#: The statistics a metric may declare, with what each holds.
STATISTICS = {
    MOMENTS: "count, sum, sum of squares, centered sum of squares and zero count (Moments)",
    FIRED_UNITS: "per channel, whether any output was non-zero (a bool vector; None if empty)",
    SUM_SQUARES: "the sum of squares of all entries, the squared L2 norm (a float): one pass, "
                 "without the sum and zero count of moments",
}

#: Relative error accepted from the one-pass centered sum of squares; beyond it, two passes.
_VARIANCE_TOLERANCE = 1e-9
_FLOAT64_EPSILON = float(np.finfo(np.float64).eps)

#: Values per row of the partial sums a framework computes on its own device (in the tensor's
#: precision, float32 for float16/bfloat16) before the host combines the rows in float64.
ROW_LENGTH = 1024
#: Relative error of moments added from float32 row partials (:func:`moments_of_rows`,
#: :func:`moments_of_row_sums`): ``sum_squares`` and ``m2`` within it of the exact values,
#: ``total`` within it of the sum of magnitudes. A row's float32 sum errs by a few float32
#: epsilons; on typical data the errors of many rows average out (measured: 1e-8 to 1e-7 for
#: whole tensors), while values repeated throughout (two values alternating) round alike in
#: every row (measured: up to 3e-6, the mean squared 3 times the variance); the bound leaves
#: a margin for CPUs with narrower SIMD lanes.
ROW_PARTIALS_RTOL = 1e-5
#: Below this mean square, float32 squares of the centered values could underflow, so the
#: moments are computed exactly instead (vanishing gradients keep their exact norm).
_SMALLEST_ROW_MEAN_SQUARE = 1e-20
#: Values per row of numpy's uncentered float32 row sums (:func:`moments_of_row_sums`):
#: numpy adds each SIMD lane's share of a row one value after another, so repeated values
#: round alike and their errors add up; rows of 64 keep that to about 1e-6.
SUM_ROW_LENGTH = 64
#: Uncentered row sums are trusted while ``sum_squares <= this * m2`` (the mean squared at most
#: three times the variance: ReLU outputs 1.5, weights and gradients about 1): the
#: cancellation in ``sum_squares - total^2 / count`` then multiplies the float32 errors of the
#: sums by at most this much. Beyond it, the rows are centered first (:func:`moments_of_rows`).
_MOST_SQUARES_PER_M2 = 4.0
#: float32 arrays with at least this many values are summed by rows in float32 on the host
#: (:func:`moments`); smaller ones, and other dtypes, are summed in float64.
_FLOAT32_ROWS_FROM = 1 << 15


@dataclass(frozen=True)
class Moments:
    """Sums over all entries of an array, accumulated in float64 (or added in float64 from
    float32 rows, :func:`moments_of_row_sums` and :func:`moments_of_rows`: within
    :data:`ROW_PARTIALS_RTOL`).

    ``m2`` is the centered sum of squares ``sum((x - mean)^2)``; ``zeros`` counts entries
    exactly equal to zero.
    """

    count: int
    total: float
    sum_squares: float
    m2: float
    zeros: int

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation (ddof=0)."""
        return math.sqrt(max(self.m2, 0.0) / self.count) if self.count else math.nan

    @property
    def norm(self) -> float:
        """Euclidean norm over all entries."""
        return math.sqrt(self.sum_squares)

    @property
    def zero_fraction(self) -> float:
        return self.zeros / self.count if self.count else math.nan

    def __add__(self, other: Moments) -> Moments:
        """The moments of both arrays' entries together (Chan et al.'s pairwise update)."""
        if not other.count:
            return self
        if not self.count:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / count
        return Moments(count, self.total + other.total, self.sum_squares + other.sum_squares,
                       m2, self.zeros + other.zeros)


def moments(values: np.ndarray, zeros: int | None = None) -> Moments:
    """The :class:`Moments` of ``values`` (any shape and float or integer dtype).

    A float32 array of at least :data:`_FLOAT32_ROWS_FROM` values is summed by rows in
    float32 and the rows added in float64 (:func:`moments_of_row_sums`, within
    :data:`ROW_PARTIALS_RTOL`), unless its mean is large next to its spread or a sum is not
    finite. Everything else is summed in float64: the centered sum of squares comes from one
    pass (sum and sum of squares) where that is exact enough: its relative error is at most
    about ``n * eps * sum_squares / m2``. Where that bound exceeds ``_VARIANCE_TOLERANCE``
    (a mean large next to the spread, or a non-finite value), a second, centered pass
    computes it. ``einsum`` rather than ``dot``: BLAS threads spinning next to the
    framework's own thread pool made a norm cost several times the training step it
    measures. A large array is summed in two halves at once, the second on a helper thread
    (numpy releases the GIL, and the framework waits for the host callback that runs this,
    so a core is free), and the halves combine exactly as above. ``zeros``: the zero count,
    where the caller has it already (:func:`fired_units_and_zeros`).
    """
    flat = np.asarray(values).reshape(-1)
    found = _added_over_halves(_moments_of_flat, flat, zeros is not None)
    return found if zeros is None else replace(found, zeros=zeros)


def _added_over_halves(function: Callable[..., Any], flat: np.ndarray, *args: Any) -> Any:
    """``function(flat, *args)``; from :data:`_TWO_HALVES_FROM` values, the sum of its results
    on the two halves of ``flat``, at once on two threads (split at a row boundary, so the
    rows are those of one pass)."""
    if flat.size < _TWO_HALVES_FROM:
        return function(flat, *args)
    half = flat.size // 2 // SUM_ROW_LENGTH * SUM_ROW_LENGTH
    first, second = _in_two_threads(function, (flat[:half], *args), (flat[half:], *args))
    return first + second


#: Arrays with at least this many values are summed in two halves on two threads (below it,
#: handing a half to the helper costs more than it saves: the float32 sums are memory-bound).
_TWO_HALVES_FROM = 1 << 20
_helper_pool: ThreadPoolExecutor | None = None
_helper_lock = threading.Lock()


_HELPER_NAME = "ikkuna-sums"


def _helper() -> ThreadPoolExecutor:
    """The one helper thread that sums second halves (started on first use, and anew in a
    forked child: :func:`_forget_helper_in_child`)."""
    global _helper_pool
    with _helper_lock:
        if _helper_pool is None:
            _helper_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_HELPER_NAME)
        return _helper_pool


def _forget_helper_in_child() -> None:
    """After fork: the parent's helper thread and the lock's holder are not in the child."""
    global _helper_pool, _helper_lock
    _helper_pool, _helper_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helper_in_child)


def _in_two_threads(function: Callable[..., Any], first: tuple[Any, ...],
                    second: tuple[Any, ...]) -> tuple[Any, Any]:
    """``function(*first)`` on this thread and ``function(*second)`` on the helper, at once;
    both here where the helper takes no more work (the interpreter is shutting down: a
    monitor detached at exit still delivers its last steps), or this is the helper (it would
    wait for itself)."""
    if threading.current_thread().name.startswith(_HELPER_NAME):
        return function(*first), function(*second)
    try:
        pending = _helper().submit(function, *second)
    except RuntimeError:
        return function(*first), function(*second)
    return function(*first), pending.result()


def _moments_of_flat(flat: np.ndarray, zeros_known: bool = False) -> Moments:
    """The moments of a vector; with ``zeros_known``, a zero count of 0 for the caller to
    replace (the vanishing-magnitude check then errs toward the exact float64 sums)."""
    count = flat.size
    if count == 0:
        return Moments(0, 0.0, 0.0, 0.0, 0)
    # counting what equals zero is several times faster than counting what does not
    zeros = 0 if zeros_known else int(np.count_nonzero(flat == 0))
    if flat.dtype == np.float32 and count >= _FLOAT32_ROWS_FROM:
        found = moments_of_row_sums(*_float32_row_sums(flat), count, zeros)
        if found is not None:
            return found
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and Inf are recorded, not warned
        total = float(np.einsum("i->", flat, dtype=np.float64))
        sum_squares = float(np.einsum("i,i->", flat, flat, dtype=np.float64))
        m2 = sum_squares - total * (total / count)
        error_bound = count * _FLOAT64_EPSILON * sum_squares / m2 if m2 > 0 else math.inf
        if not error_bound <= _VARIANCE_TOLERANCE:
            m2 = float(np.var(flat, dtype=np.float64)) * count
    return Moments(count, total, sum_squares, m2, zeros)


def _rows_and_rest(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A vector as whole rows of :data:`SUM_ROW_LENGTH` values (a view) and what is left."""
    rows = flat.size // SUM_ROW_LENGTH
    return flat[: rows * SUM_ROW_LENGTH].reshape(rows, SUM_ROW_LENGTH), flat[rows * SUM_ROW_LENGTH:]


def _float32_row_sums(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's sum and sum of squares, in float32 (the partials of
    :func:`moments_of_row_sums`): about four times faster than float64 sums, which make numpy
    cast every value."""
    matrix, rest = _rows_and_rest(flat)
    with np.errstate(invalid="ignore", over="ignore"):
        sums = np.append(np.einsum("ij->i", matrix), np.einsum("i->", rest))
        squares = np.append(np.einsum("ij,ij->i", matrix, matrix), np.einsum("i,i->", rest, rest))
    return sums, squares


def float32_sum_of_squares(flat: np.ndarray) -> float:
    """``sum(x^2)`` of a float32 vector: float32 rows of :data:`SUM_ROW_LENGTH` values added
    in float64, within :data:`ROW_PARTIALS_RTOL` (an overflow gives ``inf``)."""
    matrix, rest = _rows_and_rest(flat)
    rest = rest.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        squares = np.einsum("ij,ij->i", matrix, matrix).sum(dtype=np.float64)
    return float(squares) + float(np.einsum("i,i->", rest, rest))


def sum_of_squares(values: np.ndarray) -> float:
    """``sum(x^2)`` over all entries, in float64, as :func:`moments` gives its ``sum_squares``
    but in one pass: a float32 array of at least :data:`_FLOAT32_ROWS_FROM` values by float32
    rows added in float64 (within :data:`ROW_PARTIALS_RTOL`; two halves on two threads from
    :data:`_TWO_HALVES_FROM`), unless that sum is not finite or its squares could have
    underflowed (an all-zero array is known by one more pass, not summed again); everything
    else in float64. Refuses complex values as :func:`moments` does."""
    flat = np.asarray(values).reshape(-1)
    if flat.dtype == np.float32 and flat.size >= _FLOAT32_ROWS_FROM:
        found = _added_over_halves(float32_sum_of_squares, flat)
        if _trusted_sum_of_squares(found, flat.size):
            return found
        if found == 0.0 and not flat.any():
            return 0.0  # all zero (a frozen parameter's update): no second pass
    return _float64_sum_of_squares(flat)


def _float64_sum_of_squares(flat: np.ndarray) -> float:
    with np.errstate(invalid="ignore", over="ignore"):
        return float(np.einsum("i,i->", flat, flat, dtype=np.float64))


def sum_of_row_squares(row_squares: np.ndarray, count: int) -> float | None:
    """The sum of squares of ``count`` values from each row's float32 sum of squares (a
    framework's partials), added in float64; None where that cannot be trusted to
    :data:`ROW_PARTIALS_RTOL` (not finite, or small enough for float32 squares to have
    underflowed): the caller then sums in float64."""
    with np.errstate(invalid="ignore", over="ignore"):
        found = float(np.asarray(row_squares, dtype=np.float64).sum())
    return found if _trusted_sum_of_squares(found, count) else None


def _trusted_sum_of_squares(found: float, count: int) -> bool:
    """Whether a sum of squares added from float32 rows holds (not a float32 overflow, NaN or
    infinity, nor a vanishing magnitude whose squares underflow, as in
    :func:`moments_of_row_sums`)."""
    return math.isfinite(found) and found >= count * _SMALLEST_ROW_MEAN_SQUARE


def moments_of_row_sums(row_sums: np.ndarray, row_squares: np.ndarray, count: int,
                        zeros: int) -> Moments | None:
    """The :class:`Moments` of ``count`` values from each row's float32 sum and sum of
    squares (rows of any length: numpy's are :data:`SUM_ROW_LENGTH` values, torch's 256),
    added in float64.

    One pass over the values, where :func:`moments_of_rows` needs a centered second one; so
    the centered sum of squares comes from ``sum_squares - total^2 / count``, trusted only
    while the values' mean is not large next to their spread (``sum_squares`` at most
    :data:`_MOST_SQUARES_PER_M2` times ``m2``), where it stays within
    :data:`ROW_PARTIALS_RTOL`. None beyond that, and where :func:`moments_of_rows` gives
    None (non-finite sums, vanishing magnitudes): the caller then centers the rows first, or
    sums exactly.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        total = float(np.asarray(row_sums, dtype=np.float64).sum())
        sum_squares = float(np.asarray(row_squares, dtype=np.float64).sum())
        m2 = sum_squares - total * (total / count)
    if not (math.isfinite(total) and math.isfinite(sum_squares)):
        return None
    if zeros < count and sum_squares < count * _SMALLEST_ROW_MEAN_SQUARE:
        return None
    if not m2 * _MOST_SQUARES_PER_M2 >= sum_squares:  # also m2 <= 0 where the values differ
        return None
    return Moments(count, total, sum_squares, m2, zeros)


def moments_of_rows(row_means: np.ndarray, row_residuals: np.ndarray,
                    row_squares: np.ndarray, count: int, zeros: int) -> Moments | None:
    """The :class:`Moments` of ``count`` values from per-row partials, combined in float64.

    Each row holds :data:`ROW_LENGTH` values (the last row the rest). For each, the framework
    hands over the mean ``m`` it centered the row on (any approximation, used exactly as
    given), the sum of the deviations ``r = sum(x - m)`` and their sum of squares
    ``q = sum((x - m)^2)``. Then the row's sum is ``n*m + r`` and its centered sum of
    squares ``q - r^2/n`` (the corrected two-pass algorithm), so no row's sum of squares
    cancels however large its mean; the rows combine with Chan et al.'s update.

    None where the partials cannot be trusted to :data:`ROW_PARTIALS_RTOL`: a non-finite
    result (a NaN or infinity among the values, or a float32 overflow), or values so small
    that their float32 squares underflow. The caller then computes the moments exactly, so
    NaN and infinities come out as :func:`moments` gives them.
    """
    means = np.asarray(row_means, dtype=np.float64).reshape(-1)
    residuals = np.asarray(row_residuals, dtype=np.float64).reshape(-1)
    squares = np.asarray(row_squares, dtype=np.float64).reshape(-1)
    counts = np.full(means.shape, float(ROW_LENGTH))
    counts[-1] = count - ROW_LENGTH * (len(means) - 1)
    with np.errstate(invalid="ignore", over="ignore"):
        sums = counts * means + residuals
        m2s = np.maximum(squares - residuals * residuals / counts, 0.0)
        total, within_rows = float(sums.sum()), float(m2s.sum())
        row_means = sums / counts
        m2 = within_rows + float((counts * np.square(row_means - total / count)).sum())
        sum_squares = within_rows + float((counts * np.square(row_means)).sum())
    if not (math.isfinite(total) and math.isfinite(m2) and math.isfinite(sum_squares)):
        return None
    if zeros < count and sum_squares < count * _SMALLEST_ROW_MEAN_SQUARE:
        return None
    return Moments(count, total, sum_squares, m2, zeros)


def fired_units(values: np.ndarray, channel_axis: int | None) -> np.ndarray | None:
    """Per unit, whether it was non-zero for any sample: a bool vector over the channel axis
    (a dense layer's features); an array without a channel axis is one unit; None if empty.
    Reduced in place, without moving channels last."""
    return fired_units_and_zeros(values, channel_axis)[0]


def fired_units_and_zeros(values: np.ndarray, channel_axis: int | None) -> tuple[np.ndarray | None, int]:
    """:func:`fired_units` and the zero count of :class:`Moments`, from one "not zero" mask
    (a pass over the values instead of two)."""
    values = np.asarray(values)
    if values.size == 0:
        return None, 0
    if values.ndim < 2 or channel_axis is None:
        nonzero = int(np.count_nonzero(values != 0))
        return np.array([nonzero > 0]), values.size - nonzero
    axis = channel_axis % values.ndim
    others = tuple(a for a in range(values.ndim) if a != axis)
    split = others[0]
    if values.size >= _TWO_HALVES_FROM and values.shape[split] >= 2:  # as moments(): two threads
        half = values.shape[split] // 2
        before = (slice(None),) * split
        (first, first_zeros), (second, second_zeros) = _in_two_threads(
            _fired_and_zeros, (values[before + (slice(None, half),)], others),
            (values[before + (slice(half, None),)], others))
        return first | second, first_zeros + second_zeros
    return _fired_and_zeros(values, others)


def _channels_last_contiguous(values: np.ndarray, channel_axis: int | None) -> bool:
    """Whether ``values`` hold channels on their last axis in one C-contiguous block (where
    :func:`fired_units_and_zeros` takes its fast path)."""
    return (channel_axis is not None and values.ndim >= 2 and values.flags.c_contiguous
            and channel_axis % values.ndim == values.ndim - 1)


def _fired_and_zeros(values: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, int]:
    nonzero = values != 0
    zeros = nonzero.size - int(np.count_nonzero(nonzero))
    if values.flags.c_contiguous and axes == tuple(range(values.ndim - 1)):
        return _columns_with_any(nonzero.reshape(-1, values.shape[-1])), zeros
    return np.any(nonzero, axis=axes), zeros


#: Bytes per wide row of :func:`_columns_with_any`.
_WIDE_ROW_BYTES = 4096


def _columns_with_any(rows: np.ndarray) -> np.ndarray:
    """Per column of a bool matrix, whether any entry is true: the bytes are OR-ed over wide
    rows of several rows at once (numpy reduces a short row, one channel per sample, several
    times slower), then the wide row is folded back to one row."""
    channels = rows.shape[1]
    as_bytes = rows.view(np.uint8)
    fold = max(1, _WIDE_ROW_BYTES // max(channels, 1))
    whole = as_bytes.shape[0] // fold * fold
    wide = np.bitwise_or.reduce(as_bytes[:whole].reshape(-1, fold * channels), axis=0)
    fired = np.bitwise_or.reduce(wide.reshape(fold, channels), axis=0)
    fired |= np.bitwise_or.reduce(as_bytes[whole:], axis=0)
    return fired.astype(bool)


def combine_moments(parts: Sequence[Moments]) -> Moments:
    combined = parts[0]
    for part in parts[1:]:
        combined = combined + part
    return combined


def combine_fired(parts: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """Units fired in any of the arrivals; arrivals with other channel counts than the
    latest are left out (as the joined values would be)."""
    found = [p for p in parts if p is not None]
    if not found:
        return None
    latest = found[-1]
    combined = latest.copy()
    for part in found[:-1]:
        if part.shape == latest.shape:
            combined |= part
    return combined


#: Key under which :func:`of_values` keeps an activation's zero count, found with its fired
#: units, for its moments.
ZERO_COUNT = "zero_count"


def of_values(name: str, values: np.ndarray, layout: Any, known: Mapping[str, Any]) -> dict[str, Any]:
    """``name``'s statistic of host ``values``, and what was found on the way, for the caller
    to keep with it: an activation's (``layout.channel_axis`` set) moments and fired units
    share one "not zero" mask, so whichever comes second skips that pass. ``known``: what
    the caller kept so far."""
    if name == FIRED_UNITS:
        fired, zeros = fired_units_and_zeros(values, layout.channel_axis)
        return {FIRED_UNITS: fired, ZERO_COUNT: zeros}
    if name == SUM_SQUARES:  # Array.statistic reads it off moments it has already
        return {SUM_SQUARES: sum_of_squares(values)}
    if name == MOMENTS:
        zeros = known.get(ZERO_COUNT)
        if zeros is None and _channels_last_contiguous(values, layout.channel_axis):
            # its fired units are usually read too, and cost little more than the zero count
            fired, zeros = fired_units_and_zeros(values, layout.channel_axis)
            return {MOMENTS: moments(values, zeros), FIRED_UNITS: fired, ZERO_COUNT: zeros}
        return {MOMENTS: moments(values, zeros)}
    raise ValueError(f"unknown statistic {name!r}; known: {', '.join(sorted(STATISTICS))}")


#: How the statistics of several arrivals in a step combine.
COMBINE: dict[str, Callable[[Sequence[Any]], Any]] = {
    MOMENTS: combine_moments,
    FIRED_UNITS: combine_fired,
    SUM_SQUARES: lambda parts: float(sum(parts)),  # not fsum: it raises past float64's range
}
