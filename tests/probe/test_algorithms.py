"""The probe metrics' numpy algorithms against independent computations."""

from __future__ import annotations

import numpy as np
import pytest

from ikkuna.metrics.probing import (
    activation_matrix,
    gradient_noise_scale,
    gradient_snr,
    hutchinson_trace,
    power_iteration,
    svcca,
)


def least_squares_hessian(samples: int = 50, features: int = 6) -> np.ndarray:
    """The Hessian of the mean squared error of a linear model: XᵀX / n (times 2)."""
    x = np.random.default_rng(1).standard_normal((samples, features)) * np.arange(1, features + 1)
    return 2 * x.T @ x / samples


def as_hvp(matrix: np.ndarray):
    return lambda vectors: vectors @ matrix.T


def test_power_iteration_finds_the_largest_eigenvalue_of_a_least_squares_hessian():
    hessian = least_squares_hessian()
    exact = np.linalg.eigvalsh(hessian)[-1]
    found = power_iteration(as_hvp(hessian), hessian.shape[0], iterations=200, tolerance=1e-10)
    assert found == pytest.approx(exact, rel=1e-6)


def test_power_iteration_finds_the_largest_magnitude_eigenvalue_when_it_is_negative():
    matrix = np.diag([-5.0, 2.0, 1.0, 0.5])
    assert power_iteration(as_hvp(matrix), 4, iterations=300, tolerance=1e-12) == pytest.approx(-5.0, rel=1e-6)


def test_hutchinson_equals_the_mean_of_z_h_z_over_the_same_rademacher_vectors_and_is_unbiased():
    hessian = least_squares_hessian()
    size = hessian.shape[0]
    signs = np.random.default_rng(0).integers(0, 2, size=(10, size)) * 2.0 - 1.0
    direct = np.mean([z @ hessian @ z for z in signs])
    assert hutchinson_trace(as_hvp(hessian), size, samples=10, seed=0) == pytest.approx(direct)
    many = hutchinson_trace(as_hvp(hessian), size, samples=20000, seed=3)
    assert many == pytest.approx(np.trace(hessian), rel=0.02)


def per_sample_gradients(samples: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((samples, size)) * 0.5 + np.linspace(-1, 1, size)


def test_gradient_noise_scale_from_per_sample_gradients_equals_the_direct_estimate():
    gradients = per_sample_gradients(32, 20)
    n = gradients.shape[0]
    trace = gradients.var(axis=0, ddof=1).sum()  # tr of the per-sample covariance
    mean = gradients.mean(axis=0)
    norm_squared = mean @ mean - trace / n  # unbiased |G|^2
    found = gradient_noise_scale(gradients, group_size=1)
    assert found["trace_covariance"] == pytest.approx(trace)
    assert found["gradient_norm_squared"] == pytest.approx(norm_squared)
    assert found["scale"] == pytest.approx(trace / norm_squared)


def test_gradient_noise_scale_from_micro_batches_is_unbiased_for_known_mean_and_covariance():
    size, group_size, groups, trials = 10, 4, 8, 3000
    rng = np.random.default_rng(0)
    true_mean = np.linspace(-1, 1, size) * 0.3
    scales = np.linspace(0.5, 1.5, size)
    traces, norms = [], []
    for _ in range(trials):
        samples = true_mean + rng.standard_normal((groups * group_size, size)) * scales
        micro = samples.reshape(groups, group_size, size).mean(axis=1)
        found = gradient_noise_scale(micro, group_size=group_size)
        traces.append(found["trace_covariance"])
        norms.append(found["gradient_norm_squared"])
    assert np.mean(traces) == pytest.approx(np.sum(scales**2), rel=0.02)
    assert np.mean(norms) == pytest.approx(true_mean @ true_mean, rel=0.05)


def test_gradient_noise_scale_is_inf_when_the_gradient_estimate_is_not_positive():
    noise = np.random.default_rng(0).standard_normal((4, 50))
    noise -= noise.mean(axis=0)  # the batch mean is exactly zero
    assert gradient_noise_scale(noise, group_size=2)["scale"] == float("inf")


def test_gradient_snr_equals_a_direct_loop_over_elements():
    gradients = per_sample_gradients(16, 12).reshape(16, 3, 4)
    gradients[:, 0, 0] = 0.7  # constant over samples: no variance, left out
    ratios = []
    for index in np.ndindex(3, 4):
        values = gradients[(slice(None), *index)]
        variance = np.var(values, ddof=1)
        if variance > 0:
            ratios.append(np.mean(values) ** 2 / variance)
    total, count = gradient_snr(gradients)
    assert count == 11
    assert total / count == pytest.approx(np.mean(ratios))


def direct_cca(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Canonical correlations from covariance matrices: eig of Σaa⁻¹ Σab Σbb⁻¹ Σba."""
    a, b = first - first.mean(0), second - second.mean(0)
    n = a.shape[0]
    saa, sbb, sab = a.T @ a / n, b.T @ b / n, a.T @ b / n
    values = np.linalg.eigvals(np.linalg.solve(saa, sab) @ np.linalg.solve(sbb, sab.T))
    values = np.sort(np.clip(values.real, 0, 1))[::-1]
    return np.sqrt(values[: min(a.shape[1], b.shape[1])])


def svd_reduce(values: np.ndarray, keep: float = 0.99) -> np.ndarray:
    centred = values - values.mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    ratio = np.cumsum(s**2) / np.sum(s**2)
    count = int(np.argmax(ratio >= keep)) + 1
    return u[:, :count] * s[:count]


def test_svcca_of_identical_activations_is_one():
    values = np.random.default_rng(0).standard_normal((200, 6))
    assert svcca(values, values) == pytest.approx(1.0)


def test_svcca_is_invariant_to_invertible_linear_maps_of_the_units():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((300, 5))
    mixed = values @ rng.standard_normal((5, 5)) + 3.0
    assert svcca(values, mixed, keep=1.0) == pytest.approx(1.0)


def test_svcca_of_independent_noise_is_low():
    rng = np.random.default_rng(0)
    assert svcca(rng.standard_normal((4000, 5)), rng.standard_normal((4000, 5))) < 0.1


def test_svcca_equals_the_mean_of_a_direct_cca_on_the_svd_reduced_activations():
    rng = np.random.default_rng(2)
    shared = rng.standard_normal((500, 3))
    first = np.hstack([shared, rng.standard_normal((500, 3))]) @ rng.standard_normal((6, 8))
    second = np.hstack([shared + 0.5 * rng.standard_normal((500, 3)),
                        rng.standard_normal((500, 2))])
    direct = direct_cca(svd_reduce(first), svd_reduce(second)).mean()
    assert svcca(first, second) == pytest.approx(direct, rel=1e-6)


def test_svcca_without_variance_is_nan():
    assert np.isnan(svcca(np.ones((10, 3)), np.random.default_rng(0).standard_normal((10, 3))))


def test_activation_matrix_treats_positions_as_samples_or_averages_them():
    values = np.arange(2 * 3 * 3 * 4, dtype=float).reshape(2, 3, 3, 4)  # NHWC
    assert activation_matrix(values).shape == (18, 4)
    averaged = activation_matrix(values, "mean")
    assert averaged.shape == (2, 4)
    np.testing.assert_allclose(averaged[1], values[1].reshape(-1, 4).mean(0))
