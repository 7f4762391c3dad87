"""The bus: groups the kinds a metric needs for one (layer, param, step) and calls the metric."""

from __future__ import annotations

import contextlib
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ikkuna.core import kinds as K
from ikkuna.core.arrays import CHANNELS_LAST, Array
from ikkuna.core.events import Event, Histogram, Record
from ikkuna.core.layers import LayerInfo
from ikkuna.core.metric import EventGroup, Metric
from ikkuna.core.schedule import as_layer_filter, as_schedule
from ikkuna.core.statistics import COMBINE, MOMENTS, SUM_SQUARES

GroupKey = tuple[int, "str | None", "str | None"]  # (slot index, layer name, param)


@dataclass(frozen=True)
class Problem:
    """A plugin failure that ikkuna isolated: who failed, where, and the traceback."""

    source: str
    message: str
    step: int | None = None
    layer: str | None = None
    details: str = ""


@dataclass
class MetricSlot:
    """An active metric with its own layer filter and schedule, and whether it still runs."""

    metric: Metric
    plugin: str = "ikkuna.metrics"
    accepts_layer: Callable[[LayerInfo], bool] = field(init=False)
    scheduled: Callable[[int], bool] = field(init=False)
    waits_for_step_end: bool = field(init=False)
    summarizes: bool = field(init=False)
    disabled: bool = False

    def __post_init__(self) -> None:
        selected = as_layer_filter(self.metric.layers)
        applies_to = self.metric.applies_to
        answers: dict[str, bool] = {}  # layers are fixed: each is asked about once

        def accepts_layer(layer: LayerInfo) -> bool:
            found = answers.get(layer.name)
            if found is None:
                found = answers[layer.name] = bool(selected(layer) and applies_to(layer))
            return found

        self.accepts_layer = accepts_layer
        self.scheduled = as_schedule(self.metric.every)
        self.waits_for_step_end = any(k in K.BATCHED_KINDS or k == K.LOSS for k in self.needs)
        self.summarizes = type(self.metric).finish_step is not Metric.finish_step

    @property
    def needs(self) -> tuple[str, ...]:
        return type(self.metric).needs

    @property
    def statistic(self) -> str | None:
        return type(self.metric).statistic

    @property
    def name(self) -> str:
        return type(self.metric).name


