"""The plugin API version: compatible plugins load, incompatible ones are refused clearly."""

from __future__ import annotations

import types

import pytest

import ikkuna
from ikkuna.core import hookspecs, plugin_api
from ikkuna.core.plugins import PluginManager
from tests.plugins.distributions import GOOD_PLUGIN, make_distribution


def declaring(version: str | None) -> str:
    return GOOD_PLUGIN if version is None else f"IKKUNA_PLUGIN_API = {version!r}\n{GOOD_PLUGIN}"


def test_the_core_exposes_its_plugin_api_version():
    assert ikkuna.PLUGIN_API_VERSION == hookspecs.PLUGIN_API_VERSION
    assert plugin_api.parse_api_version(ikkuna.PLUGIN_API_VERSION)[0] >= 1


@pytest.mark.parametrize("declared", [None, ikkuna.PLUGIN_API_VERSION])
def test_plugin_declaring_this_api_or_none_loads(plugin_path, declared):
    make_distribution(plugin_path, "ikkuna-test-api-ok", "ikkuna_test_api_ok", declaring(declared))
    manager = PluginManager()
    assert manager.metrics()["parameter_count"].plugin == "ikkuna_test_api_ok"
    assert manager.load_failures == {}


@pytest.mark.parametrize(("declared", "advice"), [("2.0", "upgrade ikkuna"),
                                                  ("0.9", "install a release of the plugin")])
def test_plugin_for_another_major_version_is_refused_with_one_warning(plugin_path, declared,
                                                                      advice):
    make_distribution(plugin_path, "ikkuna-test-api-new", "ikkuna_test_api_new", declaring(declared))
    with pytest.warns(RuntimeWarning) as caught:
        manager = PluginManager()
    messages = [str(w.message) for w in caught if "ikkuna_test_api_new" in str(w.message)]
    assert len(messages) == 1
    message = messages[0]
    assert f"written for plugin API {declared}" in message
    assert f"provides plugin API {ikkuna.PLUGIN_API_VERSION}" in message
    assert "'ikkuna-test-api-new'" in message and advice in message
    assert "parameter_count" not in manager.metrics()  # refused before any hook ran
    assert "weight_norm" in manager.metrics()
    assert manager.load_failures["ikkuna_test_api_new"] == message


def test_newer_minor_version_is_refused_and_older_accepted(monkeypatch):
    monkeypatch.setattr(plugin_api, "PLUGIN_API_VERSION", "1.2")
    assert plugin_api.accepted_range() == "1.0 to 1.2"
    for accepted in ("1.0", "1.2"):
        assert plugin_api.api_refusal(types.SimpleNamespace(IKKUNA_PLUGIN_API=accepted), "p") is None
    refusal = plugin_api.api_refusal(types.SimpleNamespace(IKKUNA_PLUGIN_API="1.3"), "p")
    assert refusal is not None and "1.0 to 1.2" in refusal and "upgrade ikkuna" in refusal


@pytest.mark.parametrize("declared", ["1", "v1.0", "1.0.0", 1.0])
def test_malformed_version_is_refused_naming_the_accepted_form(declared):
    refusal = plugin_api.api_refusal(types.SimpleNamespace(IKKUNA_PLUGIN_API=declared), "p")
    assert refusal is not None
    assert "'MAJOR.MINOR'" in refusal and repr(declared) in refusal


def test_registering_an_incompatible_plugin_by_hand_raises():
    manager = PluginManager(load_entry_points=False)
    plugin = types.ModuleType("handmade")
    plugin.IKKUNA_PLUGIN_API = "7.0"
    with pytest.raises(ikkuna.IncompatiblePluginError, match="'handmade'.*plugin API 7.0"):
        manager.register(plugin)
    assert "handmade" not in manager.plugin_names()


def test_ikkuna_list_names_the_plugin_api(capsys):
    from ikkuna.cli import main

    assert main(["list"]) == 0
    assert f"Plugin API {ikkuna.PLUGIN_API_VERSION}" in capsys.readouterr().out
