"""Fixtures of the plugin tests."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """A directory on sys.path for plugin distributions; forgets their modules afterwards."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield root
    for name in set(sys.modules) - before:
        if name.startswith("ikkuna_test_"):
            del sys.modules[name]
