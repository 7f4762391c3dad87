"""The bus: grouping needed kinds per (layer, param, step), batching, filters, failures."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ikkuna.core import kinds as K
from ikkuna.core.arrays import NO_LAYOUT, Array, Layout
from ikkuna.core.bus import Bus, MetricSlot, Problem
from ikkuna.core.events import Event, Histogram, Record
from ikkuna.core.layers import LayerInfo
from ikkuna.core.metric import EventGroup, Metric
from tests.core.recording_metric import FC, Recorder

ENCODER = LayerInfo("encoder.0", "dense", "numpy", {"weight": "weight"})
DECODER = LayerInfo("decoder.0", "dense", "numpy", {"weight": "weight"})


def event(kind, values, *, layer=FC, param=None, step=0, epoch=0, layout=NO_LAYOUT) -> Event:
    return Event(kind, step, epoch, layer, param, array=Array.from_numpy(values, layout))


def make_bus(*metrics: Metric) -> tuple[Bus, list[Problem]]:
    problems: list[Problem] = []
    bus = Bus([MetricSlot(metric) for metric in metrics], run="test-run", on_problem=problems.append)
    return bus, problems


def values_by_key(records: list[Record]) -> dict[tuple, object]:
    return {(r.metric, r.layer, r.param, r.step): r.value for r in records}


class PairRecorder(Recorder):
    name = "pair_recorder"
    needs = ("weights", "updates")


class ActivationRecorder(Recorder):
    name = "activation_recorder"
    needs = ("activations",)


class Returns(Metric):
    """A metric returning a fixed value, to test how results become records."""

    name = "returns"
    needs = ("weights",)

    def __init__(self, result) -> None:
        super().__init__()
        self.result = result

    def compute(self, group: EventGroup):
        group["weights"]  # reads its input like a real metric
        return self.result


class Broken(Metric):
    """Reads its input, then fails."""

    name = "broken_metric"
    needs = ("weights",)

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def compute(self, group: EventGroup):
        self.calls += 1
        group["weights"]
        raise ZeroDivisionError("on purpose")


class BrokenBeforeReading(Broken):
    """Fails before it reads its input (a bad argument check, say)."""

    name = "broken_before_reading"

    def compute(self, group: EventGroup):
        self.calls += 1
        raise ZeroDivisionError("on purpose")


class WeightSum(Metric):
    name = "weight_sum"
    needs = ("weights",)

    def compute(self, group: EventGroup) -> float:
        return float(np.sum(group["weights"]))


# --- synchronising needed kinds ----------------------------------------------------------------


def test_metric_needing_two_kinds_is_called_only_after_both_arrived():
    metric = PairRecorder()
    bus, _ = make_bus(metric)
    bus.open_step(0, 0)
    bus.publish(event("weights", [[1.0, 2.0]], param="weight"))
    assert metric.calls == []
    bus.publish(event("updates", [[0.1, 0.2]], param="weight"))
    assert len(metric.calls) == 1
    layer, param, step, arrays = metric.calls[0]
    assert (layer, param, step) == ("fc", "weight", 0)
    np.testing.assert_array_equal(arrays["weights"], [[1.0, 2.0]])
    np.testing.assert_array_equal(arrays["updates"], [[0.1, 0.2]])


def test_metric_needing_two_kinds_is_called_once_per_layer_param_and_step():
    metric = PairRecorder()
    bus, _ = make_bus(metric)
    for step in range(3):
        bus.open_step(step, 0)
        for layer in (FC, ENCODER):
            for param in ("weight", "bias"):
                bus.publish(event("weights", [step, 1.0], layer=layer, param=param, step=step))
        for layer in (FC, ENCODER):
            for param in ("weight", "bias"):
                bus.publish(event("updates", [step, 2.0], layer=layer, param=param, step=step))
        bus.close_step()
    keys = [(layer, param, step) for layer, param, step, _ in metric.calls]
    assert len(keys) == len(set(keys)) == 3 * 2 * 2
    for layer, param, step, arrays in metric.calls:
        np.testing.assert_array_equal(arrays["weights"], [step, 1.0])
        np.testing.assert_array_equal(arrays["updates"], [step, 2.0])


def test_kinds_of_different_params_are_not_mixed_up():
    metric = PairRecorder()
    bus, _ = make_bus(metric)
    bus.open_step(0, 0)
    bus.publish(event("weights", [1.0], param="weight"))
    bus.publish(event("updates", [9.0], param="bias"))  # other param: no pair yet
    assert metric.calls == []
    bus.publish(event("updates", [2.0], param="weight"))
    bus.publish(event("weights", [8.0], param="bias"))
    by_param = {param: arrays for _, param, _, arrays in metric.calls}
    np.testing.assert_array_equal(by_param["weight"]["weights"], [1.0])
    np.testing.assert_array_equal(by_param["weight"]["updates"], [2.0])
    np.testing.assert_array_equal(by_param["bias"]["weights"], [8.0])
    np.testing.assert_array_equal(by_param["bias"]["updates"], [9.0])


def test_incomplete_group_is_dropped_at_step_end_and_not_carried_over():
    metric = PairRecorder()
    bus, _ = make_bus(metric)
    bus.open_step(0, 0)
    bus.publish(event("weights", [1.0], param="weight"))
    assert bus.close_step() == []
    bus.open_step(1, 0)
    bus.publish(event("updates", [2.0], param="weight", step=1))
    assert bus.close_step() == []
    assert metric.calls == []


def test_records_carry_run_step_epoch_layer_and_param():
    bus, _ = make_bus(WeightSum())
    bus.open_step(4, 2)
    bus.publish(event("weights", [1.0, 2.0], param="bias", step=4, epoch=2))
    (record,) = bus.close_step()
    assert record == Record("test-run", 4, 2, "weight_sum", "fc", "bias", 3.0)


def test_close_step_returns_each_record_once():
    bus, _ = make_bus(WeightSum())
    bus.open_step(0, 0)
    bus.publish(event("weights", [1.0], param="weight"))
    assert len(bus.close_step()) == 1
    assert bus.close_step() == []


def test_events_of_kinds_no_metric_needs_are_ignored():
    metric = Recorder()
    bus, _ = make_bus(metric)
    bus.open_step(0, 0)
    bus.publish(event("gradients", [1.0], param="weight"))
    bus.publish(event("activations", [[1.0]]))
    assert bus.close_step() == []
    assert metric.calls == []


def test_takes_says_which_kinds_some_metric_needs_on_any_step():
    bus, _ = make_bus(Recorder(), ActivationRecorder(every=100))
    assert bus.takes("weights") and bus.takes("activations")
    assert not bus.takes("gradients") and not bus.takes(K.STEP_STARTED)


class StepTotal(Metric):
    """Sums the weights it sees in a step; one record a step, at the step's end."""

    name = "step_total"
    needs = ("weights",)

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.total = 0.0
        self.finished: list[int] = []

    def compute(self, group: EventGroup) -> None:
        self.total += float(np.sum(group["weights"]))

    def finish_step(self, step: int) -> float:
        self.finished.append(step)
        total, self.total = self.total, 0.0
        return total


