"""Fixtures of the example plugin's tests."""

from __future__ import annotations

import pytest
from ikkuna.testing import installed_frameworks


@pytest.fixture(autouse=True)
def private_store(tmp_path, monkeypatch):
    """Runs go to a store of the test's own, never ./ikkuna-runs."""
    store = tmp_path / "ikkuna-runs"
    monkeypatch.setenv("IKKUNA_STORE", str(store))
    return store


@pytest.fixture
def frameworks() -> tuple[str, ...]:
    """The frameworks installed here whose parity networks can run; skips if there is none."""
    found = installed_frameworks()
    if not found:
        pytest.skip("no framework (torch, keras or jax) is installed")
    return found
