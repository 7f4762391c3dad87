"""Weight-spectrum metrics against independent computations (numpy.linalg, a direct KS scan)."""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest

from ikkuna.core.arrays import Array, Layout, outputs_last_layout
from ikkuna.core.events import Event
from ikkuna.core.layers import LayerInfo
from ikkuna.core.metric import EventGroup
from ikkuna.core.schedule import as_schedule
from ikkuna.metrics import BUILTIN_METRICS, spectral
from ikkuna.metrics.spectral import (
    ConditionNumber,
    SpectralAlpha,
    SpectralNorm,
    StableRank,
    power_law_fit,
    singular_values,
)

FC = LayerInfo("fc", "dense", "numpy", {"weight": "weight", "bias": "bias"})
TORCH_LAYOUT = Layout(out_axis=0, in_axis=1)
SPECTRAL = (SpectralNorm, ConditionNumber, StableRank, SpectralAlpha)


def group(values, layout: Layout = TORCH_LAYOUT, param: str = "weight", step: int = 0,
          dtype=np.float64) -> EventGroup:
    """An EventGroup of one ``weights`` event for layer ``fc``."""
    array = Array.from_numpy(np.asarray(values, dtype=dtype), layout)
    event = Event("weights", step, 0, FC, param, array=array)
    return EventGroup({"weights": event}, step=step, epoch=0, layer=FC, param=param)


def random_orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def with_eigenvalues(rng: np.random.Generator, eigenvalues: np.ndarray) -> np.ndarray:
    """A square W = U diag(sqrt(lambda)) V^T, so W^T W has exactly these eigenvalues."""
    n = eigenvalues.size
    return random_orthogonal(rng, n) @ np.diag(np.sqrt(eigenvalues)) @ random_orthogonal(rng, n).T


def pareto(rng: np.random.Generator, n: int, alpha: float, xmin: float = 1.0) -> np.ndarray:
    """Samples of the density p(x) ~ x^-alpha for x >= xmin (inverse-CDF sampling)."""
    return xmin * (1.0 - rng.random(n)) ** (-1.0 / (alpha - 1.0))


def direct_fit(values, min_tail: int = 5):
    """The xmin scan written out: every distinct xmin, every tail value, both sides of each step."""
    data = sorted(float(v) for v in values if v > 0)
    best = None
    for xmin in sorted(set(data)):
        tail = [v for v in data if v >= xmin]
        n = len(tail)
        if n < min_tail:
            continue
        spread = sum(math.log(v / xmin) for v in tail)
        if spread == 0:
            continue
        alpha = 1 + n / spread
        distance = 0.0
        for i, v in enumerate(tail):
            fitted = 1 - (v / xmin) ** (1 - alpha)
            distance = max(distance, abs(fitted - i / n), abs(fitted - (i + 1) / n))
        if best is None or distance < best[1]:
            best = (alpha, distance, xmin)
    return best


# --- registration and schedule -----------------------------------------------------------------


def test_spectral_metrics_are_builtin_expensive_and_need_weights():
    names = {metric.name for metric in BUILTIN_METRICS}
    assert {"spectral_norm", "condition_number", "stable_rank", "spectral_alpha"} <= names
    for metric_class in SPECTRAL:
        assert metric_class in BUILTIN_METRICS
        metric_class.validate()
        assert metric_class.needs == ("weights",)
        assert metric_class.cost == "expensive"
        assert metric_class.scope() == "parameter"


def test_spectral_alpha_runs_every_100_steps_by_default_and_the_user_may_change_that():
    default = as_schedule(SpectralAlpha().every)
    assert [step for step in range(301) if default(step)] == [0, 100, 200, 300]
    assert SpectralAlpha(every=1).every == 1
    assert SpectralAlpha(layers="fc*").layers == "fc*"
    for metric_class in (SpectralNorm, ConditionNumber, StableRank):
        assert metric_class().every is None


# --- against numpy.linalg ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(7, 3), (3, 7), (5, 5), (1, 4), (4, 1)])
def test_norm_condition_and_stable_rank_match_numpy_linalg(shape):
    m = np.random.default_rng(sum(shape)).standard_normal(shape)
    assert SpectralNorm().compute(group(m)) == pytest.approx(np.linalg.norm(m, 2), rel=1e-12)
    assert ConditionNumber().compute(group(m)) == pytest.approx(np.linalg.cond(m), rel=1e-10)
    stable = np.linalg.norm(m, "fro") ** 2 / np.linalg.norm(m, 2) ** 2
    assert StableRank().compute(group(m)) == pytest.approx(stable, rel=1e-12)


def test_results_are_python_floats():
    m = np.random.default_rng(0).standard_normal((6, 6))
    for metric_class in (SpectralNorm, ConditionNumber, StableRank):
        assert type(metric_class().compute(group(m))) is float


def test_a_keras_dense_kernel_in_out_is_the_transposed_matrix():
    m = np.random.default_rng(1).standard_normal((5, 9))  # (out, in)
    keras = group(m.T, outputs_last_layout(2))
    assert SpectralNorm().compute(keras) == pytest.approx(np.linalg.norm(m, 2), rel=1e-12)
    assert ConditionNumber().compute(keras) == pytest.approx(np.linalg.cond(m), rel=1e-10)