class OtherStepTotal(StepTotal):
    name = "other_step_total"


def test_step_end_summaries_run_on_their_scheduled_steps_only_and_in_metric_order():
    every_step, every_other = StepTotal(), OtherStepTotal(every=2)
    bus, _ = make_bus(Recorder(), every_other, every_step)
    for step in range(3):
        bus.open_step(step, 0)
        bus.publish(event("weights", [1.0, 2.0], param="weight", step=step))
        summaries = [(r.metric, r.value) for r in bus.close_step() if r.layer is None]
        expected = ([("other_step_total", 3.0)] if step % 2 == 0 else []) + [("step_total", 3.0)]
        assert summaries == expected
    assert every_step.finished == [0, 1, 2] and every_other.finished == [0, 2]


def test_a_bus_without_metrics_needs_nothing_and_records_nothing():
    bus, _ = make_bus()
    assert bus.open_step(0, 0) == frozenset()
    bus.publish(event("weights", [1.0], param="weight"))
    assert bus.close_step() == []


def test_open_step_returns_the_kinds_the_active_metrics_need():
    bus, _ = make_bus(PairRecorder(), ActivationRecorder(every=2))
    assert bus.open_step(0, 0) == {"weights", "updates", "activations"}
    assert bus.open_step(1, 0) == {"weights", "updates"}
    assert bus.open_step(2, 0, scheduled=False) == frozenset()


