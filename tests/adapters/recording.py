"""Recording metrics and an emit spy shared by the adapter tests of every framework."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import ikkuna
from ikkuna.core import kinds as K
from ikkuna.core.arrays import Layout
from ikkuna.metrics import BUILTIN_METRICS

#: Event kinds that carry an array, which every adapter must produce.
ARRAY_KINDS = (
    K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.GRADIENTS, K.WEIGHTS, K.UPDATES,
    K.INPUTS, K.OUTPUTS, K.LABELS,
)
#: Every built-in metric that runs without a probe batch (``probe=``).
ALL_METRIC_NAMES = [metric.name for metric in BUILTIN_METRICS if metric.cost != "probe"]
#: Built-in metrics that rightly record nothing on the tests' tiny models in a few steps.
MAY_RECORD_NOTHING = frozenset({
    "spectral_alpha",  # needs at least 5 non-zero eigenvalues per weight matrix
    "saturated_fraction",  # needs a bounded activation (tanh, sigmoid); the models use ReLU
    "dead_unit_fraction",  # records once per 10 steps it sees; every= leaves fewer
})
#: The metrics every adapter test expects values of after a short training.
EXPECTED_METRIC_NAMES = frozenset(ALL_METRIC_NAMES) - MAY_RECORD_NOTHING


@dataclass
class Seen:
    """What one call of a recording metric received."""

    layer: str | None
    param: str | None
    step: int
    epoch: int
    values: np.ndarray | None  # a private copy of the array, if the event had one
    value: float | None
    layout: Layout | None
    dtype: str | None
    matrix: np.ndarray | None  # Array.as_matrix() for per-parameter kinds


class Recorder(ikkuna.Metric):
    """Remembers every call it gets; records nothing. Subclassed per kind by :func:`recorder`."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.seen: list[Seen] = []

    def compute(self, group: ikkuna.EventGroup) -> None:
        kind = self.needs[0]
        event = group.event(kind)
        array = event.array
        self.seen.append(Seen(
            layer=group.layer.name if group.layer is not None else None,
            param=group.param,
            step=group.step,
            epoch=group.epoch,
            values=None if array is None else np.array(array.numpy(), copy=True),
            value=event.value,
            layout=None if array is None else array.layout,
            dtype=None if array is None else array.dtype,
            matrix=array.as_matrix().copy() if array is not None and kind in K.PARAMETER_KINDS
            else None,
        ))

    def steps(self, layer: str | None = None, param: str | None = None) -> list[int]:
        return [s.step for s in self.seen if s.layer == layer and s.param == param]

    def seen_layers(self) -> set[str | None]:
        return {s.layer for s in self.seen}

    def at(self, step: int, layer: str | None = None, param: str | None = None) -> Seen:
        """The one call for (step, layer, param); fails if there were none or several."""
        found = [s for s in self.seen if (s.step, s.layer, s.param) == (step, layer, param)]
        assert len(found) == 1, f"{self.name}: {len(found)} calls for {(step, layer, param)}"
        return found[0]


def recorder(kind: str, **options: Any) -> Recorder:
    """A fresh recording metric named ``record_<kind>`` that needs ``kind``."""
    cls: Callable[..., Recorder] = type(
        f"Record{kind.title().replace('_', '')}", (Recorder,),
        {"name": f"record_{kind}", "needs": (kind,)},
    )
    return cls(**options)


def recorders(*kinds: str, **options: Any) -> dict[str, Recorder]:
    return {kind: recorder(kind, **options) for kind in kinds}


def assert_same_records(got: dict[str, Recorder], wanted: dict[str, Recorder],
                        kinds: tuple[str, ...]) -> None:
    """Each kind's recorder saw the same arrivals (step, layer, parameter, value, and any
    values kept) in both runs, and at least one."""
    for kind in kinds:
        assert len(got[kind].seen) == len(wanted[kind].seen) > 0, kind
        for one, other in zip(got[kind].seen, wanted[kind].seen):
            assert (one.step, one.layer, one.param, one.value) == (
                other.step, other.layer, other.param, other.value)
            if other.values is not None:
                np.testing.assert_array_equal(one.values, other.values, kind)


def spy_on_emitted_events(monitor: Any) -> list[tuple[str, int, str | None, str | None]]:
    """Record (kind, step, layer name, param) of every event the adapter emits from now on."""
    emitted: list[tuple[str, int, str | None, str | None]] = []
    emit = monitor.emit

    def spy(kind: str, **fields: Any) -> None:
        layer = fields.get("layer")
        emitted.append((kind, monitor.step, layer.name if layer else None, fields.get("param")))
        emit(kind, **fields)

    monitor.emit = spy
    return emitted


def spy_on_emit(monitor: Any) -> list[tuple[str, int]]:
    """Record (kind, step) of every event the adapter emits from now on."""
    emitted: list[tuple[str, int]] = []
    emit = monitor.emit

    def spy(kind: str, **fields: Any) -> None:
        emitted.append((kind, monitor.step))
        emit(kind, **fields)

    monitor.emit = spy
    return emitted
