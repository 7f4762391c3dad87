"""Metrics that probe the model on a fixed batch after the step: SVCCA similarity of a layer
to itself some steps earlier, the gradient noise scale and signal-to-noise ratio, and the top
Hessian eigenvalue and Hessian trace.

They need ``ikkuna.attach(..., probe=ikkuna.Probe(inputs, targets, loss))`` and an adapter
with the probe capabilities; they run rarely by default (each probe costs extra forward and
backward passes). The algorithms are here, in numpy, on what the adapters hand out: layer
outputs, per-sample or micro-batch gradients, Hessian-vector products.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ikkuna.core.metric import EventGroup, Metric
from ikkuna.core.probe import HESSIAN_VECTOR_PRODUCT, PROBE_ACTIVATIONS, PROBE_GRADIENTS
from ikkuna.core.schedule import LayerSelection, ScheduleLike

#: Fraction of the variance the SVD step of SVCCA keeps (Raghu et al. 2017).
SVCCA_KEEP = 0.99

HessianVectorProduct = Callable[[np.ndarray], np.ndarray]


# -- algorithms (numpy) -------------------------------------------------------------------------


def power_iteration(hvp: HessianVectorProduct, size: int, *, iterations: int = 20,
                    tolerance: float = 1e-4, seed: int = 0) -> float:
    """The eigenvalue of largest magnitude of the symmetric operator ``hvp`` (``(k, size)`` to
    ``(k, size)``), by power iteration from a fixed random start; stops when the Rayleigh
    quotient changes by less than ``tolerance`` (relative) or after ``iterations`` products."""
    vector = np.random.default_rng(seed).standard_normal(size)
    vector /= np.linalg.norm(vector)
    estimate = 0.0
    for _ in range(iterations):
        product = hvp(vector[None, :])[0]
        previous, estimate = estimate, float(vector @ product)
        norm = float(np.linalg.norm(product))
        if norm == 0.0 or not np.isfinite(norm):
            return estimate if np.isfinite(norm) else float("nan")
        vector = product / norm
        if abs(estimate - previous) <= tolerance * abs(estimate):
            break
    return estimate


def hutchinson_trace(hvp: HessianVectorProduct, size: int, *, samples: int = 10,
                     seed: int = 0) -> float:
    """Hutchinson's estimate of ``trace(H)``: the mean of ``zᵀHz`` over Rademacher vectors
    ``z`` (entries ±1, fixed seed), computed in one call of ``hvp`` with ``samples`` rows."""
    signs = np.random.default_rng(seed).integers(0, 2, size=(samples, size)) * 2.0 - 1.0
    products = hvp(signs)
    return float(np.mean(np.einsum("ij,ij->i", signs, products)))


def gradient_noise_scale(gradients: np.ndarray, group_size: int) -> dict[str, float]:
    """The simple gradient noise scale ``B_simple = tr(Σ) / |G|²`` (McCandlish et al. 2018).

    ``gradients`` is ``(k, size)``: the mean-loss gradients of ``k`` equal micro-batches of
    ``b = group_size`` samples that together are the batch of ``B = k·b``. The unbiased estimators of the
    paper's appendix A.1 from the two batch sizes, with ``|G_b|²`` averaged over the
    micro-batches and ``|G_B|²`` the squared norm of their mean::

        |G|²  ≈ (B·|G_B|² − b·|G_b|²) / (B − b)
        tr(Σ) ≈ (|G_b|² − |G_B|²) / (1/b − 1/B)

    ``B_simple`` is in samples. Returns ``scale``, ``gradient_norm_squared`` and ``trace_covariance``; ``scale`` is inf
    where the estimate of ``|G|²`` is not positive (the gradient is below the noise the probe
    batch resolves).
    """
    gradients = np.asarray(gradients, dtype=np.float64)
    groups = gradients.shape[0]
    if groups < 2:
        raise ValueError(f"the gradient noise scale needs at least 2 micro-batches, got {groups}")
    small = float(np.mean(np.einsum("ij,ij->i", gradients, gradients)))
    mean = gradients.mean(axis=0)
    big = float(mean @ mean)
    b, B = float(group_size), float(group_size * groups)
    norm_squared = (B * big - b * small) / (B - b)
    trace = (small - big) / (1.0 / b - 1.0 / B)
    scale = trace / norm_squared if norm_squared > 0 else float("inf")
    return {"scale": scale, "gradient_norm_squared": norm_squared, "trace_covariance": trace}


def gradient_snr(per_sample: np.ndarray) -> tuple[float, int]:
    """Sum and count of the elementwise gradient signal-to-noise ratios of one parameter.

    ``per_sample`` is ``(samples, ...)``; for every element ``j`` the ratio is
    ``mean_j² / var_j`` with the mean and the unbiased variance (``ddof=1``) over the samples
    (Liu et al. 2020, GSNR). Elements whose gradient does not vary over the samples (variance
    0) are left out.
    """
    values = np.asarray(per_sample, dtype=np.float64).reshape(per_sample.shape[0], -1)
    if values.shape[0] < 2:
        raise ValueError("the gradient signal-to-noise ratio needs at least 2 samples")
    mean = values.mean(axis=0)
    variance = values.var(axis=0, ddof=1)
    varies = np.ptp(values, axis=0) > 0  # exactly, unlike a rounded variance
    ratios = mean[varies] ** 2 / variance[varies]
    return float(ratios.sum()), int(varies.sum())


def _principal_directions(values: np.ndarray, keep: float) -> np.ndarray | None:
    """Orthonormal basis (samples × k) of the centred data's top directions that explain
    ``keep`` of the variance; None for data without variance."""
    centred = values - values.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    energy = s**2
    total = energy.sum()
    if not np.isfinite(total) or total <= 0:
        return None
    count = int(np.searchsorted(np.cumsum(energy) / total, keep - 1e-12) + 1)
    return u[:, :count]


def svcca(first: np.ndarray, second: np.ndarray, keep: float = SVCCA_KEEP) -> float:
    """SVCCA similarity (Raghu et al. 2017) of two activation matrices (samples × units).

    Each matrix is centred and reduced by SVD to the directions that explain ``keep`` of its
    variance; the canonical correlations of the two reduced sets are the singular values of
    the product of their orthonormal bases; the result is their mean (1: the same subspace up
    to a linear map). NaN when either matrix has no variance. Needs many more samples than
    kept directions, else every pair looks similar.
    """
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"SVCCA needs the same samples in both, got {a.shape[0]} and {b.shape[0]}")
    basis_a, basis_b = _principal_directions(a, keep), _principal_directions(b, keep)
    if basis_a is None or basis_b is None:
        return float("nan")
    correlations = np.linalg.svd(basis_a.T @ basis_b, compute_uv=False)
    return float(np.mean(np.clip(correlations, 0.0, 1.0)))


def activation_matrix(values: np.ndarray, positions: str = "samples") -> np.ndarray:
    """A layer's channels-last output as ``(data points, channels)``.

    ``positions="samples"`` makes every spatial or sequence position of every sample a data
    point (conv: ``(n·h·w, channels)``, as Raghu et al. do for conv layers);
    ``positions="mean"`` averages over positions first (``(n, channels)``).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        return values.reshape(-1, 1)
    if positions == "mean":
        return values.reshape(values.shape[0], -1, values.shape[-1]).mean(axis=1)
    return values.reshape(-1, values.shape[-1])


