"""What the monitor does with an adapter's events before the bus sees them."""

from __future__ import annotations

import numpy as np

from ikkuna.core import kinds as K
from ikkuna.core.arrays import NO_LAYOUT, Array
from ikkuna.core.bus import MetricSlot
from ikkuna.core.monitor import Monitor
from ikkuna.core.sink import Sink
from tests.core.bare_adapter import BareAdapter
from tests.core.recording_metric import FC, Recorder


def started_monitor(*metrics) -> Monitor:
    monitor = Monitor(BareAdapter(model=None), [MetricSlot(metric) for metric in metrics], [],
                      run="events")
    return monitor.start()


def test_an_event_of_a_kind_no_metric_needs_is_not_published_and_its_array_is_released():
    monitor = started_monitor(Recorder())
    published = []
    monitor._bus.publish = published.append
    unused = Array.from_numpy(np.ones(3, np.float32), NO_LAYOUT)
    unused._native = object()  # as an adapter's array still holding its native tensor
    monitor.emit(K.STEP_STARTED)
    monitor.emit(K.GRADIENTS, layer=FC, param="weight", array=unused)
    assert published == []
    assert unused._native is None  # released: no reference to the tensor stays behind
    monitor.emit(K.WEIGHTS, layer=FC, param="weight",
                 array=Array.from_numpy(np.ones(3, np.float32), NO_LAYOUT))
    assert [(event.kind, event.layer, event.param) for event in published] == [
        (K.WEIGHTS, FC, "weight")]
    monitor.detach()


def test_a_metric_still_gets_the_events_it_needs_and_its_records_are_kept():
    recorder = Recorder()
    monitor = started_monitor(recorder)
    for step in range(2):
        monitor.training_pass_started()
        monitor.optimizer_step_started()
        monitor.emit(K.STEP_STARTED)
        monitor.emit(K.WEIGHTS, layer=FC, param="weight",
                     array=Array.from_numpy(np.full(3, step, np.float32), NO_LAYOUT))
        monitor.emit(K.STEP_FINISHED)
        monitor.optimizer_step_finished()
    monitor.detach()
    assert [(layer, param, step) for layer, param, step, _ in recorder.calls] == [
        ("fc", "weight", 0), ("fc", "weight", 1)]
    assert [float(arrays["weights"][0]) for *_, arrays in recorder.calls] == [0.0, 1.0]


class KeepsRecords(Sink):
    name = "keeps_records"

    def __init__(self) -> None:
        self.records: list = []

    def write(self, records) -> None:
        self.records.extend(records)


def test_values_logged_several_times_in_a_step_are_stored_as_their_mean_and_one_as_itself():
    sink = KeepsRecords()
    monitor = Monitor(BareAdapter(model=None), [], [sink], run="logged").start()
    monitor.log(loss=0.1, accuracy=0.5)
    monitor.log(loss=0.2)
    monitor.optimizer_step_started()
    monitor.optimizer_step_finished()
    monitor.training_pass_started()  # the next step: step 0's records go to the sink
    monitor.log(loss=0.3)
    monitor.detach()
    stored = {(r.step, r.metric): r.value for r in sink.records}
    assert stored == {(0, K.LOSS): float(np.mean([0.1, 0.2])), (0, "accuracy"): 0.5,
                      (1, K.LOSS): 0.3}
