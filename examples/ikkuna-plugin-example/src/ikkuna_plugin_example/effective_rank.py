"""The effective rank of each layer's activations (Roy & Vetterli, 2007).

The effective rank of a matrix is ``exp(H(p))``, where ``p`` are its singular values divided by
their sum and ``H`` is the Shannon entropy: a number between 1 and the rank that counts how
many directions the matrix really spreads over. Here the matrix is a layer's activations with
one row per sample and position and one column per channel, centered per channel, so it says
how many channels' worth of independent signal the layer passes on.
"""

from __future__ import annotations

import ikkuna
import numpy as np


def effective_rank(matrix: np.ndarray, *, center: bool = False) -> float:
    """The effective rank of ``matrix`` (any 2-d array), computed in float64.

    ``center`` subtracts each column's mean first. 0.0 for a matrix without signal (empty, all
    zero, or constant columns when centered); NaN, without a warning, if it holds NaN or
    infinity. Singular values that are rounding noise (at most ``max(shape) * eps`` times the
    Frobenius norm of the matrix before centering, NumPy's ``matrix_rank`` tolerance) count as
    zero, so a constant matrix has effective rank 0.0 however its mean rounds.
    """
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"effective_rank takes a 2-d matrix, got shape {values.shape}")
    if values.size == 0:
        return 0.0
    if not np.all(np.isfinite(values)):
        return float("nan")
    tolerance = float(np.linalg.norm(values)) * max(values.shape) * np.finfo(np.float64).eps
    if center:
        values = values - values.mean(axis=0)
    sigma = np.linalg.svd(values, compute_uv=False)
    kept = sigma[sigma > tolerance]
    if kept.size == 0:
        return 0.0
    p = kept / kept.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


class EffectiveRank(ikkuna.Metric):
    """Effective rank of each layer's activations as a (samples, channels) matrix, centered."""

    name = "effective_rank"
    needs = ("activations",)
    cost = "expensive"

    def compute(self, group: ikkuna.EventGroup) -> float | None:
        """``None`` for activations without a channel axis (fewer than two axes) or values.

        Rows are samples (and positions, for images: an NCHW or NHWC activation gives
        ``N * H * W`` rows), columns are channels, whatever the framework's layout.
        """
        array = group.array("activations")
        if array.ndim < 2 or 0 in array.shape:
            return None
        values = array.as_channels_last()
        return effective_rank(values.reshape(-1, values.shape[-1]), center=True)
