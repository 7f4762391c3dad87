"""The torch adapter's life cycle: steps, schedules, eval passes, detach, errors, failures."""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest

import ikkuna
from ikkuna.core import kinds as K
from tests.adapters.recording import recorder, recorders, spy_on_emit
from tests.adapters.torch_models import (
    BATCH,
    image_batch,
    mlp,
    module_hook_counts,
    small_cnn,
    train_step,
    vector_batch,
)

NO_MODULE_HOOKS = {
    "_forward_hooks": 0, "_forward_pre_hooks": 0, "_backward_hooks": 0, "_backward_pre_hooks": 0,
}


def global_optimizer_hooks() -> tuple[int, int]:
    """Sizes of torch's global optimizer step hook dicts (pre, post)."""
    optimizer_module = importlib.import_module("torch.optim.optimizer")
    return (len(optimizer_module._global_optimizer_pre_hooks),
            len(optimizer_module._global_optimizer_post_hooks))


# -- steps -------------------------------------------------------------------------------------


def test_steps_count_the_steps_of_the_optimizer_given_to_attach(torch):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    other = mlp(torch)
    other_optimizer = torch.optim.SGD(other.parameters(), lr=0.1)
    seen = recorders(K.GRADIENTS, K.WEIGHTS, K.ACTIVATIONS)
    monitor = ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[])
    emitted = spy_on_emit(monitor)
    for step in range(3):
        train_step(torch, model, optimizer, *vector_batch(torch, seed=step))
        train_step(torch, other, other_optimizer, *vector_batch(torch, seed=10 + step))
    assert monitor.step == 2
    monitor.detach()
    markers = [(kind, step) for kind, step in emitted if kind in K.MARKER_KINDS]
    assert markers == [(kind, step) for step in range(3)
                       for kind in (K.STEP_STARTED, K.STEP_FINISHED)]
    for kind, metric in seen.items():
        assert metric.steps("0", "weight" if kind != K.ACTIVATIONS else None) == [0, 1, 2], kind


def test_without_optimizer_the_steps_of_optimizers_training_the_model_count(torch):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    other = mlp(torch)
    other_optimizer = torch.optim.SGD(other.parameters(), lr=0.1)
    seen = recorders(K.GRADIENTS, K.WEIGHTS)
    monitor = ikkuna.attach(model, metrics=list(seen.values()), sinks=[])
    for step in range(3):
        train_step(torch, model, optimizer, *vector_batch(torch, seed=step))
        train_step(torch, other, other_optimizer, *vector_batch(torch, seed=10 + step))
    assert monitor.step == 2
    monitor.detach()
    for kind, metric in seen.items():
        assert metric.steps("0", "weight") == [0, 1, 2], kind
        assert metric.steps("2", "bias") == [0, 1, 2], kind
    # what was recorded is this model's parameters, not the other model's
    np.testing.assert_array_equal(seen[K.WEIGHTS].at(2, "0", "weight").values,
                                  model[0].weight.detach().numpy())


def test_a_training_pass_after_the_step_starts_the_next_step(torch):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[], sinks=[]) as monitor:
        assert monitor.step == 0
        train_step(torch, model, optimizer, *vector_batch(torch, seed=0))
        assert monitor.step == 0  # values logged now still belong to step 0
        model(vector_batch(torch, seed=1)[0])
        assert monitor.step == 1


# -- eval passes -------------------------------------------------------------------------------


def test_eval_and_no_grad_passes_record_nothing_and_keep_the_step(torch):
    model = small_cnn(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = recorders(K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.INPUTS, K.OUTPUTS)
    monitor = ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[])
    emitted = spy_on_emit(monitor)
    evaluation_batch = image_batch(torch, seed=99, size=7)[0]
    for step in range(2):
        train_step(torch, model, optimizer, *image_batch(torch, seed=step))
        emitted.clear()
        model.eval()
        model(evaluation_batch)
        model.train()
        with torch.no_grad():
            model(evaluation_batch)
        assert emitted == []
        assert monitor.step == step
    monitor.detach()
    for kind, metric in seen.items():
        assert sorted({s.step for s in metric.seen}) == [0, 1], kind
        assert all(s.values.shape[0] == BATCH for s in metric.seen), kind
    assert seen[K.ACTIVATIONS].steps("encoder.0") == [0, 1]


# -- selection ---------------------------------------------------------------------------------