class Bus:
    """Routes events of the current step to metric slots and turns results into records.

    Kinds that may arrive several times a step (see ``kinds.BATCHED_KINDS``) are joined along
    the batch axis and dispatched when the step closes; other groups are dispatched as soon
    as their last kind arrives.
    """

    def __init__(self, slots: list[MetricSlot], run: str, on_problem: Callable[[Problem], None]):
        self.slots = slots
        self.run = run
        self._on_problem = on_problem
        self._by_kind: dict[str, list[int]] = {}
        for index, slot in enumerate(slots):
            for kind in slot.needs:
                self._by_kind.setdefault(kind, []).append(index)
        # kinds read as moments by some metrics and as sums of squares by others: the moments
        # come first, and the sum of squares is read off them (one pass, not two)
        self._moments_first = {
            kind: [i for i in indices if slots[i].statistic == MOMENTS]
            for kind, indices in self._by_kind.items()
            if {slots[i].statistic for i in indices} >= {MOMENTS, SUM_SQUARES}
        }
        self._active: set[int] = set(range(len(slots)))
        self._summarizing = [index for index, slot in enumerate(slots) if slot.summarizes]
        self._pending: dict[GroupKey, dict[str, list[Event]]] = {}
        self._layers: dict[GroupKey, LayerInfo | None] = {}
        self._records: list[Record] = []
        self._step = 0
        self._epoch = 0

    def needed_kinds(self) -> frozenset[str]:
        """Kinds some metric that has not been disabled needs, on any step."""
        return frozenset(k for k, idx in self._by_kind.items() if any(not self.slots[i].disabled for i in idx))

    def open_step(self, step: int, epoch: int, scheduled: bool = True) -> frozenset[str]:
        """Start ``step``; return the kinds needed on it (what the adapter should produce).

        ``scheduled=False`` (the monitor's own ``every=`` skips the step) makes every metric idle.
        """
        self._step, self._epoch = step, epoch
        self._active = {
            i
            for i, slot in enumerate(self.slots)
            if scheduled and not slot.disabled and slot.scheduled(step)
        }
        return frozenset(k for k, idx in self._by_kind.items() if any(i in self._active for i in idx))

    def takes(self, kind: str) -> bool:
        """Whether some metric needs ``kind`` at all, disabled or not (else an event of it goes
        nowhere); cheap, unlike :meth:`needed_kinds`."""
        return kind in self._by_kind

    def publish(self, event: Event) -> None:
        """Hand one event of the current step to the metrics that need it.

        The event's native tensor is valid only during this call: if some group keeps the
        event for later, what it needs is taken before returning (the statistics its metric
        declared, or else a numpy copy of the values); then the tensor is released.
        """
        keeps_values = False
        keeps_statistics: dict[str, list[int]] = {}  # statistic -> the slots that keep it
        if event.kind in self._moments_first and event.array is not None:
            self._moments_before_sums_of_squares(event)
        for index in self._by_kind.get(event.kind, ()):
            if index not in self._active:
                continue
            slot = self.slots[index]
            if event.layer is not None and not slot.accepts_layer(event.layer):
                continue
            key = (index, event.layer.name if event.layer else None, event.param)
            group = self._pending.setdefault(key, {})
            self._layers[key] = event.layer
            if event.kind in K.BATCHED_KINDS:
                group.setdefault(event.kind, []).append(event)
            else:
                group[event.kind] = [event]
            if not slot.waits_for_step_end and len(group) == len(slot.needs):
                self._dispatch(key)
            elif slot.statistic is None:
                keeps_values = True
            else:
                keeps_statistics.setdefault(slot.statistic, []).append(index)
        array = event.array
        if array is not None:
            for name, indices in keeps_statistics.items():
                if array.has_values:
                    self._keep_statistic(array, name, indices, event.layer)
            if keeps_values and array.has_values:
                array.numpy()
            array.release()

    def _keep_statistic(self, array: Array, name: str, indices: list[int],
                        layer: LayerInfo | None) -> None:
        """Compute a statistic kept to the step's end; if that raises (values it cannot
        summarize), the metrics that wanted it are disabled, as if their compute had raised."""
        try:
            array.statistic(name)
        except Exception as error:  # noqa: BLE001 - a metric's input must never stop training
            for index in indices:
                if not self.slots[index].disabled:
                    self._disable(self.slots[index], error, layer)

    def _moments_before_sums_of_squares(self, event: Event) -> None:
        """Compute the array's moments first where a metric of this step reads them."""
        for index in self._moments_first[event.kind]:
            if index in self._active and (event.layer is None
                                          or self.slots[index].accepts_layer(event.layer)):
                if event.array.has_values:
                    # a failure is met again, and isolated, by the metric that reads them
                    with contextlib.suppress(Exception):
                        event.array.statistic(MOMENTS)
                return

    def close_step(self) -> list[Record]:
        """Dispatch what waited for the step's end; return and forget the step's records."""
        for key in list(self._pending):
            if len(self._pending[key]) == len(self.slots[key[0]].needs):
                self._dispatch(key)
        self._pending.clear()
        self._layers.clear()
        for index in self._summarizing:  # in slot order, as the records were before
            slot = self.slots[index]
            if index in self._active and not slot.disabled:
                try:
                    result = slot.metric.finish_step(self._step)
                    self._records.extend(self._to_records(slot.name, result, None, None))
                except Exception as error:  # noqa: BLE001 - a plugin must never stop training
                    self._disable(slot, error, None)
        records, self._records = self._records, []
        return records

    def _dispatch(self, key: GroupKey) -> None:
        events = self._pending.pop(key)
        layer = self._layers.pop(key, None)
        slot = self.slots[key[0]]
        if slot.disabled:
            return
        group = EventGroup(
            {kind: _join(found, slot.statistic) for kind, found in events.items()},
            step=self._step,
            epoch=self._epoch,
            layer=layer,
            param=key[2],
        )
        try:
            result = slot.metric.compute(group)
            self._records.extend(self._to_records(slot.name, result, key[1], key[2]))
        except Exception as error:  # noqa: BLE001 - a plugin must never stop training
            self._disable(slot, error, layer)

    def _disable(self, slot: MetricSlot, error: Exception, layer: LayerInfo | None) -> None:
        slot.disabled = True
        self._active.discard(self.slots.index(slot))
        where = f"layer {layer.name!r}, " if layer is not None else ""
        message = (
            f"ikkuna: metric {slot.name!r} (plugin {slot.plugin!r}) raised "
            f"{type(error).__name__}: {error} at {where}step {self._step}; "
            "it is disabled for the rest of this run, the other metrics go on"
        )
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        self._on_problem(
            Problem(
                source=f"metric:{slot.name}",
                message=message,
                step=self._step,
                layer=layer.name if layer else None,
                details="".join(traceback.format_exception(error)),
            )
        )

    def _to_records(self, name: str, result: Any, layer: str | None, param: str | None):
        def record(metric: str, value: Any) -> Record:
            return Record(self.run, self._step, self._epoch, metric, layer, param, value)

        if result is None:
            return []
        if type(result) is float:  # the common case, first
            return [record(name, result)]
        if isinstance(result, Histogram):
            return [record(name, result)]
        if isinstance(result, Mapping):
            return [record(f"{name}.{key}", _as_float(name, v)) for key, v in result.items()]
        if isinstance(result, np.ndarray) and result.ndim == 1:
            return [record(name, np.array(result, dtype=np.float64))]
        return [record(name, _as_float(name, result))]


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, (bool, str, bytes)) or np.ndim(value) != 0:
        raise TypeError(
            f"metric {name!r} returned {type(value).__name__} {np.shape(value)}; a metric "
            "returns a float, a dict of floats, a 1-d numpy array, an ikkuna.Histogram or None"
        )
    return float(value)