# -- metrics ------------------------------------------------------------------------------------


class SvccaSimilarity(Metric):
    """SVCCA similarity of a layer's probe-batch outputs to its outputs some steps earlier.

    1 means unchanged up to a linear map: how far the layer is from having converged.

    ``lag``: compare with the outputs of at least ``lag`` steps earlier (the latest such run of
    this metric); None (the default): with the previous run. ``positions``: conv and sequence
    outputs as one data point per position (``"samples"``, the default) or averaged over
    positions (``"mean"``). The first run of each layer records nothing.
    """

    name = "svcca_similarity"
    needs = ("probe_activations",)
    cost = "probe"
    requires = frozenset({PROBE_ACTIVATIONS})

    def __init__(self, *, layers: LayerSelection = None, every: ScheduleLike = 50,
                 lag: int | None = None, positions: str = "samples",
                 keep: float = SVCCA_KEEP) -> None:
        super().__init__(layers=layers, every=every)
        if lag is not None and (isinstance(lag, bool) or not isinstance(lag, int) or lag < 1):
            raise ValueError(f"svcca_similarity(lag=...) must be an int >= 1 or None, got {lag!r}")
        if positions not in ("samples", "mean"):
            raise ValueError(f"positions= must be 'samples' or 'mean', got {positions!r}")
        if not 0 < keep <= 1:
            raise ValueError(f"keep= must be in (0, 1], got {keep!r}")
        self.lag, self.positions, self.keep = lag, positions, keep
        self._history: dict[str, list[tuple[int, np.ndarray]]] = {}

    def compute(self, group: EventGroup) -> float | None:
        matrix = activation_matrix(group.array("probe_activations").as_channels_last(),
                                   self.positions)
        history = self._history.setdefault(group.layer.name, [])
        earlier = [(s, m) for s, m in history
                   if s < group.step and (self.lag is None or s <= group.step - self.lag)]
        history.append((group.step, matrix))
        if earlier:  # keep the reference used now and everything after it
            first = history.index(earlier[-1])
            del history[:first]
        if not earlier:
            return None
        value = svcca(earlier[-1][1], matrix, self.keep)
        return None if np.isnan(value) else value