def test_every_2_records_only_even_steps(torch):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = recorders(K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.WEIGHTS, K.UPDATES, K.LOSS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[],
                       every=2) as monitor:
        for step in range(5):
            train_step(torch, model, optimizer, *vector_batch(torch, seed=step), monitor=monitor)
        assert monitor.step == 4
    assert seen[K.ACTIVATIONS].steps("0") == [0, 2, 4]
    assert seen[K.OUTPUT_GRADIENTS].steps("2") == [0, 2, 4]
    assert seen[K.WEIGHTS].steps("0", "weight") == [0, 2, 4]
    assert seen[K.UPDATES].steps("2", "bias") == [0, 2, 4]
    assert seen[K.LOSS].steps() == [0, 2, 4]


def test_a_metrics_own_every_narrows_its_steps(torch):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sparse, dense = recorder(K.WEIGHTS, every=3), recorder(K.GRADIENTS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[sparse, dense], sinks=[]):
        for step in range(5):
            train_step(torch, model, optimizer, *vector_batch(torch, seed=step))
    assert sparse.steps("0", "weight") == [0, 3]
    assert dense.steps("0", "weight") == [0, 1, 2, 3, 4]


def test_layers_glob_records_only_matching_layers(torch):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = recorders(K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.GRADIENTS, K.WEIGHTS, K.INPUTS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[],
                       layers="0*") as monitor:
        for step in range(2):
            train_step(torch, model, optimizer, *vector_batch(torch, seed=step))
        assert [layer.name for layer in monitor.layers] == ["0"]
    for kind in (K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.GRADIENTS, K.WEIGHTS):
        assert seen[kind].seen_layers() == {"0"}, kind
    assert {s.param for s in seen[K.WEIGHTS].seen} == {"weight", "bias"}
    assert seen[K.INPUTS].steps() == [0, 1]  # run-level kinds are not filtered by layer


def test_layers_glob_installs_hooks_only_on_matching_layers(torch):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[recorder(K.ACTIVATIONS)], sinks=[],
                       layers="2"):
        assert [len(module._forward_hooks) for module in model] == [0, 0, 1]


# -- detach ------------------------------------------------------------------------------------


def test_detach_removes_every_hook_and_changes_no_state(torch):
    model = small_cnn(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    seen = recorders(K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.GRADIENTS, K.WEIGHTS, K.UPDATES,
                     K.INPUTS, K.OUTPUTS)
    monitor = ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[])
    assert module_hook_counts(model)["_forward_hooks"] > 0
    for step in range(2):
        train_step(torch, model, optimizer, *image_batch(torch, seed=step))
    state = {key: value.clone() for key, value in model.state_dict().items()}
    monitor.detach()
    assert monitor.attached is False
    assert module_hook_counts(model) == NO_MODULE_HOOKS
    assert len(optimizer._optimizer_step_pre_hooks) == 0
    assert len(optimizer._optimizer_step_post_hooks) == 0
    after = model.state_dict()
    assert after.keys() == state.keys()
    assert all(torch.equal(after[key], state[key]) for key in state)

    calls = {kind: len(metric.seen) for kind, metric in seen.items()}
    emitted = spy_on_emit(monitor)
    for step in range(2, 4):
        train_step(torch, model, optimizer, *image_batch(torch, seed=step))
    assert emitted == []
    assert {kind: len(metric.seen) for kind, metric in seen.items()} == calls
    assert monitor.step == 1
    monitor.detach()  # idempotent


def test_detach_without_optimizer_restores_torchs_global_optimizer_hooks(torch):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = global_optimizer_hooks()
    monitor = ikkuna.attach(model, metrics=[recorder(K.WEIGHTS)], sinks=[])
    assert global_optimizer_hooks() == (before[0] + 1, before[1] + 1)
    train_step(torch, model, optimizer, *vector_batch(torch, seed=0))
    monitor.detach()
    assert global_optimizer_hooks() == before
    assert module_hook_counts(model) == NO_MODULE_HOOKS


def test_detach_between_forward_and_backward_leaves_no_gradient_hook(torch):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = ikkuna.attach(model, optimizer=optimizer, metrics=[recorder(K.OUTPUT_GRADIENTS)],
                            sinks=[])
    emitted = spy_on_emit(monitor)
    inputs, labels = vector_batch(torch, seed=0)
    loss = torch.nn.functional.cross_entropy(model(inputs), labels)
    monitor.detach()
    loss.backward()
    optimizer.step()
    assert emitted == []