def _join(events: list[Event], statistic: str | None = None) -> Event:
    """One event for a kind: several arrivals in a step are joined along the batch axis.

    Arrivals whose shapes differ beyond the batch axis (a sequence layer fed sequences of two
    lengths) are joined as rows of channels, ``(-1, channels)``, when their channels agree;
    otherwise the latest arrival stands. For a metric that reads a ``statistic``, the
    arrivals' statistics are combined instead (their values were not kept).
    """
    if len(events) == 1:
        return events[0]
    first = events[0]
    if first.array is None:
        values = [e.value for e in events if e.value is not None]
        return Event(first.kind, first.step, first.epoch, first.layer, first.param,
                     value=float(np.mean(values)) if values else None)
    arrays = [e.array for e in events if e.array is not None]
    layout = first.array.layout
    if statistic is not None:
        combined = COMBINE[statistic]([a.statistic(statistic) for a in arrays])
        batch = sum(a.shape[0] for a in arrays) if layout.batch_axis == 0 and first.array.ndim else None
        shape = first.array.shape if batch is None else (batch, *first.array.shape[1:])
        array = Array.of_statistics({statistic: combined}, shape=shape, dtype=first.array.dtype,
                                    layout=layout)
        return Event(first.kind, first.step, first.epoch, first.layer, first.param, array=array)
    try:
        joined = np.concatenate([a.numpy() for a in arrays], axis=layout.batch_axis or 0)
    except ValueError:
        rows = [a.as_channels_last() for a in arrays]
        rows = [r.reshape(-1, r.shape[-1]) if r.ndim else r.reshape(1, 1) for r in rows]
        if len({r.shape[1] for r in rows}) != 1:
            return events[-1]
        joined, layout = np.concatenate(rows), CHANNELS_LAST
    array = Array(joined, np.asarray, shape=joined.shape, dtype=str(joined.dtype), layout=layout)
    return Event(first.kind, first.step, first.epoch, first.layer, first.param, array=array)
