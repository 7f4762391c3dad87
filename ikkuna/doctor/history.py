"""A read-only view of a run's recorded series, the same for a stored run and a live one.

Rules see only this: :class:`StoredHistory` reads a run from the store, :class:`LiveHistory`
keeps, in memory, what a monitor recorded so far (bounded: see :data:`LIVE_HEAD` and
:data:`LIVE_TAIL`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ikkuna.core.events import Record
from ikkuna.core.layers import LayerInfo
from ikkuna.sinks.reader import Run, Series

#: Live mode keeps the first LIVE_HEAD and the last LIVE_TAIL values of every series, plus
#: its first non-finite value: enough for every built-in rule (windows of <= 200 values, a
#: start to compare with, the origin of a NaN) at a fixed cost per series.
LIVE_HEAD = 50
LIVE_TAIL = 500

Key = tuple["str | None", "str | None"]


class History:
    """What rules read: series by metric, (layer, param) keys in model order, layers, kinds.

    ``kinds(metric)`` gives the event kinds a metric is computed from (``("activations",)``
    for ``activation_std``), () for values logged by the user such as ``loss``.
    """

    run: str = ""

    def __init__(self, layers: Sequence[LayerInfo], kinds: Mapping[str, tuple[str, ...]]) -> None:
        self._layers = list(layers)
        self._position = {layer.name: i for i, layer in enumerate(self._layers)}
        self._kinds = dict(kinds)

    def layers(self) -> list[LayerInfo]:
        """The monitored layers in model order (the order the adapter lists them)."""
        return list(self._layers)

    def layer(self, name: str | None) -> LayerInfo | None:
        index = self._position.get(name) if name is not None else None
        return None if index is None else self._layers[index]

    def position(self, layer: str | None) -> int:
        """Index of ``layer`` in model order; -1 for the run (None), after all for unknown."""
        if layer is None:
            return -1
        return self._position.get(layer, len(self._layers))

    def kinds(self, metric: str) -> tuple[str, ...]:
        if metric not in self._kinds and "." in metric:  # a dict metric's "name.key" series
            metric = metric.split(".", 1)[0]
        return self._kinds.get(metric, ())

    def metrics(self) -> list[str]:
        raise NotImplementedError

    def keys(self, metric: str) -> list[Key]:
        """The (layer, param) pairs with a series of ``metric``, in model order ([] if none)."""
        raise NotImplementedError

    def series(self, metric: str, layer: str | None = None, param: str | None = None) -> Series:
        """Scalar values of ``metric`` for one key by step; KeyError if there are none."""
        raise NotImplementedError

    def has(self, metric: str, layer: str | None = None, param: str | None = None) -> bool:
        return (layer, param) in self.keys(metric)

    @property
    def last_step(self) -> int:
        """The last step with any recorded value (-1 when nothing is recorded)."""
        raise NotImplementedError

    def _ordered(self, keys: Iterable[Key]) -> list[Key]:
        def rank(key: Key) -> tuple[int, int, str]:
            layer = self.layer(key[0])
            roles = list(layer.params.values()) if layer is not None else []
            role = roles.index(key[1]) if key[1] in roles else len(roles)
            return (self.position(key[0]), role, key[1] or "")

        return sorted(keys, key=rank)


class StoredHistory(History):
    """A stored run (from :func:`ikkuna.open_run`); series are read once and cached."""

    def __init__(self, run: Run, kinds: Mapping[str, tuple[str, ...]]) -> None:
        super().__init__(run.layers(), kinds)
        self.run = run.name
        self._run = run
        self._metrics = run.metrics()
        self._keys: dict[str, list[Key]] = {}
        self._series: dict[tuple[str, str | None, str | None], Series] = {}
        self._last: int | None = None

    def metrics(self) -> list[str]:
        return list(self._metrics)

    def keys(self, metric: str) -> list[Key]:
        if metric not in self._keys:
            found = self._run.keys(metric) if metric in self._metrics else []
            self._keys[metric] = self._ordered(k for k in found if self._is_scalar(metric, k))
        return list(self._keys[metric])

    def series(self, metric: str, layer: str | None = None, param: str | None = None) -> Series:
        key = (metric, layer, param)
        if key not in self._series:
            self._series[key] = self._run.series(metric, layer, param)
        return self._series[key]

    @property
    def last_step(self) -> int:
        if self._last is None:
            latest = self._run.latest()
            self._last = max((value.step for value in latest), default=-1)
        return self._last

    def _is_scalar(self, metric: str, key: Key) -> bool:
        try:
            self.series(metric, *key)
        except KeyError:  # stored as histograms only
            return False
        return True


class _LiveSeries:
    """The kept values of one series: a head, a tail and the first non-finite value."""

    __slots__ = ("first_bad", "head", "tail")

    def __init__(self) -> None:
        self.head: list[tuple[int, int, float]] = []
        self.tail: deque[tuple[int, int, float]] = deque(maxlen=LIVE_TAIL)
        self.first_bad: tuple[int, int, float] | None = None

    def add(self, point: tuple[int, int, float]) -> None:
        if len(self.head) < LIVE_HEAD:
            self.head.append(point)
        else:
            self.tail.append(point)
        if self.first_bad is None and not math.isfinite(point[2]):
            self.first_bad = point

    def points(self) -> list[tuple[int, int, float]]:
        points = self.head + list(self.tail)
        if self.first_bad is not None and self.first_bad not in points:
            points.append(self.first_bad)
            points.sort(key=lambda p: p[0])
        return points


class LiveHistory(History):
    """What a monitor recorded so far, kept in memory (scalar records only)."""

    def __init__(self, run: str, layers: Callable[[], Sequence[LayerInfo]],
                 kinds: Mapping[str, tuple[str, ...]]) -> None:
        super().__init__([], kinds)
        self.run = run
        self._layers_of = layers
        self._data: dict[str, dict[Key, _LiveSeries]] = {}
        self._built: dict[tuple[str, str | None, str | None], Series] = {}
        self._last = -1

    def add(self, records: Iterable[Record]) -> None:
        """Keep the float values of ``records`` (histograms and vectors are skipped)."""
        self._built.clear()
        for record in records:
            value = record.value
            if isinstance(value, (np.ndarray,)) or not isinstance(value, (float, int, np.floating)):
                continue
            per_key = self._data.setdefault(record.metric, {})
            series = per_key.get((record.layer, record.param))
            if series is None:
                series = per_key[(record.layer, record.param)] = _LiveSeries()
            series.add((record.step, record.epoch, float(value)))
            self._last = max(self._last, record.step)

    def refresh(self, run: str) -> None:
        """Take the monitor's current layers and run name (called before rules run)."""
        self.run = run
        layers = list(self._layers_of())
        if [layer.name for layer in layers] != [layer.name for layer in self._layers]:
            History.__init__(self, layers, self._kinds)

    def metrics(self) -> list[str]:
        return sorted(self._data)

    def keys(self, metric: str) -> list[Key]:
        return self._ordered(self._data.get(metric, {}))

    def series(self, metric: str, layer: str | None = None, param: str | None = None) -> Series:
        built = self._built.get((metric, layer, param))
        if built is not None:
            return built
        found = self._data.get(metric, {}).get((layer, param))
        if found is None:
            raise KeyError(f"run {self.run!r} has no {metric!r} series for layer={layer!r}, "
                           f"param={param!r}")
        points = found.points()
        steps, epochs, values = (np.array(column) for column in zip(*points))
        built = self._built[(metric, layer, param)] = Series(
            metric, layer, param, steps.astype(np.int64), epochs.astype(np.int64),
            values.astype(np.float64))
        return built

    @property
    def last_step(self) -> int:
        return self._last


def metric_kinds(plugins: Any) -> dict[str, tuple[str, ...]]:
    """Metric name -> the event kinds it needs, for every metric ``plugins`` provide.

    Metrics returning a dict store ``name.key`` series; :meth:`History.kinds` looks those
    up by their prefix too.
    """
    return {name: tuple(provided.item.needs) for name, provided in plugins.metrics().items()}