def test_with_block_detaches_on_exit(torch):
    model = small_cnn(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    activations = recorder(K.ACTIVATIONS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[activations], sinks=[]) as monitor:
        assert monitor.attached
        train_step(torch, model, optimizer, *image_batch(torch, seed=0))
    assert monitor.attached is False
    assert module_hook_counts(model) == NO_MODULE_HOOKS
    assert len(optimizer._optimizer_step_pre_hooks) == 0
    assert len(optimizer._optimizer_step_post_hooks) == 0
    calls = len(activations.seen)
    train_step(torch, model, optimizer, *image_batch(torch, seed=1))
    assert len(activations.seen) == calls


def test_with_block_detaches_when_training_raises(torch):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = ikkuna.attach(model, optimizer=optimizer, sinks=[])
    with pytest.raises(RuntimeError, match="stop"), monitor:
        train_step(torch, model, optimizer, *vector_batch(torch, seed=0))
        raise RuntimeError("stop")
    assert monitor.attached is False
    assert module_hook_counts(model) == NO_MODULE_HOOKS


def test_metrics_none_installs_only_the_root_hook_and_optimizer_hooks(torch):
    model = small_cnn(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = global_optimizer_hooks()
    with ikkuna.attach(model, optimizer=optimizer, metrics=[], sinks=[]) as monitor:
        assert module_hook_counts(model) == dict(NO_MODULE_HOOKS, _forward_pre_hooks=1)
        assert len(model._forward_pre_hooks) == 1  # on the model itself
        assert len(optimizer._optimizer_step_pre_hooks) == 1
        assert len(optimizer._optimizer_step_post_hooks) == 1
        assert global_optimizer_hooks() == before
        for step in range(2):
            train_step(torch, model, optimizer, *image_batch(torch, seed=step))
            model(image_batch(torch, seed=10 + step)[0])
        assert monitor.step == 2
    assert module_hook_counts(model) == NO_MODULE_HOOKS


# -- a failing metric --------------------------------------------------------------------------


class ExplodingMetric(ikkuna.Metric):
    """Raises on its first call."""

    name = "exploding_metric"
    needs = ("weights",)

    def compute(self, group):
        raise ValueError("boom in the metric")


def test_a_metric_that_raises_is_disabled_with_one_warning_and_training_goes_on(torch):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = 4
    exploding = ExplodingMetric()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor = ikkuna.attach(model, optimizer=optimizer,
                                metrics=[exploding, "weight_norm", "activation_mean"])
        for step in range(steps):
            train_step(torch, model, optimizer, *vector_batch(torch, seed=step), monitor=monitor)
        monitor.detach()
    runtime_warnings = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime_warnings) == 1, [str(w.message) for w in runtime_warnings]
    message = str(runtime_warnings[0].message)
    assert "exploding_metric" in message and "boom in the metric" in message
    assert monitor.step == steps - 1
    assert len(monitor.problems) == 1
    problem = monitor.problems[0]
    assert problem.source == "metric:exploding_metric"
    assert problem.step == 0
    assert "ValueError: boom in the metric" in problem.details
    with ikkuna.open_run(monitor.run) as run:
        assert "exploding_metric" not in run.metrics()
        for layer in ("0", "2"):
            assert list(run.series("weight_norm", layer, "weight").steps) == list(range(steps))
            assert list(run.series("activation_mean", layer).steps) == list(range(steps))
        assert list(run.series("loss").steps) == list(range(steps))
        assert [p["source"] for p in run.problems()] == ["metric:exploding_metric"]


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("not_a_model", [{"weight": 1.0}, np.zeros((2, 2))],
                         ids=["dict", "ndarray"])
def test_attach_to_something_that_is_not_a_module_names_torch_nn_module(torch, not_a_model):
    with pytest.raises(ikkuna.UnsupportedModelError, match=r"torch\.nn\.Module"):
        ikkuna.attach(not_a_model, sinks=[])


def test_unknown_metric_name_lists_the_known_ones_and_installs_nothing(torch):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ikkuna.UnknownMetricError) as error:
        ikkuna.attach(model, optimizer=optimizer, metrics=["weight_nrom"], sinks=[])
    assert "weight_nrom" in str(error.value)
    assert "weight_norm" in str(error.value)
    assert module_hook_counts(model) == NO_MODULE_HOOKS
    assert len(optimizer._optimizer_step_pre_hooks) == 0


@pytest.mark.parametrize("wrong", ["sgd", object()], ids=["str", "object"])
def test_optimizer_of_the_wrong_type_names_torch_optim_optimizer(torch, wrong):
    model = mlp(torch)
    with pytest.raises(TypeError, match=r"torch\.optim\.Optimizer"):
        ikkuna.attach(model, optimizer=wrong, sinks=[])
    assert module_hook_counts(model) == NO_MODULE_HOOKS


