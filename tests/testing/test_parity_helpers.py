"""ikkuna.testing on real frameworks: the parity networks run a plugin author's metric."""

from __future__ import annotations

import pytest

from ikkuna.testing import check_parity, installed_frameworks, parity_results
from ikkuna.testing.parity import STEPS, styles, train
from tests.testing.test_synthetic_and_layouts import CanonicalRowZeroNorm, RowZeroNorm


@pytest.fixture
def every_framework(torch, keras, jax):
    """All three frameworks (skipped without them, failed under IKKUNA_REQUIRE_ALL=1)."""
    return ("torch", "keras", "jax")


def test_installed_frameworks_are_those_that_import(every_framework):
    assert installed_frameworks() == every_framework


def test_check_parity_runs_a_metric_on_every_framework_with_the_same_values(every_framework):
    found = check_parity(CanonicalRowZeroNorm, networks=("mlp",))
    assert set(found) == {(framework, "mlp") for framework in every_framework}
    torch_results = found[("torch", "mlp")]
    assert {key[3] for key in torch_results} == set(range(STEPS))
    assert {key[1] for key in torch_results} == {"dense1", "dense2", "dense3"}


def test_check_parity_takes_one_name_and_warns_that_one_framework_compares_nothing(torch):
    with pytest.warns(UserWarning, match="ran only torch: nothing was compared"):
        found = check_parity(CanonicalRowZeroNorm, frameworks="torch", networks="mlp")
    assert set(found) == {("torch", "mlp")}


def test_check_parity_catches_a_metric_that_ignores_layouts(every_framework):
    with pytest.raises(AssertionError, match="keras vs torch"):
        check_parity(RowZeroNorm, networks=("mlp",), frameworks=("torch", "keras"))


def test_parity_results_take_a_style_and_attach_options(every_framework):
    jitted = parity_results(CanonicalRowZeroNorm, "jax", "cnn", "jit", every=2)
    assert {key[3] for key in jitted} == {0, 2, 4}
    assert {key[1] for key in jitted} == {"conv1", "conv2", "dense"}


def test_unknown_framework_network_or_style_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="torch, keras, jax"):
        train("mxnet")
    with pytest.raises(ValueError, match="cnn, mlp"):
        train("torch", "resnet")
    with pytest.raises(ValueError, match="fit, eager, tf.function"):
        train("keras", "mlp", "graph")
    assert styles("jax") == ("jit", "eager")


def test_check_parity_without_frameworks_says_what_to_install(monkeypatch):
    monkeypatch.setattr("ikkuna.testing.checks.installed_frameworks", lambda: ())
    with pytest.raises(RuntimeError, match=r"pip install 'ikkuna\[torch\]'"):
        check_parity(CanonicalRowZeroNorm)
