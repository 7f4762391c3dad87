"""Plugins: built-ins, entry-point discovery, failures that only warn, conflicts, hookspecs."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import ikkuna
from ikkuna.core import hookspecs
from ikkuna.core.plugins import BUILTIN_PLUGINS, PluginManager
from tests.plugins.distributions import (
    BROKEN_PLUGIN,
    DUPLICATE_PLUGIN,
    GOOD_PLUGIN,
    MISSPELLED_HOOK_PLUGIN,
    make_distribution,
)


def test_every_hookspec_has_a_docstring_and_is_implemented_by_a_builtin_or_documented():
    specs = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("ikkuna_")]
    assert sorted(specs) == ["ikkuna_adapters", "ikkuna_findings", "ikkuna_metrics", "ikkuna_sinks"]
    for name in specs:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"{name} has no docstring"


def test_builtins_are_registered_as_plugins_and_provide_metrics_sinks_adapters():
    manager = PluginManager(load_entry_points=False)
    assert set(BUILTIN_PLUGINS) <= set(manager.plugin_names())
    metrics = manager.metrics()
    assert set(ikkuna.DEFAULT_METRICS) <= set(metrics)
    assert metrics["weight_norm"].plugin == "ikkuna.metrics"
    assert manager.sinks()["store"].plugin == "ikkuna.sinks"
    assert manager.adapters()["torch"].plugin == "ikkuna.adapters"


def test_plugin_in_its_own_distribution_is_discovered_from_its_entry_point(plugin_path):
    make_distribution(plugin_path, "ikkuna-test-good", "ikkuna_test_good", GOOD_PLUGIN)
    manager = PluginManager()
    provided = manager.metrics()["parameter_count"]
    assert provided.plugin == "ikkuna_test_good"
    assert manager.load_entry_points() == 0  # loading twice loads nothing new


def test_ikkuna_list_shows_the_plugin_metric_and_where_it_came_from(plugin_path):
    make_distribution(plugin_path, "ikkuna-test-listed", "ikkuna_test_listed", GOOD_PLUGIN)
    result = subprocess.run(
        [sys.executable, "-m", "ikkuna.cli", "list"], capture_output=True, text=True, check=True,
        env={**_env(), "PYTHONPATH": str(plugin_path)},
    )
    line = next(line for line in result.stdout.splitlines() if "parameter_count" in line)
    assert "ikkuna_test_listed" in line
    assert "weight_norm" in result.stdout and "ikkuna.metrics" in result.stdout


def test_plugin_that_fails_to_import_warns_naming_it_and_the_rest_load(plugin_path):
    make_distribution(plugin_path, "ikkuna-test-broken", "ikkuna_test_broken", BROKEN_PLUGIN)
    make_distribution(plugin_path, "ikkuna-test-fine", "ikkuna_test_fine", GOOD_PLUGIN)
    with pytest.warns(RuntimeWarning, match="ikkuna_test_broken.*failed to import") as caught:
        manager = PluginManager()
    assert len([w for w in caught if "ikkuna_test_broken" in str(w.message)]) == 1
    assert "parameter_count" in manager.metrics()
    assert "weight_norm" in manager.metrics()
    assert "ikkuna_test_broken" in manager.load_failures


def test_two_plugins_providing_one_metric_name_is_an_error_naming_both(plugin_path):
    make_distribution(plugin_path, "ikkuna-test-dup", "ikkuna_test_dup", DUPLICATE_PLUGIN)
    manager = PluginManager()
    with pytest.raises(ikkuna.PluginConflictError, match="weight_norm") as error:
        manager.metrics()
    assert "'ikkuna.metrics'" in str(error.value) and "'ikkuna_test_dup'" in str(error.value)
    assert "IKKUNA_DISABLED_PLUGINS=ikkuna_test_dup" in str(error.value)


def test_disabled_plugins_variable_blocks_a_plugin(plugin_path, monkeypatch):
    make_distribution(plugin_path, "ikkuna-test-dup2", "ikkuna_test_dup2", DUPLICATE_PLUGIN)
    monkeypatch.setenv("IKKUNA_DISABLED_PLUGINS", "ikkuna_test_dup2")
    manager = PluginManager()
    assert manager.metrics()["weight_norm"].plugin == "ikkuna.metrics"


def test_misspelled_hook_in_a_plugin_is_an_error_not_silence(plugin_path):
    make_distribution(plugin_path, "ikkuna-test-typo", "ikkuna_test_typo", MISSPELLED_HOOK_PLUGIN)
    with pytest.raises(Exception, match="ikkuna_metric"):
        PluginManager()


def test_plugin_metric_receives_events_from_a_torch_training(plugin_path, torch):
    make_distribution(plugin_path, "ikkuna-test-live", "ikkuna_test_live", GOOD_PLUGIN)
    manager = PluginManager()
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with ikkuna.attach(model, optimizer=optimizer, metrics=["parameter_count"],
                       plugins=manager) as monitor:
        for _ in range(2):
            model(torch.ones(4, 3)).sum().backward()
            optimizer.step()
    received = sys.modules["ikkuna_test_live"].RECEIVED
    assert sorted(received) == [("0", "bias", 0), ("0", "bias", 1), ("0", "weight", 0), ("0", "weight", 1)]
    with ikkuna.open_run(monitor.run) as run:
        np.testing.assert_array_equal(run.series("parameter_count", "0", "weight").values, [6.0, 6.0])


def test_unknown_metric_name_lists_the_known_ones_including_plugins(plugin_path, torch):
    make_distribution(plugin_path, "ikkuna-test-known", "ikkuna_test_known", GOOD_PLUGIN)
    manager = PluginManager()
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ikkuna.UnknownMetricError, match="no_such_metric") as error:
        ikkuna.attach(model, metrics=["no_such_metric"], plugins=manager)
    assert "parameter_count" in str(error.value) and "weight_norm" in str(error.value)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