def test_float32_weights_are_decomposed_in_float64():
    m = np.random.default_rng(2).standard_normal((40, 30)).astype(np.float32)
    expected = np.linalg.norm(m.astype(np.float64), 2)
    assert SpectralNorm().compute(group(m, dtype=np.float32)) == pytest.approx(expected, rel=1e-13)


def test_a_singular_matrix_has_infinite_condition_number():
    m = np.outer([1.0, 2.0, 3.0], [4.0, 5.0])  # rank 1
    m[:, 1] = 0.0
    assert ConditionNumber().compute(group(m)) == math.inf


def test_a_zero_matrix():
    zero = group(np.zeros((4, 3)))
    assert SpectralNorm().compute(zero) == 0.0
    assert ConditionNumber().compute(zero) == math.inf
    assert StableRank().compute(zero) == 0.0
    assert SpectralAlpha().compute(zero) is None


def test_stable_rank_of_an_orthogonal_matrix_is_its_size_and_of_rank_one_is_one():
    q = random_orthogonal(np.random.default_rng(3), 6)
    assert StableRank().compute(group(q)) == pytest.approx(6.0, rel=1e-12)
    assert StableRank().compute(group(np.outer([1.0, 2.0], [3.0, 4.0, 5.0]))) == pytest.approx(1.0)


# --- which parameters --------------------------------------------------------------------------


@pytest.mark.parametrize("metric_class", SPECTRAL)
def test_a_bias_or_a_vector_weight_gives_none(metric_class):
    assert metric_class().compute(group(np.ones(4), Layout(out_axis=0), param="bias")) is None
    assert metric_class().compute(group(np.ones(4), Layout(out_axis=0), param="weight")) is None
    assert metric_class().compute(group(np.ones((4, 4)), param="bias")) is None


@pytest.mark.parametrize("metric_class", SPECTRAL)
def test_an_empty_matrix_gives_none(metric_class):
    assert metric_class().compute(group(np.zeros((0, 3)))) is None


def test_non_finite_weights_give_nan_and_no_alpha():
    m = np.random.default_rng(4).standard_normal((8, 8))
    m[2, 3] = np.nan
    assert math.isnan(SpectralNorm().compute(group(m)))
    assert math.isnan(StableRank().compute(group(m)))
    assert SpectralAlpha().compute(group(m)) is None


# --- conv kernels ------------------------------------------------------------------------------


def test_torch_and_keras_conv_kernels_give_the_values_of_the_flattened_matrix():
    rng = np.random.default_rng(5)
    torch_kernel = rng.standard_normal((12, 3, 3, 3))  # (out, in, kh, kw)
    keras_kernel = torch_kernel.transpose(2, 3, 1, 0)  # (kh, kw, in, out)
    matrix = torch_kernel.reshape(12, -1)  # (out, in*kh*kw)
    torch_group = group(torch_kernel, Layout(out_axis=0, in_axis=1))
    keras_group = group(keras_kernel, outputs_last_layout(4))
    np.testing.assert_array_equal(keras_group.array("weights").as_matrix(), matrix)
    for metric_class in SPECTRAL:
        metric = metric_class(every=1)
        from_torch = metric.compute(torch_group)
        from_keras = metric.compute(keras_group)
        direct = metric.compute(group(matrix))
        assert from_torch is not None
        assert from_torch == pytest.approx(direct, rel=1e-12), metric.name
        assert from_keras == pytest.approx(direct, rel=1e-12), metric.name
    assert SpectralNorm().compute(torch_group) == pytest.approx(np.linalg.norm(matrix, 2))


# --- the shared decomposition ------------------------------------------------------------------


def test_the_metrics_of_one_array_share_one_decomposition(monkeypatch):
    calls = []
    svd = np.linalg.svd
    monkeypatch.setattr(spectral.np.linalg, "svd", lambda *a, **k: calls.append(1) or svd(*a, **k))
    shared = group(np.random.default_rng(6).standard_normal((10, 10)))
    for metric_class in SPECTRAL:
        metric_class().compute(shared)
    assert len(calls) == 1


def test_the_shared_decomposition_never_answers_for_other_weights():
    rng = np.random.default_rng(7)
    matrices = [rng.standard_normal((6, 4)) * scale for scale in (1.0, 2.0, 3.0)]
    for _ in range(2):
        for m in matrices:
            assert SpectralNorm().compute(group(m)) == pytest.approx(np.linalg.norm(m, 2))
            gc.collect()  # a freed array's id may be reused by the next one
    # the same numpy object under another layout is another matrix
    m = matrices[0]
    values = np.array(m)

    def wrap(layout: Layout) -> EventGroup:
        array = Array(values, np.asarray, shape=values.shape, dtype="float64", layout=layout)
        return EventGroup({"weights": Event("weights", 0, 0, FC, "weight", array=array)},
                          step=0, epoch=0, layer=FC, param="weight")

    torch_like, keras_like = wrap(TORCH_LAYOUT), wrap(outputs_last_layout(2))
    assert torch_like.array("weights").numpy() is keras_like.array("weights").numpy()
    assert ConditionNumber().compute(torch_like) == pytest.approx(np.linalg.cond(m))
    assert StableRank().compute(keras_like) == pytest.approx(StableRank().compute(group(m.T)))
    wide = np.array(m.T)
    assert singular_values(wrap(TORCH_LAYOUT)).shape == (4,)
    assert SpectralNorm().compute(group(wide)) == pytest.approx(np.linalg.norm(wide, 2))