def test_log_rejects_a_loss_that_is_not_a_number(torch):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with ikkuna.attach(model, optimizer=optimizer, sinks=[]) as monitor:
        with pytest.raises(TypeError, match="loss"):
            monitor.log(loss="x")
        with pytest.raises(TypeError, match=r"shape \(3,\)"):
            monitor.log(lr=np.ones(3))
        with pytest.raises(TypeError, match=r"shape \(3,\)"):
            monitor.log(lr=torch.ones(3))
        monitor.log(loss=torch.tensor(0.5), lr=np.float32(0.1))  # one-element values are fine


def test_gradient_accumulation_joins_the_passes_of_one_step(torch):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = recorders(K.ACTIVATIONS, K.GRADIENTS, K.INPUTS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[]) as m:
        for step in range(2):
            optimizer.zero_grad()
            for part in range(3):
                inputs, labels = vector_batch(torch, seed=10 * step + part)
                torch.nn.functional.cross_entropy(model(inputs), labels).backward()
            optimizer.step()
        assert m.step == 1
    assert seen[K.ACTIVATIONS].steps("0") == [0, 1]
    assert seen[K.ACTIVATIONS].at(1, "0").values.shape == (3 * BATCH, 8)
    assert seen[K.INPUTS].at(0).values.shape == (3 * BATCH, 4)
    np.testing.assert_array_equal(seen[K.INPUTS].at(1).values[:BATCH],
                                  vector_batch(torch, seed=10)[0].numpy())
    assert seen[K.GRADIENTS].steps("0", "weight") == [0, 1]


# -- what counts as a training pass --------------------------------------------------------------


def test_frozen_batchnorm_in_a_training_model_still_records_its_activations(torch):
    model = small_cnn(torch)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = recorder(K.ACTIVATIONS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[seen], sinks=[]):
        model.train()
        for norm in norms:
            norm.eval()  # fine-tuning: frozen statistics, the model itself trains
        train_step(torch, model, optimizer, *image_batch(torch, seed=0))
    norm_names = {name for name, m in model.named_modules() if m in norms}
    assert norm_names <= seen.seen_layers()


def test_inputs_passed_as_keywords_are_recorded(torch):
    class KeywordModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.linear(x)

    model = KeywordModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = recorder(K.INPUTS)
    inputs = torch.randn(3, 4)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[seen], sinks=[]):
        model(x=inputs).sum().backward()
        optimizer.step()
    np.testing.assert_array_equal(seen.at(0).values, inputs.numpy())


def test_log_after_detach_is_an_error_that_says_nothing_would_be_stored(torch):
    model = mlp(torch)
    monitor = ikkuna.attach(model, metrics=[], sinks=[])
    monitor.detach()
    with pytest.raises(RuntimeError, match="after detach"):
        monitor.log(loss=1.0)


def test_monitor_reads_back_its_own_series_from_the_store(torch, private_store):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with ikkuna.attach(model, optimizer=optimizer, metrics=["weight_norm"]) as monitor:
        for step in range(3):
            train_step(torch, model, optimizer, *vector_batch(torch, seed=step), monitor=monitor)
    assert monitor.store_path == private_store
    series = monitor.series("weight_norm", "0", "weight")
    np.testing.assert_array_equal(series.steps, [0, 1, 2])
    assert series.values[-1] == pytest.approx(float(model[0].weight.detach().norm()), rel=1e-6)
    np.testing.assert_array_equal(monitor.series("loss").steps, [0, 1, 2])


# -- found in review: unusual but legitimate training loops ------------------------------------


def test_training_that_never_calls_the_model_itself_still_records_every_step(torch):
    class WithLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Linear(4, 3)

        def loss(self, x):  # training calls this, never forward()
            return self.encoder(x).pow(2).mean()

    model = WithLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = recorders(K.ACTIVATIONS, K.GRADIENTS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[]):
        for _ in range(3):
            optimizer.zero_grad()
            model.loss(torch.randn(2, 4)).backward()
            optimizer.step()
    assert seen[K.ACTIVATIONS].steps("encoder") == [0, 1, 2]
    assert seen[K.GRADIENTS].steps("encoder", "weight") == [0, 1, 2]


def test_closure_optimizer_records_the_gradient_the_step_starts_from(torch):
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=3)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    seen = recorder(K.GRADIENTS)
    first_gradients = []
    with ikkuna.attach(model, optimizer=optimizer, metrics=[seen], sinks=[]):
        for _ in range(2):
            calls = []

            def closure():
                optimizer.zero_grad()
                loss = (model(x) - y).pow(2).mean()
                loss.backward()
                calls.append(model.weight.grad.clone())
                return loss

            optimizer.step(closure)
            first_gradients.append(calls[0])
    assert seen.steps("model", "weight") == [0, 1]
    for step, expected in enumerate(first_gradients):
        np.testing.assert_array_equal(seen.at(step, "model", "weight").values, expected.numpy())


