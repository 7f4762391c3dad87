"""Shared fixtures: framework availability (strict under IKKUNA_REQUIRE_ALL=1), a private store."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

#: Frameworks with an adapter; framework tests are parametrized over these.
FRAMEWORKS = ("torch", "keras", "jax")
REQUIRE_ALL_VARIABLE = "IKKUNA_REQUIRE_ALL"


REQUIRE_VARIABLE = "IKKUNA_REQUIRE"  # comma-separated modules one tox env must have


def require_framework(module_name: str) -> ModuleType:
    """Import a framework for a test; skip if missing, but fail where it is required.

    ``IKKUNA_REQUIRE_ALL=1`` (CI) requires every framework; ``IKKUNA_REQUIRE=tensorflow,keras``
    (a tox env) requires those.
    """
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        required = {name.strip() for name in os.environ.get(REQUIRE_VARIABLE, "").split(",")}
        if os.environ.get(REQUIRE_ALL_VARIABLE) == "1" or module_name in required:
            pytest.fail(f"{module_name} is required here but not importable: {error}")
        pytest.skip(f"{module_name} is not installed")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use a framework fixture ``framework`` (tox env core deselects them)."""
    for item in items:
        if any(name in FRAMEWORKS for name in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.framework)


@pytest.fixture
def torch() -> ModuleType:
    """The torch module, seeded; skips (or fails under IKKUNA_REQUIRE_ALL=1) without torch."""
    module = require_framework("torch")
    module.manual_seed(0)
    return module


@pytest.fixture
def keras() -> ModuleType:
    """Keras 3 on TensorFlow, seeded; skips (or fails under IKKUNA_REQUIRE_ALL=1) without it."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    require_framework("tensorflow")
    module = require_framework("keras")
    module.utils.set_random_seed(0)
    return module


@pytest.fixture
def jax() -> ModuleType:
    """JAX with Flax NNX and optax; skips (or fails under IKKUNA_REQUIRE_ALL=1) without them."""
    require_framework("flax")
    require_framework("optax")
    return require_framework("jax")


@pytest.fixture(autouse=True)
def private_store(tmp_path, monkeypatch):
    """Every test writes its runs to its own store directory, never ./ikkuna-runs."""
    store = tmp_path / "ikkuna-runs"
    monkeypatch.setenv("IKKUNA_STORE", str(store))
    return store
