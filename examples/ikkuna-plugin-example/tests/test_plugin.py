"""The plugin as ikkuna sees it: its API version and what its hooks provide."""

from __future__ import annotations

import ikkuna

import ikkuna_plugin_example
from ikkuna_plugin_example import EffectiveRank, MarkdownSummarySink


def test_the_plugin_declares_the_plugin_api_this_ikkuna_provides():
    assert ikkuna_plugin_example.IKKUNA_PLUGIN_API == ikkuna.PLUGIN_API_VERSION


def test_a_plugin_manager_finds_the_metric_and_the_sink_under_the_plugins_name():
    plugins = ikkuna.PluginManager(load_entry_points=False)
    plugins.register(ikkuna_plugin_example, name="example")
    metric = plugins.metrics()["effective_rank"]
    sink = plugins.sinks()["markdown_summary"]
    assert (metric.item, metric.plugin) == (EffectiveRank, "example")
    assert (sink.item, sink.plugin) == (MarkdownSummarySink, "example")
    EffectiveRank.validate()
    assert EffectiveRank.cost == "expensive"