class GradientNoiseScale(Metric):
    """Gradient noise scale B_simple = tr(Σ)/|G|² from the probe batch's micro-batches.

    McCandlish et al. 2018: the batch size beyond which larger batches help little. Records
    ``.scale``, ``.gradient_norm_squared`` and ``.trace_covariance``.

    ``microbatches``: how many equal parts the probe batch is split into (it must divide the
    probe batch; ``None``: one per sample).
    """

    name = "gradient_noise_scale"
    needs = ("probe",)
    cost = "probe"
    requires = frozenset({PROBE_GRADIENTS})

    def __init__(self, *, every: ScheduleLike = 50, microbatches: int | None = 4) -> None:
        super().__init__(every=every)
        if microbatches is not None and (isinstance(microbatches, bool)
                                         or not isinstance(microbatches, int) or microbatches < 2):
            raise ValueError(f"microbatches= must be an int >= 2 or None, got {microbatches!r}")
        self.microbatches = microbatches

    def compute(self, group: EventGroup) -> dict[str, float]:
        session = group.probe
        groups = self.microbatches or session.batch_size
        return gradient_noise_scale(session.flat_gradients(groups), session.batch_size // groups)


class GradientSignalToNoise(Metric):
    """Gradient signal-to-noise ratio (mean²/variance of per-sample probe gradients).

    Per parameter, the mean over its elements of ``mean² / variance`` of the per-sample
    gradients (GSNR, Liu et al. 2020; unbiased variance, elements that do not vary left out);
    the step's run-level value is the mean over every element of the selected layers."""

    name = "gradient_snr"
    needs = ("probe_gradients",)
    cost = "probe"
    requires = frozenset({PROBE_GRADIENTS})

    def __init__(self, *, layers: LayerSelection = None, every: ScheduleLike = 50) -> None:
        super().__init__(layers=layers, every=every)
        self._total, self._count = 0.0, 0

    def compute(self, group: EventGroup) -> float | None:
        total, count = gradient_snr(group["probe_gradients"])
        self._total += total
        self._count += count
        return total / count if count else None

    def finish_step(self, step: int) -> float | None:
        total, count = self._total, self._count
        self._total, self._count = 0.0, 0
        return total / count if count else None


class _Curvature(Metric):
    needs = ("probe",)
    cost = "probe"
    requires = frozenset({HESSIAN_VECTOR_PRODUCT})

    def __init__(self, *, every: ScheduleLike = 200, seed: int = 0) -> None:
        super().__init__(every=every)
        self.seed = seed


class HessianTopEigenvalue(_Curvature):
    """Largest-magnitude eigenvalue of the probe loss' Hessian (sharpness), by power iteration.

    At most ``iterations`` Hessian-vector products, from a fixed random start (``seed``)."""

    name = "hessian_top_eigenvalue"

    def __init__(self, *, every: ScheduleLike = 200, iterations: int = 20,
                 tolerance: float = 1e-3, seed: int = 0) -> None:
        super().__init__(every=every, seed=seed)
        self.iterations, self.tolerance = iterations, tolerance

    def compute(self, group: EventGroup) -> float:
        session = group.probe
        return power_iteration(session.hessian_vector_product, session.size,
                               iterations=self.iterations, tolerance=self.tolerance,
                               seed=self.seed)


class HessianTrace(_Curvature):
    """Trace of the probe loss' Hessian, by Hutchinson's estimator.

    The mean of zᵀHz over ``samples`` Rademacher vectors z (fixed ``seed``)."""

    name = "hessian_trace"

    def __init__(self, *, every: ScheduleLike = 200, samples: int = 10, seed: int = 0) -> None:
        super().__init__(every=every, seed=seed)
        self.samples = samples

    def compute(self, group: EventGroup) -> float:
        session = group.probe
        return hutchinson_trace(session.hessian_vector_product, session.size,
                                samples=self.samples, seed=self.seed)


PROBING_METRICS = (
    SvccaSimilarity,
    GradientNoiseScale,
    GradientSignalToNoise,
    HessianTopEigenvalue,
    HessianTrace,
)

__all__ = [
    "PROBING_METRICS",
    "activation_matrix",
    "gradient_noise_scale",
    "gradient_snr",
    "hutchinson_trace",
    "power_iteration",
    "svcca",
]