def test_two_optimizers_after_one_backward_make_one_step_each_updating_its_own_part(torch):
    model = mlp(torch)
    first = torch.optim.SGD(model[0].parameters(), lr=0.1)
    second = torch.optim.Adam(model[2].parameters(), lr=0.01)
    seen = recorders(K.UPDATES, K.WEIGHTS)
    with ikkuna.attach(model, metrics=list(seen.values())) as monitor:
        for step in range(3):
            inputs, labels = vector_batch(torch, seed=step)
            first.zero_grad()
            second.zero_grad()
            torch.nn.functional.cross_entropy(model(inputs), labels).backward()
            first.step()
            second.step()
            monitor.log(loss=1.0)
    assert monitor.step == 2
    for layer in ("0", "2"):
        assert seen[K.UPDATES].steps(layer, "weight") == [0, 1, 2]
        assert all(np.any(seen[K.UPDATES].at(s, layer, "weight").values != 0) for s in range(3))
    np.testing.assert_array_equal(monitor.series("loss").steps, [0, 1, 2])


def test_activation_checkpointing_does_not_record_the_recomputed_forward(torch):
    from torch.utils.checkpoint import checkpoint

    block = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
    head = torch.nn.Linear(4, 2)
    model = torch.nn.ModuleDict({"block": block, "head": head})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = recorder(K.ACTIVATIONS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[seen], sinks=[]):
        for _ in range(2):
            optimizer.zero_grad()
            hidden = checkpoint(block, torch.randn(6, 4), use_reentrant=False)
            head(hidden).sum().backward()
            optimizer.step()
    for step in (0, 1):
        assert seen.at(step, "block.0").values.shape == (6, 4)


def test_logging_outputs_the_adapter_already_recorded_warns_once_and_counts_them_once(torch):
    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = recorder(K.OUTPUTS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[seen], sinks=[]) as monitor:
        with pytest.warns(RuntimeWarning, match="already recorded") as caught:
            for step in range(2):
                inputs, labels = vector_batch(torch, seed=step)
                outputs = model(inputs)
                torch.nn.functional.cross_entropy(outputs, labels).backward()
                optimizer.step()
                monitor.log(outputs=outputs)
    assert len(caught) == 1
    assert [s.values.shape[0] for s in seen.seen] == [BATCH, BATCH]


def test_a_child_called_model_does_not_collide_with_the_root_layer(torch):
    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1))
            self.model = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.model(x) * self.scale

    wrapper = Wrapper()
    optimizer = torch.optim.SGD(wrapper.parameters(), lr=0.1)
    with ikkuna.attach(wrapper, optimizer=optimizer, metrics=["weight_norm"], sinks=[]) as monitor:
        names = [layer.name for layer in monitor.layers]
    assert sorted(names) == ["model", "model_"]


def test_a_failing_install_leaves_no_hooks_and_closes_the_run(torch, monkeypatch, private_store):
    from ikkuna.adapters.torch import TorchAdapter

    model = mlp(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    original = TorchAdapter._install_optimizer_hooks

    def broken(self):
        original(self)
        raise RuntimeError("install broke half way")

    monkeypatch.setattr(TorchAdapter, "_install_optimizer_hooks", broken)
    with pytest.raises(RuntimeError, match="half way"):
        ikkuna.attach(model, optimizer=optimizer, run="broken")
    assert module_hook_counts(model) == NO_MODULE_HOOKS
    assert len(optimizer._optimizer_step_pre_hooks) == len(optimizer._optimizer_step_post_hooks) == 0
    assert all(run.finished for run in ikkuna.list_runs(private_store))


def test_layers_selection_that_matches_nothing_is_an_error_listing_the_layers(torch):
    with pytest.raises(ValueError, match="encoder.*matches no layer.*0, 1, 2"):
        ikkuna.attach(mlp(torch), layers="encoder.*", sinks=[])


def test_naming_a_framework_the_model_is_not_of_is_an_unsupported_model_error(torch):
    with pytest.raises(ikkuna.UnsupportedModelError, match="torch.nn.Module.*builtins.object"):
        ikkuna.attach(object(), framework="torch")


def test_sinks_accept_a_sink_class(torch, private_store):
    from ikkuna.sinks.store import StoreSink

    model = mlp(torch)
    with ikkuna.attach(model, metrics=[], sinks=[StoreSink]) as monitor:
        assert monitor.store_path == private_store
