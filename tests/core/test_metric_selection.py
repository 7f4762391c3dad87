"""Choosing metrics: presets, cost classes, adapter capabilities, run-level summaries."""

from __future__ import annotations

import numpy as np
import pytest

import ikkuna
from ikkuna.core.arrays import NO_LAYOUT, Array
from ikkuna.core.attach import DEFAULT_METRICS, resolve_metrics
from ikkuna.core.bus import Bus, MetricSlot
from ikkuna.core.events import Event
from ikkuna.core.layers import LayerInfo
from ikkuna.core.metric import Metric
from ikkuna.core.plugins import PluginManager
from ikkuna.metrics import BUILTIN_METRICS
from tests.core.bare_adapter import BareAdapter, slot_names

FC = LayerInfo("fc", "dense", "numpy", {"weight": "weight"})
OUT = LayerInfo("out", "dense", "numpy", {"weight": "weight"})


class _WithProbe(BareAdapter):
    framework = "probing"
    capabilities = frozenset({"probe"})


class NeedsProbe(Metric):
    """Needs a capability few adapters have."""

    name = "needs_probe"
    needs = ("weights",)
    requires = frozenset({"probe"})


class SumOfSquares(Metric):
    """Sums squares over every parameter of a step and reports once, for the run."""

    name = "sum_of_squares"
    needs = ("weights",)

    def __init__(self, **options):
        super().__init__(**options)
        self.total = 0.0

    def compute(self, group):
        self.total += float(np.sum(group["weights"] ** 2))

    def finish_step(self, step):
        total, self.total = self.total, 0.0
        return total


def test_default_preset_is_the_default_metric_set():
    assert slot_names(resolve_metrics("default", PluginManager(load_entry_points=False))) == list(DEFAULT_METRICS)


def test_full_preset_has_every_builtin_metric_the_adapter_supports():
    plugins = PluginManager(load_entry_points=False)
    names = slot_names(resolve_metrics("full", plugins, BareAdapter))
    expected = [m.name for m in BUILTIN_METRICS if not m.requires]
    assert sorted(names) == sorted(expected)


def test_presets_and_names_combine_without_repeats():
    plugins = PluginManager(load_entry_points=False)
    names = slot_names(resolve_metrics(["weight_norm", "default"], plugins))
    assert names[0] == "weight_norm" and sorted(names) == sorted(DEFAULT_METRICS)


def test_a_metric_whose_capability_the_adapter_lacks_is_refused_naming_who_has_it():
    plugins = PluginManager(load_entry_points=False)
    with pytest.raises(ikkuna.UnsupportedMetricError, match="requires probe.*bare adapter"):
        resolve_metrics([NeedsProbe()], plugins, BareAdapter)
    assert slot_names(resolve_metrics([NeedsProbe()], plugins, _WithProbe)) == ["needs_probe"]


def test_unknown_cost_class_is_refused_at_registration():
    class Pricey(Metric):
        name = "pricey"
        needs = ("weights",)
        cost = "priceless"

    with pytest.raises(ValueError, match="cheap, moderate, expensive, probe"):
        Pricey.validate()


def test_unknown_name_mentions_the_presets():
    with pytest.raises(ikkuna.UnknownMetricError, match="presets: default, full"):
        resolve_metrics(["fulll"], PluginManager(load_entry_points=False))


def _weights(layer, values, step):
    return Event("weights", step, 0, layer, "weight", array=Array.from_numpy(np.asarray(values), NO_LAYOUT))


def test_finish_step_records_one_run_level_value_per_scheduled_step():
    metric = SumOfSquares(every=2)
    bus = Bus([MetricSlot(metric)], run="r", on_problem=lambda p: None)
    found = []
    for step in range(4):
        bus.open_step(step, 0)
        bus.publish(_weights(FC, [1.0, 2.0], step))
        bus.publish(_weights(OUT, [3.0], step))
        found += bus.close_step()
    assert [(r.step, r.layer, r.param, r.metric, r.value) for r in found] == [
        (0, None, None, "sum_of_squares", 14.0),
        (2, None, None, "sum_of_squares", 14.0),
    ]


def test_finish_step_that_raises_disables_the_metric_once():
    class Broken(SumOfSquares):
        name = "broken_summary"

        def finish_step(self, step):
            raise RuntimeError("no summary")

    problems = []
    bus = Bus([MetricSlot(Broken())], run="r", on_problem=problems.append)
    with pytest.warns(RuntimeWarning, match="broken_summary.*no summary"):
        for step in range(3):
            bus.open_step(step, 0)
            bus.publish(_weights(FC, [1.0], step))
            assert bus.close_step() == []
    assert len(problems) == 1 and problems[0].source == "metric:broken_summary"
