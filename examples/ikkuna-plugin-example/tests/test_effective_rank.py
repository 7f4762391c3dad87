"""The effective_rank metric: the formula on known matrices, every layout, every framework."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from ikkuna.testing import check_layouts, check_parity, run_metric, synthetic_steps

from ikkuna_plugin_example import EffectiveRank, effective_rank


def reference(matrix: np.ndarray) -> float:
    """Roy & Vetterli's effective rank, written out: exp of the entropy of sigma / sum(sigma)."""
    sigma = np.linalg.svd(np.asarray(matrix, dtype=np.float64), compute_uv=False)
    p = sigma[sigma > 0] / sigma.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


@pytest.mark.parametrize("n", [1, 4, 17])
def test_identity_has_full_effective_rank(n):
    assert effective_rank(np.eye(n)) == pytest.approx(n, rel=1e-12)


def test_rank_one_matrix_has_effective_rank_one():
    rank_one = np.outer(np.arange(1.0, 7.0), [2.0, -1.0, 0.5, 3.0])
    assert effective_rank(rank_one) == pytest.approx(1.0, rel=1e-12)


def test_two_unequal_directions_give_exp_of_their_entropy():
    p = np.array([0.75, 0.25])  # singular values 3 and 1
    assert effective_rank(np.diag([3.0, 1.0])) == pytest.approx(np.exp(-np.sum(p * np.log(p))))


@pytest.mark.parametrize("shape", [(50, 8), (8, 50), (30, 30)])
def test_random_matrices_match_the_numpy_reference(shape):
    matrix = np.random.default_rng(0).standard_normal(shape) * np.linspace(0.1, 3.0, shape[1])
    assert effective_rank(matrix) == pytest.approx(reference(matrix), rel=1e-12)
    assert 1.0 < effective_rank(matrix) < min(shape)


def test_scaling_does_not_change_the_effective_rank():
    matrix = np.random.default_rng(1).standard_normal((20, 5))
    assert effective_rank(1e-6 * matrix) == pytest.approx(effective_rank(1e6 * matrix), rel=1e-10)


def test_centering_removes_the_mean_direction():
    rng = np.random.default_rng(2)
    signal = rng.standard_normal((40, 1)) * [1.0, 2.0, -1.0]  # rank 1 around the mean
    shifted = signal + [5.0, -3.0, 7.0]
    assert effective_rank(shifted) > 1.5  # the mean is a second direction
    assert effective_rank(shifted, center=True) == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("matrix", [np.zeros((4, 3)), np.full((7, 3), 0.1), np.ones((1, 5)),
                                    np.zeros((0, 3))],
                         ids=["zeros", "constant", "one-sample", "empty"])
def test_matrices_without_signal_give_zero_and_no_warning(matrix):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert effective_rank(matrix, center=True) == 0.0


def test_all_zero_uncentered_matrix_is_zero_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert effective_rank(np.zeros((3, 3))) == 0.0


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_give_nan_without_warning(bad):
    matrix = np.eye(3)
    matrix[1, 2] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(effective_rank(matrix, center=True))


def test_a_vector_is_refused_naming_its_shape():
    with pytest.raises(ValueError, match=r"2-d matrix, got shape \(3,\)"):
        effective_rank(np.ones(3))


def test_metric_measures_channels_of_the_centered_activations_in_torch_layout():
    results = run_metric(EffectiveRank, synthetic_steps("torch", steps=2))
    same_steps = synthetic_steps("torch", steps=2)  # the bus may release the arrays it saw
    activations = [e for step in same_steps for e in step if e.kind == "activations"]
    assert {("effective_rank", e.layer.name, None, e.step) for e in activations} == set(results)
    for event in activations:
        values = event.array.numpy()  # torch: channels on axis 1 (NCHW or (N, C))
        matrix = np.moveaxis(values, 1, -1).reshape(-1, values.shape[1]).astype(np.float64)
        expected = reference(matrix - matrix.mean(axis=0))
        got = results[("effective_rank", event.layer.name, None, event.step)]
        assert got == pytest.approx(expected, rel=1e-9), event.layer.name


def test_metric_gives_the_same_values_in_every_framework_layout():
    results = check_layouts(EffectiveRank)
    assert {key[1] for key in results} == {"conv1", "relu1", "dense1", "head"}
    assert all(0.0 < value <= 6.0 for value in results.values())


def test_metric_gives_the_same_values_on_every_installed_framework(frameworks):
    found = check_parity(EffectiveRank)
    assert set(found) == {(f, n) for f in frameworks for n in ("mlp", "cnn")}
    for results in found.values():
        assert all(np.isfinite(value) and value >= 1.0 for value in results.values())