def test_shared_singular_values_are_read_only():
    sigma = singular_values(group(np.eye(3)))
    assert not sigma.flags.writeable


# --- spectral alpha ----------------------------------------------------------------------------


def test_alpha_of_a_matrix_whose_spectrum_is_a_known_power_law():
    # The estimate's spread at n = 1000 is about 0.07 (40 seeds: mean 2.52, std 0.068).
    rng = np.random.default_rng(0)
    eigenvalues = pareto(rng, 1000, alpha=2.5, xmin=1.0)
    w = with_eigenvalues(rng, eigenvalues)
    np.testing.assert_allclose(np.sort(np.linalg.svd(w, compute_uv=False) ** 2),
                               np.sort(eigenvalues), rtol=1e-9)
    alpha = SpectralAlpha().compute(group(w))
    assert alpha == pytest.approx(2.5, abs=0.15)


def test_alpha_estimates_of_many_power_law_samples_centre_on_the_true_exponent():
    fits = [power_law_fit(pareto(np.random.default_rng(seed), 1000, alpha=2.5))[0]
            for seed in range(20)]
    assert np.median(fits) == pytest.approx(2.5, abs=0.05)
    assert max(abs(f - 2.5) for f in fits) < 0.3


@pytest.mark.parametrize("alpha", [2.0, 3.5, 5.0])
def test_alpha_of_power_law_samples_under_a_bulk_finds_the_tail(alpha):
    rng = np.random.default_rng(int(alpha * 10))
    tail = pareto(rng, 800, alpha=alpha, xmin=1.0)
    bulk = rng.uniform(0.01, 1.0, 400)  # no power law below xmin = 1
    fitted, distance, xmin = power_law_fit(np.concatenate([bulk, tail]))
    assert fitted == pytest.approx(alpha, abs=0.15 * (alpha - 1))
    assert 0.7 <= xmin <= 2.0
    assert distance < 0.05


def test_alpha_does_not_depend_on_the_scale_of_the_weights():
    rng = np.random.default_rng(9)
    w = with_eigenvalues(rng, pareto(rng, 60, alpha=3.0))
    assert SpectralAlpha().compute(group(w * 1e-3)) == pytest.approx(
        SpectralAlpha().compute(group(w)), rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_vectorized_scan_equals_the_direct_loop(seed, monkeypatch):
    rng = np.random.default_rng(100 + seed)
    values = rng.lognormal(0.0, 1.5, 30 + 7 * seed)
    if seed % 2:
        values[:8] = values[8]  # ties, also at the candidate xmin
        values[-3:] = values[-4]
    if seed >= 4:
        monkeypatch.setattr(spectral, "_SCAN_BLOCK", 37)  # many blocks of the table
    expected = direct_fit(values)
    got = power_law_fit(values)
    assert got == pytest.approx(expected, rel=1e-10)


def test_direct_loop_and_scan_agree_on_the_metric_of_a_matrix():
    rng = np.random.default_rng(11)
    w = rng.standard_normal((20, 45))
    eigenvalues = np.linalg.svd(w, compute_uv=False) ** 2
    assert SpectralAlpha().compute(group(w)) == pytest.approx(direct_fit(eigenvalues)[0], rel=1e-10)


def test_alpha_needs_five_values_in_the_tail():
    assert power_law_fit([1.0, 2.0, 4.0, 8.0]) is None
    assert power_law_fit([1.0, 2.0, 4.0, 8.0, 16.0]) is not None
    assert power_law_fit([3.0] * 10) is None  # one value repeated fits no power law
    # a conv kernel of 4 output channels has 4 eigenvalues
    kernel = np.random.default_rng(12).standard_normal((4, 2, 3, 3))
    assert SpectralAlpha().compute(group(kernel)) is None


def test_alpha_ignores_the_zero_eigenvalues_of_a_rank_deficient_matrix():
    rng = np.random.default_rng(13)
    eigenvalues = pareto(rng, 30, alpha=3.0)
    full = with_eigenvalues(rng, eigenvalues)
    padded = np.zeros((40, 40))
    padded[:30, :30] = full  # 10 zero singular values, numerically ~1e-16
    expected = power_law_fit(eigenvalues)[0]
    assert SpectralAlpha().compute(group(padded)) == pytest.approx(expected, rel=1e-8)
    low_rank = np.zeros((10, 10))
    low_rank[:4, :4] = rng.standard_normal((4, 4))
    assert SpectralAlpha().compute(group(low_rank)) is None
