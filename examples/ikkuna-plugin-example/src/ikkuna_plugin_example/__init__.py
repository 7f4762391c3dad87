"""An example ikkuna plugin: the ``effective_rank`` metric and the ``markdown_summary`` sink.

ikkuna finds this module through the entry point ``example`` of group ``ikkuna`` (see
``pyproject.toml``); the hooks below tell it what the plugin provides.
"""

from __future__ import annotations

import ikkuna

from ikkuna_plugin_example.effective_rank import EffectiveRank, effective_rank
from ikkuna_plugin_example.summary import MarkdownSummarySink

#: The plugin API version this plugin was written for (see ikkuna.core.hookspecs).
IKKUNA_PLUGIN_API = "1.1"


@ikkuna.hookimpl
def ikkuna_metrics() -> list[type[ikkuna.Metric]]:
    return [EffectiveRank]


@ikkuna.hookimpl
def ikkuna_sinks() -> list[type[ikkuna.Sink]]:
    return [MarkdownSummarySink]


__all__ = ["IKKUNA_PLUGIN_API", "EffectiveRank", "MarkdownSummarySink", "effective_rank",
           "ikkuna_metrics", "ikkuna_sinks"]
