"""A sink that writes, when a run ends, a markdown table of every scalar series it recorded."""

from __future__ import annotations

import math
import numbers
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import ikkuna

#: The folder of the store that a ``markdown_summary`` sink named in ``attach`` writes to.
STORE_FOLDER = "summaries"
COLUMNS = ("metric", "layer", "param", "values", "last step", "last", "min", "max")

#: (metric, layer, param) of one series.
SeriesKey = tuple[str, "str | None", "str | None"]


@dataclass
class SeriesSummary:
    """What is kept of one series: how many values, the latest (by step) and the finite range."""

    count: int = 0
    last_step: int = -1
    last: float = math.nan
    low: float = math.nan  # NaN until a finite value comes
    high: float = math.nan

    def add(self, step: int, value: float) -> None:
        self.count += 1
        if step >= self.last_step:
            self.last_step, self.last = step, value
        if math.isfinite(value):
            self.low = value if math.isnan(self.low) else min(self.low, value)
            self.high = value if math.isnan(self.high) else max(self.high, value)


class MarkdownSummarySink(ikkuna.Sink):
    """Writes ``<directory>/<run>.md`` when the run ends: for every scalar series (metric,
    layer, param) the number of values, the last value and its step, and the smallest and
    largest finite value. Histograms and vectors are left out.

    ``directory`` defaults to the ``summaries`` folder of the store (``attach(store=...)``,
    else ``$IKKUNA_STORE``, else ``./ikkuna-runs``). The file is created when the run opens,
    so a run whose summary already exists fails there, and is never overwritten.
    """

    name = "markdown_summary"

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        if directory is not None and not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"{type(self).__name__}(directory=...) takes a directory path "
                            f"(str or os.PathLike) or None, got {type(directory).__name__}")
        self.directory = (Path(directory) if directory is not None
                          else ikkuna.store_directory() / STORE_FOLDER)
        self.file_path: Path | None = None  # set by open(): this run's file
        self._file: IO[str] | None = None
        self._run: ikkuna.RunInfo | None = None
        self._series: dict[SeriesKey, SeriesSummary] = {}
        self._lock = threading.Lock()  # callbacks may come from a framework's threads

    @classmethod
    def create(cls, store: str | os.PathLike[str] | None = None) -> MarkdownSummarySink:
        return cls(ikkuna.store_directory(store) / STORE_FOLDER)

    def open(self, run: ikkuna.RunInfo) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{run.name}.md"
        try:
            self._file = open(path, "x", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except FileExistsError:
            raise FileExistsError(
                f"{path} already exists; the {self.name} sink does not overwrite another run's "
                "summary: choose another run= name or directory"
            ) from None
        self.file_path, self._run = path, run
        self._series = {}  # a sink instance reused for another run starts empty

    def write(self, records: Sequence[ikkuna.Record]) -> None:
        with self._lock:
            for record in records:
                if isinstance(record.value, numbers.Real):
                    key = (record.metric, record.layer, record.param)
                    self._series.setdefault(key, SeriesSummary()).add(record.step,
                                                                      float(record.value))

    def close(self) -> None:
        with self._lock:
            if self._file is None:
                return
            try:
                assert self._run is not None
                self._file.write(render(self._run, self._series))
            finally:
                self._file.close()
                self._file = None


def render(run: ikkuna.RunInfo, series: Mapping[SeriesKey, SeriesSummary]) -> str:
    """The markdown of a run's summary, series sorted by metric, layer and param."""
    about = (f"Framework: {run.framework}. Every scalar series: how many values, the last one "
             "and the smallest and largest finite one.")
    lines = [f"# ikkuna run `{run.name}`", "", about, ""]
    if not series:
        return "\n".join([*lines, "No scalar values were recorded.", ""])
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for (metric, layer, param), s in sorted(series.items(), key=lambda item: _sort_key(item[0])):
        cells = (metric, layer or "", param or "", str(s.count), str(s.last_step),
                 _number(s.last), _number(s.low), _number(s.high))
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join([*lines, ""])


def _sort_key(key: SeriesKey) -> tuple[str, str, str]:
    return key[0], key[1] or "", key[2] or ""


def _number(value: float) -> str:
    return f"{value:.6g}"