def test_a_metric_that_does_not_read_an_event_does_not_spoil_it_for_the_next_metric():
    """Two metrics need ``weights``; the first returns without reading the array. The second
    must still see the real values, not a released (None) native tensor."""

    class SkipsConvLayers(Metric):
        name = "skips_conv"
        needs = ("weights",)

        def compute(self, group):
            if group.layer.kind != "conv2d":
                return None
            return float(np.sum(group["weights"]))

    reader = Recorder()
    bus, problems = make_bus(SkipsConvLayers(), reader)
    bus.open_step(0, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bus.publish(event("weights", [[3.0, 4.0]], param="weight"))
        records = bus.close_step()
    assert problems == []
    assert len(reader.calls) == 1
    np.testing.assert_array_equal(reader.calls[0][3]["weights"], [[3.0, 4.0]])
    assert [r.metric for r in records] == ["recorder"]


# --- batched kinds -----------------------------------------------------------------------------


def test_activations_from_two_calls_in_a_step_are_joined_along_the_batch_axis_at_close_step():
    metric = ActivationRecorder()
    bus, _ = make_bus(metric)
    bus.open_step(0, 0)
    first = np.arange(6.0).reshape(2, 3)
    second = np.arange(9.0).reshape(3, 3) + 100
    layout = Layout(batch_axis=0, channel_axis=1)
    bus.publish(event("activations", first, layout=layout))
    bus.publish(event("activations", second, layout=layout))
    assert metric.calls == []  # waits for the step's end
    records = bus.close_step()
    assert len(metric.calls) == 1
    layer, param, step, arrays = metric.calls[0]
    assert (layer, param, step) == ("fc", None, 0)
    np.testing.assert_array_equal(arrays["activations"], np.concatenate([first, second]))
    assert len(records) == 1


def test_batched_kinds_are_joined_along_a_batch_axis_other_than_zero():
    metric = ActivationRecorder()
    bus, _ = make_bus(metric)
    bus.open_step(0, 0)
    layout = Layout(batch_axis=1, channel_axis=-1)
    first = np.zeros((4, 2, 3))
    second = np.ones((4, 1, 3))
    bus.publish(event("activations", first, layout=layout))
    bus.publish(event("activations", second, layout=layout))
    bus.close_step()
    joined = metric.calls[0][3]["activations"]
    assert joined.shape == (4, 3, 3)
    np.testing.assert_array_equal(joined, np.concatenate([first, second], axis=1))


def test_activations_of_different_layers_are_not_joined():
    metric = ActivationRecorder()
    bus, _ = make_bus(metric)
    bus.open_step(0, 0)
    bus.publish(event("activations", [[1.0, 2.0]], layer=ENCODER))
    bus.publish(event("activations", [[3.0, 4.0]], layer=DECODER))
    bus.close_step()
    by_layer = {layer: arrays["activations"] for layer, _, _, arrays in metric.calls}
    np.testing.assert_array_equal(by_layer["encoder.0"], [[1.0, 2.0]])
    np.testing.assert_array_equal(by_layer["decoder.0"], [[3.0, 4.0]])


def test_waiting_event_is_copied_so_later_changes_to_the_native_tensor_do_not_matter():
    metric = ActivationRecorder()
    bus, _ = make_bus(metric)
    bus.open_step(0, 0)
    native = np.array([[1.0, 2.0]])
    array = Array(native, lambda n: n.copy(), shape=native.shape, dtype=str(native.dtype),
                  layout=Layout(batch_axis=0, channel_axis=1))
    bus.publish(Event("activations", 0, 0, FC, None, array=array))
    native[0, 0] = 99.0  # the framework reuses its buffer after the hook returned
    bus.close_step()
    np.testing.assert_array_equal(metric.calls[0][3]["activations"], [[1.0, 2.0]])


# --- per-metric filters ------------------------------------------------------------------------


def test_per_metric_every_runs_the_metric_only_on_scheduled_steps():
    every_two = Recorder(every=2)
    always = WeightSum()
    bus, _ = make_bus(every_two, always)
    records = []
    for step in range(5):
        bus.open_step(step, 0)
        bus.publish(event("weights", [1.0], param="weight", step=step))
        records += bus.close_step()
    assert [step for _, _, step, _ in every_two.calls] == [0, 2, 4]
    assert [r.step for r in records if r.metric == "weight_sum"] == [0, 1, 2, 3, 4]


def test_unscheduled_step_runs_no_metric():
    metric = Recorder()
    bus, _ = make_bus(metric)
    bus.open_step(0, 0, scheduled=False)
    bus.publish(event("weights", [1.0], param="weight"))
    assert bus.close_step() == []
    assert metric.calls == []


def test_per_metric_layers_glob_selects_layers():
    encoders = Recorder(layers="encoder.*")
    everywhere = WeightSum()
    bus, _ = make_bus(encoders, everywhere)
    bus.open_step(0, 0)
    for layer in (ENCODER, DECODER, FC):
        bus.publish(event("weights", [1.0], layer=layer, param="weight"))
    records = bus.close_step()
    assert [layer for layer, _, _, _ in encoders.calls] == ["encoder.0"]
    assert sorted(r.layer for r in records if r.metric == "weight_sum") == [
        "decoder.0", "encoder.0", "fc"]


def test_per_metric_layers_predicate_selects_layers():
    metric = Recorder(layers=lambda info: info.name.startswith("dec"))
    bus, _ = make_bus(metric)
    bus.open_step(0, 0)
    for layer in (ENCODER, DECODER):
        bus.publish(event("weights", [1.0], layer=layer, param="weight"))
    bus.close_step()
    assert [layer for layer, _, _, _ in metric.calls] == ["decoder.0"]


# --- failing metrics ---------------------------------------------------------------------------


def run_weight_steps(bus, steps, layers=(FC,), values=(1.0, 2.0), epoch=0) -> list[Record]:
    """Open each step, publish ``weights`` of ``values`` for each layer, close; all records."""
    records = []
    for step in steps:
        bus.open_step(step, epoch)
        for layer in layers:
            bus.publish(event("weights", list(values), layer=layer, param="weight", step=step,
                              epoch=epoch))
        records += bus.close_step()
    return records


def test_metric_that_raises_is_disabled_with_one_warning_and_others_go_on():
    broken = Broken()
    bus, _ = make_bus(broken, WeightSum())
    with pytest.warns(RuntimeWarning) as caught:
        records = run_weight_steps(bus, range(3), layers=(ENCODER, DECODER))
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1
    message = str(runtime[0].message)
    assert "broken_metric" in message
    assert "ZeroDivisionError" in message
    assert broken.calls == 1
    assert bus.slots[0].disabled
    assert [(r.step, r.layer) for r in records] == [
        (step, layer) for step in range(3) for layer in ("encoder.0", "decoder.0")]
    assert all(r.metric == "weight_sum" for r in records)


def test_metric_that_raises_reports_one_problem_with_where_and_traceback():
    bus, problems = make_bus(Broken())
    with pytest.warns(RuntimeWarning):
        run_weight_steps(bus, [7], layers=(DECODER, ENCODER), epoch=1)
    assert len(problems) == 1
    problem = problems[0]
    assert problem.source == "metric:broken_metric"
    assert problem.step == 7
    assert problem.layer == "decoder.0"
    assert "broken_metric" in problem.message
    assert "ZeroDivisionError" in problem.details
    assert "on purpose" in problem.details


def test_disabled_metric_kinds_are_no_longer_requested():
    bus, _ = make_bus(Broken(), ActivationRecorder())
    assert bus.open_step(0, 0) == {"weights", "activations"}
    with pytest.warns(RuntimeWarning):
        run_weight_steps(bus, [0])
    assert bus.needed_kinds() == {"activations"}
    assert bus.open_step(1, 0) == {"activations"}


def test_metric_that_raises_before_reading_its_input_does_not_break_the_other_metrics():
    """The failing metric comes first and never converted the shared ``weights`` event; the
    metric after it must still get the real values and keep producing records."""
    bus, problems = make_bus(BrokenBeforeReading(), WeightSum())
    with pytest.warns(RuntimeWarning) as caught:
        records = run_weight_steps(bus, range(2))
    assert [str(w.message).split(" raised")[0] for w in caught] == [
        "ikkuna: metric 'broken_before_reading' (plugin 'ikkuna.metrics')"]
    assert [p.source for p in problems] == ["metric:broken_before_reading"]
    assert not bus.slots[1].disabled
    assert [(r.metric, r.step, r.value) for r in records] == [
        ("weight_sum", 0, 3.0), ("weight_sum", 1, 3.0)]


# --- what compute() may return -----------------------------------------------------------------


def single_record_value(result):
    bus, problems = make_bus(Returns(result))
    bus.open_step(0, 0)
    bus.publish(event("weights", [1.0], param="weight"))
    records = bus.close_step()
    assert problems == []
    return records


def test_float_result_becomes_one_float_record():
    (record,) = single_record_value(0.25)
    assert record.metric == "returns"
    assert record.value == 0.25
    assert type(record.value) is float


def test_numpy_scalar_result_becomes_a_python_float():
    (record,) = single_record_value(np.float32(1.5))
    assert type(record.value) is float
    assert record.value == 1.5


def test_dict_result_becomes_one_record_per_key_named_metric_dot_key():
    records = single_record_value({"min": -1.0, "max": 2})
    assert values_by_key(records) == {
        ("returns.min", "fc", "weight", 0): -1.0,
        ("returns.max", "fc", "weight", 0): 2.0,
    }
    assert all(type(r.value) is float for r in records)


def test_one_dimensional_array_result_becomes_a_float64_vector_record():
    (record,) = single_record_value(np.array([1, 2, 3], dtype=np.int32))
    assert isinstance(record.value, np.ndarray)
    assert record.value.dtype == np.float64
    np.testing.assert_array_equal(record.value, [1.0, 2.0, 3.0])


def test_histogram_result_is_recorded_as_is():
    histogram = Histogram(np.array([1.0, 2.0]), np.array([0.0, 0.5, 1.0]))
    (record,) = single_record_value(histogram)
    assert record.value is histogram


def test_none_result_records_nothing():
    assert single_record_value(None) == []


@pytest.mark.parametrize(
    "bad",
    [np.ones((2, 2)), "1.0", {"a": np.ones(3)}, [1.0, 2.0]],
    ids=["2d-array", "str", "dict-of-arrays", "list"],
)
def test_unsupported_result_is_an_error_that_disables_the_metric(bad):
    bus, problems = make_bus(Returns(bad), WeightSum())
    with pytest.warns(RuntimeWarning, match="'returns'"):
        records = run_weight_steps(bus, [0], values=[1.0])
    assert bus.slots[0].disabled
    assert [r.metric for r in records] == ["weight_sum"]
    assert len(problems) == 1
    assert "a float, a dict of floats, a 1-d numpy array" in problems[0].message


# --- Metric.validate ---------------------------------------------------------------------------


def metric_class(**attributes) -> type[Metric]:
    return type("Custom", (Metric,), attributes)


def test_valid_metric_passes_validation():
    metric_class(name="ok", needs=("weights", "updates")).validate()
    metric_class(name="ok_run", needs=("loss", "labels")).validate()


@pytest.mark.parametrize("name", ["", None, 3])
def test_validate_rejects_missing_or_non_string_name(name):
    with pytest.raises(TypeError, match="non-empty str `name`"):
        metric_class(name=name, needs=("weights",)).validate()


@pytest.mark.parametrize("needs", [(), "weights", ["weights"], None])
def test_validate_rejects_needs_that_is_not_a_non_empty_tuple(needs):
    with pytest.raises(TypeError) as error:
        metric_class(name="bad_needs", needs=needs).validate()
    message = str(error.value)
    assert "bad_needs" in message
    assert "non-empty tuple of event kinds" in message
    assert repr(needs) in message


def test_validate_rejects_unknown_kind_listing_every_accepted_kind():
    with pytest.raises(ValueError) as error:
        metric_class(name="typo", needs=("weight",)).validate()
    message = str(error.value)
    assert "'weight'" in message
    for kind in K.MEASURABLE_KINDS:
        assert kind in message
    for marker in K.MARKER_KINDS:
        assert marker not in message


def test_validate_rejects_marker_kinds_which_carry_no_array():
    with pytest.raises(ValueError, match="step_finished"):
        metric_class(name="marker", needs=("step_finished",)).validate()


def test_validate_rejects_kinds_of_mixed_scopes_naming_the_scopes():
    with pytest.raises(ValueError) as error:
        metric_class(name="mixed", needs=("weights", "activations", "loss")).validate()
    message = str(error.value)
    assert "mixed" in message
    for scope in ("layer", "parameter", "run"):
        assert scope in message


def test_metric_scope_follows_its_needs():
    assert metric_class(name="p", needs=("gradients",)).scope() == "parameter"
    assert metric_class(name="l", needs=("activations",)).scope() == "layer"
    assert metric_class(name="r", needs=("loss",)).scope() == "run"


def test_calls_of_different_lengths_are_joined_as_rows_of_channels():
    metric = ActivationRecorder()
    bus, _ = make_bus(metric)
    bus.open_step(0, 0)
    layout = Layout(batch_axis=0, channel_axis=-1)
    short = np.arange(2 * 3 * 4.0).reshape(2, 3, 4)
    long = np.arange(2 * 7 * 4.0).reshape(2, 7, 4) + 100
    bus.publish(event("activations", short, layout=layout))
    bus.publish(event("activations", long, layout=layout))
    bus.close_step()
    joined = metric.calls[0][3]["activations"]
    np.testing.assert_array_equal(joined, np.concatenate([short.reshape(-1, 4), long.reshape(-1, 4)]))


def test_calls_whose_channels_differ_keep_the_latest_call():
    metric = ActivationRecorder()
    bus, _ = make_bus(metric)
    bus.open_step(0, 0)
    layout = Layout(batch_axis=0, channel_axis=1)
    bus.publish(event("activations", np.zeros((2, 3)), layout=layout))
    bus.publish(event("activations", np.ones((2, 5)), layout=layout))
    bus.close_step()
    np.testing.assert_array_equal(metric.calls[0][3]["activations"], np.ones((2, 5)))
