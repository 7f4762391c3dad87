"""A sink that prints the latest scalar values as a compact table every few steps."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Sequence
from typing import TextIO

import numpy as np

from ikkuna.core.events import Histogram, Record
from ikkuna.core.sink import Sink
from ikkuna.core.tables import format_table, format_value

#: (metric, layer, param) of one value.
_Key = tuple[str, str | None, str | None]


class ConsoleSink(Sink):
    """Prints the latest scalar values as a table every ``every`` steps (to stderr by default).

    It keeps the latest value of each (metric, layer, param) as records come, and at a flush
    whose step reaches a new multiple of ``every`` (the first step at or after 0, ``every``,
    ``2 * every``, ...) prints them all, headed by that step; a value recorded at an earlier step
    (metrics on their own schedule) shows that step after it, as in ``0.25@9``. ``metrics`` restricts what is shown, in that column order; histograms and vectors are left
    out. ``stream`` defaults to ``sys.stderr``, looked up when printing. Where tqdm is imported,
    text goes through ``tqdm.write`` so a live progress bar is not broken.
    """

    name = "console"

    def __init__(self, every: int = 10, metrics: Iterable[str] | None = None,
                 stream: TextIO | None = None) -> None:
        if isinstance(every, bool) or not isinstance(every, int):
            raise TypeError(f"ConsoleSink(every=...) takes an int >= 1 (print every n-th step), "
                            f"got {type(every).__name__}: {every!r}")
        if every < 1:
            raise ValueError(f"ConsoleSink(every=...) takes an int >= 1, got {every}")
        if stream is not None and not callable(getattr(stream, "write", None)):
            raise TypeError(f"ConsoleSink(stream=...) takes a text stream (with write()) or None, "
                            f"got {type(stream).__name__}")
        self.every = every
        self.metrics = _metric_names(metrics)
        self.stream = stream
        self._latest: dict[_Key, tuple[int, float]] = {}  # (step, value) of each key
        self._step: int | None = None  # the latest step a shown value came from
        self._printed_block = -1  # step // every of the last table printed
        self._lock = threading.Lock()  # callbacks may come from a framework's threads

    def write(self, records: Sequence[Record]) -> None:
        with self._lock:
            for record in records:
                value = record.value
                if isinstance(value, (Histogram, np.ndarray)) or not self._shows(record):
                    continue
                key = (record.metric, record.layer, record.param)
                if key not in self._latest or self._latest[key][0] <= record.step:
                    self._latest[key] = (record.step, float(value))
                if self._step is None or record.step > self._step:
                    self._step = record.step

    def _shows(self, record: Record) -> bool:
        return self.metrics is None or record.metric in self.metrics

    def flush(self) -> None:
        with self._lock:
            step = self._step
            if step is None or step // self.every <= self._printed_block:
                return
            self._printed_block = step // self.every
            text = format_step(step, dict(self._latest), self.metrics)
        self._print(text)

    def close(self) -> None:
        self.flush()

    def _print(self, text: str) -> None:
        stream = sys.stderr if self.stream is None else self.stream
        tqdm = sys.modules.get("tqdm")
        if tqdm is not None:  # a live progress bar is cleared, then redrawn below the text
            tqdm.tqdm.write(text, file=stream)
        else:
            stream.write(text + "\n")
            stream.flush()


def _metric_names(metrics: Iterable[str] | None) -> tuple[str, ...] | None:
    if metrics is None:
        return None
    try:
        names = None if isinstance(metrics, str) else tuple(metrics)
    except TypeError:
        names = None
    if names is None or not all(isinstance(name, str) for name in names):
        raise TypeError(f"ConsoleSink(metrics=...) takes a list of metric names or None, "
                        f"got {metrics!r}")
    return names


def format_step(step: int, values: dict[_Key, tuple[int, float]],
                metrics: Sequence[str] | None = None) -> str:
    """``step N  metric=value ...`` for run-level values, then one row per layer or layer.param
    (layers in the order their values came, a layer's own row before its params') and one column
    per metric (``metrics`` in that order, else sorted).

    ``values``: the (step, value) of each (metric, layer, param); a value from a step other than
    ``step`` is shown as ``value@itsstep``.
    """
    shown_values = {key: format_value(value) + ("" if at == step else f"@{at}")
                    for key, (at, value) in values.items()}
    line = f"step {step}" + "".join(
        f"  {metric if param is None else f'{metric}.{param}'}={value}"
        for (metric, layer, param), value in shown_values.items() if layer is None
    )
    per_layer = {key: value for key, value in shown_values.items() if key[1] is not None}
    if not per_layer:
        return line
    shown = sorted({metric for metric, _, _ in per_layer})
    columns = [m for m in metrics if m in shown] if metrics is not None else shown
    layers = list(dict.fromkeys(layer for _, layer, _ in per_layer))
    rows = sorted(dict.fromkeys((layer, param) for _, layer, param in per_layer),
                  key=lambda row: (layers.index(row[0]), row[1] is not None))
    table = [
        (str(layer) if param is None else f"{layer}.{param}",
         *(per_layer.get((metric, layer, param), "") for metric in columns))
        for layer, param in rows
    ]
    return line + "\n" + format_table(("layer", *columns), table, indent="  ")
