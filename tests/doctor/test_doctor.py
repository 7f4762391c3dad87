"""The doctor without a framework: findings, histories (stored and live alike), rules on
made-up series, a failing rule isolated, and a rule from a real plugin distribution."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import ikkuna
from ikkuna.core.events import Record
from ikkuna.core.layers import LayerInfo
from ikkuna.core.plugins import PluginManager
from ikkuna.core.sink import RunInfo
from ikkuna.doctor import Finding, LiveHistory, StoredHistory, diagnose, rules
from ikkuna.doctor.history import LIVE_HEAD, LIVE_TAIL, metric_kinds
from ikkuna.sinks.store import StoreSink
from tests.plugins.distributions import make_distribution

LAYERS = [LayerInfo("first", "dense", "torch", {"weight": "weight", "bias": "bias"}),
          LayerInfo("second", "dense", "torch", {"weight": "weight", "bias": "bias"})]

RULE_PLUGIN = '''
import ikkuna


def always(history):
    yield ikkuna.Finding("plugin_rule", "info", f"{len(history.metrics())} metrics",
                         "nothing to do", steps=(0, history.last_step))


@ikkuna.hookimpl
def ikkuna_findings():
    return [always]
'''


def records(series: dict[tuple[str, str | None, str | None], list[float]]) -> list[Record]:
    """Records of made-up series, one value per step from step 0."""
    return [Record("made-up", step, 0, metric, layer, param, float(value))
            for (metric, layer, param), values in series.items()
            for step, value in enumerate(values)]


def live(series) -> LiveHistory:
    history = LiveHistory("made-up", lambda: LAYERS, metric_kinds(PluginManager(load_entry_points=False)))
    history.add(records(series))
    history.refresh("made-up")
    return history


def stored(series, path) -> StoredHistory:
    sink = StoreSink(path=path)
    sink.open(RunInfo("made-up", "torch", tuple(LAYERS)))
    sink.write(records(series))
    sink.close()
    return StoredHistory(ikkuna.open_run("made-up", store=path),
                         metric_kinds(PluginManager(load_entry_points=False)))


def healthy_ratios(steps: int = 60) -> dict:
    return {("update_to_weight_ratio", layer.name, "weight"): [1e-3] * steps for layer in LAYERS}


# -- findings ------------------------------------------------------------------------------------


def test_a_finding_refuses_an_unknown_severity_naming_the_known_ones():
    with pytest.raises(ValueError, match="error, warning, info.*'fatal'"):
        Finding("rule", "fatal", "message", "hint")


def test_findings_sort_most_severe_first_then_earliest_and_key_on_rule_and_layers():
    late_error = Finding("b", "error", "m", "h", layers=["x"], steps=(9, 9))
    early_warning = Finding("a", "warning", "m", "h", steps=(0, 1))
    early_error = Finding("c", "error", "m", "h", steps=(2, 3), evidence={"v": 1})
    ordered = sorted([early_warning, late_error, early_error], key=lambda f: f.order)
    assert ordered == [early_error, late_error, early_warning]
    assert late_error.key == ("b", ("x",))
    assert early_error.evidence["v"] == 1.0
    with pytest.raises(TypeError):
        early_error.evidence["v"] = 2.0  # read-only


def test_a_finding_describes_severity_rule_layers_steps_message_evidence_and_hint():
    finding = Finding("dead_units", "warning", "layer 'a' is dead", "use LeakyReLU",
                      layers=("a",), steps=(3, 7), evidence={"zero_fraction a": 1.0})
    assert finding.describe().splitlines() == [
        "warning: dead_units in a (steps 3-7): layer 'a' is dead",
        "  evidence: zero_fraction a = 1",
        "  hint: use LeakyReLU",
    ]


def test_training_problem_carries_its_finding_and_survives_pickling():
    import pickle

    finding = Finding("nan_or_inf", "error", "nan", "look", steps=(1, 1))
    problem = pickle.loads(pickle.dumps(ikkuna.TrainingProblem(finding)))
    assert problem.finding == finding and isinstance(problem, ikkuna.IkkunaError)


# -- histories -----------------------------------------------------------------------------------


def test_stored_and_live_histories_give_the_same_series_keys_and_findings(tmp_path):
    series = healthy_ratios()
    series[("update_to_weight_ratio", "second", "weight")] = [0.5] * 60
    series[("update_to_weight_ratio", "first", "bias")] = [0.9] * 60  # biases do not count
    series[("loss", None, None)] = [2.0] * 30 + [math.nan] * 30
    from_store, in_memory = stored(series, tmp_path), live(series)
    for history in (from_store, in_memory):
        assert history.keys("update_to_weight_ratio") == [
            ("first", "weight"), ("first", "bias"), ("second", "weight")]
        assert [layer.name for layer in history.layers()] == ["first", "second"]
        assert history.last_step == 59
        assert history.kinds("update_to_weight_ratio") == ("weights", "updates")
    np.testing.assert_array_equal(from_store.series("loss").values, in_memory.series("loss").values)
    found = diagnose(from_store)
    assert [f.describe() for f in found] == [f.describe() for f in diagnose(in_memory)]
    assert [(f.rule, f.layers) for f in found] == [
        ("nan_or_inf", ()), ("loss_diverging", ()), ("learning_rate_too_high", ("second",))]
    assert found[0].steps == (30, 59)


def test_the_live_history_keeps_a_head_a_tail_and_the_first_non_finite_value():
    values = [1.0] * 100 + [math.inf] + [1.0] * 1000
    history = live({("loss", None, None): values})
    steps = history.series("loss").steps
    assert len(steps) == LIVE_HEAD + LIVE_TAIL + 1
    assert list(steps[:LIVE_HEAD]) == list(range(LIVE_HEAD))
    assert steps[LIVE_HEAD] == 100 and history.series("loss").values[LIVE_HEAD] == math.inf
    assert steps[-1] == len(values) - 1


# -- rules on made-up series ---------------------------------------------------------------------


def test_learning_rate_rules_use_the_median_so_spikes_do_not_count():
    series = healthy_ratios()
    series[("update_to_weight_ratio", "first", "weight")] = [1e-3, 1e-3, 5.0] * 20  # every third step
    assert diagnose(live(series)) == []
    series[("update_to_weight_ratio", "first", "weight")] = [1e-3] * 20 + [5.0] * 40
    (finding,) = diagnose(live(series))
    # the first 10-step window whose median is high
    assert (finding.rule, finding.layers, finding.steps) == ("learning_rate_too_high", ("first",), (15, 24))
    low = {key: [1e-7] * 60 for key in healthy_ratios()}
    (finding,) = diagnose(live(low))
    assert (finding.rule, finding.layers) == ("learning_rate_too_low", ("first", "second"))


def test_a_loss_that_falls_then_wobbles_is_neither_diverging_nor_flat():
    rng = np.random.default_rng(0)
    loss = list(np.exp(-np.arange(300) / 50) * 2 + 0.01 * (1 + rng.random(300)))
    assert diagnose(live({("loss", None, None): loss})) == []
    flat = list(2.3 + 0.01 * rng.standard_normal(150))
    assert [f.rule for f in diagnose(live({("loss", None, None): flat}))] == ["loss_flat"]
    rising = [2.3] * 10 + [2.3 * 1.1 ** i for i in range(40)]
    assert [f.rule for f in diagnose(live({("loss", None, None): rising}))] == ["loss_diverging"]


def test_nan_origin_prefers_activations_in_model_order_over_gradients_of_the_same_step():
    series = {
        ("gradient_norm", "first", "weight"): [1.0, 1.0, math.nan],
        ("activation_mean", "second", None): [0.0, 0.0, math.nan],
        ("activation_mean", "first", None): [0.0, 0.0, 0.0],
        ("update_to_weight_ratio", "first", "weight"): [math.inf, 1e-3, 1e-3],  # zero weight
    }
    (finding, *_) = diagnose(live(series))
    assert (finding.rule, finding.layers, finding.steps[0]) == ("nan_or_inf", ("second",), 2)


def test_every_rule_skips_quietly_when_its_series_are_absent():
    empty = live({})
    for rule in rules.RULES:
        assert list(rule(empty)) == []


# -- plugins -------------------------------------------------------------------------------------


class BrokenRule:
    @staticmethod
    @ikkuna.hookimpl
    def ikkuna_findings():
        def broken(history):
            raise ZeroDivisionError("oops")

        return [broken]


def test_a_rule_that_raises_is_an_info_finding_and_one_warning_and_the_rest_run():
    manager = PluginManager(load_entry_points=False)
    manager.register(BrokenRule(), name="broken-plugin")
    series = healthy_ratios()
    series[("update_to_weight_ratio", "first", "weight")] = [0.5] * 60
    with pytest.warns(RuntimeWarning, match="rule 'broken' .*'broken-plugin'.* ZeroDivisionError: oops"):
        found = diagnose(live(series), plugins=manager)
    assert [(f.rule, f.severity) for f in found] == [
        ("learning_rate_too_high", "warning"), ("broken", "info")]


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield root
    sys.modules.pop("ikkuna_test_rule", None)


def test_a_rule_from_an_installed_plugin_shows_up_in_diagnose(plugin_path, tmp_path):
    make_distribution(plugin_path, "ikkuna-test-rule", "ikkuna_test_rule", RULE_PLUGIN)
    manager = PluginManager()
    assert [(r.name, r.plugin) for r in manager.findings() if r.plugin == "ikkuna_test_rule"] == [
        ("always", "ikkuna_test_rule")]
    history = stored({("loss", None, None): [1.0] * 5}, tmp_path / "store")
    (finding,) = diagnose(history, plugins=manager)
    assert (finding.rule, finding.message, finding.steps) == ("plugin_rule", "1 metrics", (0, 4))
