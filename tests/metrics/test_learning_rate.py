"""learning_rate: the metric, the capability it requires, and the default preset around it."""

from __future__ import annotations

import pytest

import ikkuna
from ikkuna.adapters.jax import JaxAdapter, JaxPytreeAdapter
from ikkuna.adapters.keras import KerasAdapter
from ikkuna.adapters.torch import TorchAdapter
from ikkuna.core import kinds as K
from ikkuna.core.attach import DEFAULT_METRICS, resolve_metrics
from ikkuna.core.plugins import PluginManager
from ikkuna.metrics.optimizer import LearningRate
from tests.core.bare_adapter import BareAdapter, slot_names
from tests.metrics.events import group


class _WithLearningRate(BareAdapter):
    framework = "rated"
    capabilities = frozenset({"learning_rate"})


def test_learning_rate_records_the_value_of_the_steps_learning_rate_event():
    result = LearningRate().compute(group(layer=None, value_learning_rate=3e-4))
    assert result == 3e-4 and type(result) is float


def test_learning_rate_is_a_run_level_kind_with_a_capability():
    assert K.LEARNING_RATE in K.RUN_KINDS and LearningRate.scope() == "run"
    assert LearningRate.requires == frozenset({"learning_rate"})


@pytest.mark.parametrize("adapter, has_it", [
    (TorchAdapter, True), (KerasAdapter, True), (JaxAdapter, True), (JaxPytreeAdapter, False),
])
def test_adapters_that_read_the_learning_rate_declare_it(adapter, has_it):
    assert ("learning_rate" in adapter.capabilities) is has_it


def test_default_preset_leaves_out_metrics_the_adapter_cannot_run():
    plugins = PluginManager(load_entry_points=False)
    without = slot_names(resolve_metrics("default", plugins, BareAdapter))
    assert without == [name for name in DEFAULT_METRICS if name != "learning_rate"]
    assert slot_names(resolve_metrics("default", plugins, _WithLearningRate)) == list(DEFAULT_METRICS)


def test_learning_rate_named_for_an_adapter_without_the_capability_is_refused():
    plugins = PluginManager(load_entry_points=False)
    with pytest.raises(ikkuna.UnsupportedMetricError, match="requires learning_rate"):
        resolve_metrics(["learning_rate"], plugins, BareAdapter)


# --- monitor.log(learning_rate=...) --------------------------------------------------------------


def _train_linear(torch, metrics, rates):
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with ikkuna.attach(model, optimizer=optimizer, metrics=metrics) as monitor:
        for rate in rates:
            model(torch.ones(3, 2)).sum().backward()
            optimizer.step()
            optimizer.zero_grad()
            monitor.log(learning_rate=rate)
    return monitor


def test_a_logged_learning_rate_does_not_double_the_adapters(torch):
    with pytest.warns(RuntimeWarning, match=r"log\(learning_rate=\.\.\.\) ignored"):
        monitor = _train_linear(torch, ["learning_rate"], [0.7, 0.7])
    series = monitor.series("learning_rate")
    assert list(series.steps) == [0, 1] and list(series.values) == [0.1, 0.1]


def test_a_logged_learning_rate_is_a_user_scalar_while_the_metric_does_not_run(torch):
    monitor = _train_linear(torch, ["weight_norm"], [0.7, 0.5])
    assert list(monitor.series("learning_rate").values) == [0.7, 0.5]


def test_a_logged_learning_rate_feeds_the_metric_where_the_adapter_cannot_read_it(jax):
    import optax
    from flax import nnx

    model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    with pytest.warns(RuntimeWarning, match="inject_hyperparams"), \
            ikkuna.attach(model, optimizer=optimizer, metrics=["learning_rate"]) as monitor:
        for rate in (0.1, 0.05):
            grads = nnx.grad(lambda m: m(jax.numpy.ones((3, 2))).sum())(model)
            optimizer.update(model, grads)
            monitor.log(learning_rate=rate)
    series = monitor.series("learning_rate")
    assert list(series.steps) == [0, 1] and list(series.values) == [0.1, 0.05]
