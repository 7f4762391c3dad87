"""A sink that writes TensorBoard event files: scalars and histograms, one folder a run.

Scalars are written as TensorBoard's ``simple_value``, a float32: TensorBoard's default data
server (``tensorboard --load_fast=auto``, tensorboard-data-server 0.7) leaves out float64
scalar tensors altogether, so float64 would not show. NaN and +-Inf are kept; finite values
beyond float32's range become +-Inf there (the store keeps float64). Events are written with
the ``tensorboard`` package's record format and protos, without TensorFlow.

A plain vector value is shown as a histogram of its finite entries; a vector with none (empty,
or all NaN and +-Inf) has no range to draw and is left out of TensorBoard (the store keeps it).
Like the file sinks, a run never writes into another run's folder: opening a run whose folder
already holds event files raises ``FileExistsError``.
"""

from __future__ import annotations

import functools
import itertools
import os
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import numpy as np

from ikkuna.core.events import Histogram, Record
from ikkuna.core.sink import RunInfo, Sink
from ikkuna.sinks.directories import sink_directory
from ikkuna.sinks.schema import store_directory

#: The folder of the store that named ``"tensorboard"`` sinks write to.
STORE_FOLDER = "tensorboard"
#: Bins of the histogram a plain vector value is shown as.
VECTOR_BINS = 30

_file_numbers = itertools.count()  # tells apart event files one process opens in one second


class TensorBoardSink(Sink):
    """Writes TensorBoard event files (scalars, histograms) to ``<directory>/<run>/``."""

    name = "tensorboard"

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = sink_directory(directory, STORE_FOLDER, "TensorBoardSink")
        self.log_dir: Path | None = None  # set by open(): where this run's event file is
        self._writer: Any = None
        self._lock = threading.Lock()  # callbacks may come from a framework's threads

    @classmethod
    def create(cls, store: str | os.PathLike[str] | None = None) -> TensorBoardSink:
        return cls(store_directory(store) / STORE_FOLDER)

    def open(self, run: RunInfo) -> None:
        tensorboard = _tensorboard()
        self.log_dir = self.directory / run.name
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if any(self.log_dir.glob("events.out.tfevents.*")):
            raise FileExistsError(
                f"{self.log_dir} already holds another run's TensorBoard events; the tensorboard "
                "sink does not merge two runs into one: choose another run= name or directory="
            )
        file_name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                     f"{os.getpid()}.{next(_file_numbers)}")
        file: IO[bytes] = open(self.log_dir / file_name, "xb")  # noqa: SIM115 - closed in close()
        self._writer = tensorboard.RecordWriter(file)
        try:
            self._write_event(tensorboard.event_pb2.Event(wall_time=time.time(),
                                                          file_version="brain.Event:2"))
        except BaseException:
            self._writer = None
            file.close()
            raise

    def write(self, records: Sequence[Record]) -> None:
        protos = _tensorboard()
        by_step: dict[int, list[Any]] = {}
        for record in records:
            if isinstance(record.value, np.ndarray) and not np.isfinite(record.value).any():
                continue  # no finite entry: no histogram to show (see the module docstring)
            by_step.setdefault(record.step, []).append(summary_value(record))
        for step, values in by_step.items():
            summary = protos.summary_pb2.Summary(value=values)
            self._write_event(protos.event_pb2.Event(wall_time=time.time(), step=step,
                                                     summary=summary))

    def _write_event(self, event: Any) -> None:
        with self._lock:
            if self._writer is None:
                raise RuntimeError("TensorBoardSink.write() before open() or after close()")
            self._writer.write(event.SerializeToString())

    def flush(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.flush()

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()  # flushes
                self._writer = None


def record_tag(record: Record) -> str:
    """``metric/layer/param``, ``metric/layer`` without a param, ``metric`` for run-level records."""
    return "/".join(part for part in (record.metric, record.layer, record.param) if part is not None)


def summary_value(record: Record) -> Any:
    """The ``Summary.Value`` of one record: a float32 scalar or a histogram."""
    protos = _tensorboard()
    value = record.value
    if isinstance(value, np.ndarray):
        value = vector_histogram(value)
    if isinstance(value, Histogram):
        return protos.summary_pb2.Summary.Value(tag=record_tag(record), histo=histogram_proto(value))
    return protos.summary_pb2.Summary.Value(tag=record_tag(record), simple_value=float(value))


def vector_histogram(values: np.ndarray, bins: int = VECTOR_BINS) -> Histogram:
    """The finite entries of a 1-d value in ``bins`` equal bins (fewer for short vectors).

    NaN and +-Inf entries have no bin and are left out of the counts.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = values[np.isfinite(values)]
    counts, edges = np.histogram(finite, bins=max(1, min(bins, finite.size)))
    return Histogram(counts, edges)


def histogram_proto(histogram: Histogram) -> Any:
    """A ``HistogramProto`` of the bins from the first to the last non-empty one.

    TensorBoard drops empty outer bins itself and takes the outer limits from ``min`` and
    ``max``, so those are the outer edges of the bins kept; ``sum`` and ``sum_squares`` are
    estimated from bin centres.
    """
    counts, edges = histogram.counts, histogram.edges
    filled = np.flatnonzero(counts)
    first, last = (int(filled[0]), int(filled[-1])) if filled.size else (0, counts.size - 1)
    counts, edges = counts[first:last + 1], edges[first:last + 2]
    centres = (edges[:-1] + edges[1:]) / 2
    return _tensorboard().summary_pb2.HistogramProto(
        min=float(edges[0]), max=float(edges[-1]), num=float(counts.sum()),
        sum=float(np.dot(counts, centres)), sum_squares=float(np.dot(counts, centres**2)),
        bucket_limit=edges[1:].tolist(), bucket=counts.tolist(),
    )


@functools.cache
def _tensorboard() -> SimpleNamespace:
    """The parts of the ``tensorboard`` package the sink uses, imported on first use."""
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError as error:
        raise ImportError(
            "the tensorboard sink needs the tensorboard package: pip install 'ikkuna[tensorboard]'"
        ) from error
    return SimpleNamespace(event_pb2=event_pb2, summary_pb2=summary_pb2, RecordWriter=RecordWriter)
