"""Sinks that write one JSON Lines or CSV file a run, and readers that load them back.

Columns: run, step, epoch, metric, layer, param, value; a histogram adds ``counts`` and
``edges`` and a plain 1-d value ``vector`` (``value`` is then null); ``rank`` is the process
that measured it in distributed training (left out, or empty, otherwise). Non-finite numbers are
the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (protobuf's JSON convention), so
the files stay standard JSON and CSV; floats are written so that they read back exactly.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from ikkuna.core.events import Histogram, Record
from ikkuna.core.sink import RunInfo, Sink
from ikkuna.sinks.directories import sink_directory
from ikkuna.sinks.schema import store_directory

#: The folder of the store that named ``"jsonl"`` and ``"csv"`` sinks write to.
STORE_FOLDER = "files"
COLUMNS = ("run", "step", "epoch", "metric", "layer", "param", "value", "counts", "edges", "vector",
           "rank")
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class _FileSink(Sink):
    """One text file a run, ``<directory>/<run><suffix>``; flushed at every step's end."""

    suffix: str = ""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = sink_directory(directory, STORE_FOLDER, type(self).__name__)
        self.file_path: Path | None = None  # set by open(): this run's file
        self._file: IO[str] | None = None
        self._lock = threading.Lock()  # callbacks may come from a framework's threads

    @classmethod
    def create(cls, store: str | os.PathLike[str] | None = None) -> _FileSink:
        return cls(store_directory(store) / STORE_FOLDER)

    def open(self, run: RunInfo) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.file_path = self.directory / f"{run.name}{self.suffix}"
        try:
            file = open(self.file_path, "x", encoding="utf-8", newline="")  # noqa: SIM115
        except FileExistsError:
            raise FileExistsError(
                f"{self.file_path} already exists; the {self.name} sink neither overwrites nor "
                "appends to another run's file: choose another run= name or directory"
            ) from None
        try:
            self._begin(file)
        except BaseException:
            file.close()
            raise
        self._file = file

    def write(self, records: Sequence[Record]) -> None:
        with self._lock:
            if self._file is None:
                raise RuntimeError(f"{type(self).__name__}.write() before open() or after close()")
            self._write(self._file, [encode_record(record) for record in records])

    def flush(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _begin(self, file: IO[str]) -> None:
        """Write what comes before the first record."""

    def _write(self, file: IO[str], rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` with one ``file.write``, so a concurrent reader sees no row split
        between two writes except at the operating system's own buffer boundaries."""
        raise NotImplementedError


class JsonlSink(_FileSink):
    """Writes each run's records as JSON Lines to ``<directory>/<run>.jsonl``."""

    name = "jsonl"
    suffix = ".jsonl"

    def _write(self, file: IO[str], rows: list[dict[str, Any]]) -> None:
        file.write("".join(json.dumps(row, allow_nan=False) + "\n" for row in rows))


class CsvSink(_FileSink):
    """Writes each run's records to ``<directory>/<run>.csv``, arrays as JSON cells."""

    name = "csv"
    suffix = ".csv"

    def _begin(self, file: IO[str]) -> None:
        csv.writer(file).writerow(COLUMNS)

    def _write(self, file: IO[str], rows: list[dict[str, Any]]) -> None:
        text = io.StringIO()
        csv.writer(text).writerows([_csv_cell(row.get(column)) for column in COLUMNS]
                                   for row in rows)
        file.write(text.getvalue())


def encode_record(record: Record) -> dict[str, Any]:
    """A record as a JSON-ready dict (the columns of the module docstring that apply)."""
    row: dict[str, Any] = {
        "run": record.run, "step": int(record.step), "epoch": int(record.epoch),
        "metric": record.metric, "layer": record.layer, "param": record.param, "value": None,
    }
    if record.rank is not None:
        row["rank"] = int(record.rank)
    value = record.value
    if isinstance(value, Histogram):
        row["counts"], row["edges"] = _numbers(value.counts), _numbers(value.edges)
    elif isinstance(value, np.ndarray):
        row["vector"] = _numbers(value)
    else:
        row["value"] = _number(value)
    return row


def decode_record(row: dict[str, Any]) -> Record:
    """The record :func:`encode_record` made ``row`` from."""
    if row.get("counts") is not None:
        value: Any = Histogram(_array(row["counts"]), _array(row["edges"]))
    elif row.get("vector") is not None:
        value = _array(row["vector"])
    else:
        value = _float(row["value"])
    rank = row.get("rank")
    return Record(row["run"], int(row["step"]), int(row["epoch"]), row["metric"], row["layer"],
                  row["param"], value, rank=None if rank in (None, "") else int(rank))


def read_jsonl(path: str | os.PathLike[str]) -> list[Record]:
    """The records of a file the ``jsonl`` sink wrote, in order.

    A last line without its ``\\n`` is left out with a warning: the run may still be writing it.
    """
    text = _complete_lines(path, quoted=False)
    return [decode_record(json.loads(line)) for line in text.split("\n") if line.strip()]


def read_csv(path: str | os.PathLike[str]) -> list[Record]:
    """The records of a file the ``csv`` sink wrote, in order (empty layer/param cells are None).

    A last row without its line end is left out with a warning: the run may still be writing it.
    """
    text = _complete_lines(path, quoted=True)
    return [decode_record(_from_csv(row)) for row in csv.DictReader(io.StringIO(text, newline=""))]


def _complete_lines(path: str | os.PathLike[str], quoted: bool) -> str:
    """The text of ``path`` up to its last line end, warning about what comes after it.

    ``quoted``: a line end inside a CSV quoted cell (an odd number of ``"`` before it) does not
    end a row.
    """
    data = Path(path).read_bytes()
    end = data.rfind(b"\n") + 1
    if quoted:
        quotes = data.count(b'"', 0, end)
        while end > 0 and quotes % 2:
            previous = data.rfind(b"\n", 0, end - 1) + 1
            quotes -= data.count(b'"', previous, end)
            end = previous
    if end < len(data):
        warnings.warn(f"{path}: left out {len(data) - end} bytes of an incomplete last line; "
                      "the run may still be writing it", stacklevel=3)
    return data[:end].decode("utf-8")


def _number(value: Any) -> float | str:
    number = float(value)
    if math.isfinite(number):
        return number
    return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")


def _numbers(values: np.ndarray) -> list[float | str]:
    return [_number(v) for v in np.asarray(values, dtype=np.float64).reshape(-1).tolist()]


def _float(value: float | str) -> float:
    return _NON_FINITE[value] if isinstance(value, str) else float(value)


def _array(values: list[float | str]) -> np.ndarray:
    return np.array([_float(v) for v in values], dtype=np.float64)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return json.dumps(value, allow_nan=False)
    return value if isinstance(value, str) else repr(value)


def _from_csv(row: dict[str, str]) -> dict[str, Any]:
    decoded: dict[str, Any] = {column: row.get(column) or None for column in COLUMNS}
    for column in ("counts", "edges", "vector"):
        if decoded[column] is not None:
            decoded[column] = json.loads(decoded[column])
    if decoded["value"] is not None and decoded["value"] not in _NON_FINITE:
        decoded["value"] = float(decoded["value"])
    return decoded
