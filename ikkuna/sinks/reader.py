"""Reading the embedded store: runs, their series as numpy, their last values."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np

from ikkuna.core.errors import RunNotFoundError
from ikkuna.core.events import Histogram
from ikkuna.core.layers import LayerInfo
from ikkuna.sinks.schema import columns, connect, store_directory


@dataclass(frozen=True)
class Series:
    """One metric over steps for one (layer, param): aligned numpy arrays."""

    metric: str
    layer: str | None
    param: str | None
    steps: np.ndarray
    epochs: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return int(self.steps.size)


@dataclass(frozen=True)
class RunSummary:
    """A run as listed by :func:`list_runs`."""

    name: str
    framework: str
    started: float
    finished: float | None
    steps: int
    records: int


@dataclass(frozen=True)
class LatestValue:
    """The last recorded value of one series (a histogram shows as its number of bins)."""

    metric: str
    layer: str | None
    param: str | None
    step: int
    value: float | None
    bins: int | None = None


class Run:
    """One stored run; get it with :func:`open_run`. Use as a context manager or call close()."""

    def __init__(self, connection: sqlite3.Connection, row: tuple[Any, ...]) -> None:
        self._connection = connection
        self._id, self.name, self.framework, self.started, self.finished = row[:5]
        self.config: dict[str, Any] = json.loads(row[5])
        self.versions: dict[str, str] = json.loads(row[6])

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    def layers(self) -> list[LayerInfo]:
        # stores written before LayerInfo.activation have no such column
        activation = "activation" if "activation" in columns(self._connection, "layers") else "NULL"
        rows = self._connection.execute(
            f"SELECT name, kind, params, {activation} FROM layers WHERE run_id = ? ORDER BY position",
            (self._id,),
        )
        return [LayerInfo(name, kind, self.framework, json.loads(params), activation=activation)
                for name, kind, params, activation in rows]

    def metrics(self) -> list[str]:
        rows = self._connection.execute(
            "SELECT DISTINCT metric FROM records WHERE run_id = ? ORDER BY metric", (self._id,)
        )
        return [metric for (metric,) in rows]

    def keys(self, metric: str) -> list[tuple[str | None, str | None]]:
        """The (layer, param) pairs that have a series of ``metric``."""
        rows = self._connection.execute(
            "SELECT DISTINCT layer, param FROM records WHERE run_id = ? AND metric = ?",
            (self._id, metric),
        )
        return sorted(rows, key=lambda key: (key[0] or "", key[1] or ""))

    def series(self, metric: str, layer: str | None = None, param: str | None = None) -> Series:
        """Scalar values of ``metric`` for one layer/param (None for run-level), by step."""
        rows = self._connection.execute(
            "SELECT step, epoch, CASE WHEN is_nan THEN 'nan' ELSE value END FROM records "
            "WHERE run_id = ? AND metric = ? AND layer IS ? AND param IS ? "
            "AND (value IS NOT NULL OR is_nan) ORDER BY step, rowid",
            (self._id, metric, layer, param),
        ).fetchall()
        if not rows:
            self._raise_missing(metric, layer, param, other="histograms")
        steps, epochs, values = zip(*rows)
        return Series(metric, layer, param, np.array(steps, dtype=np.int64),
                      np.array(epochs, dtype=np.int64), np.array(values, dtype=np.float64))

    def histograms(self, metric: str, layer: str | None = None, param: str | None = None
                   ) -> list[tuple[int, Histogram | np.ndarray]]:
        """Vector values of ``metric`` by step: a Histogram where edges were stored."""
        rows = self._connection.execute(
            "SELECT step, vector, edges FROM records WHERE run_id = ? AND metric = ? AND layer IS ? "
            "AND param IS ? AND vector IS NOT NULL ORDER BY step, rowid",
            (self._id, metric, layer, param),
        ).fetchall()
        if not rows:
            self._raise_missing(metric, layer, param, other="series")
        out: list[tuple[int, Histogram | np.ndarray]] = []
        for step, vector, edges in rows:
            counts = np.frombuffer(vector, dtype=np.float64)
            out.append((step, Histogram(counts, np.frombuffer(edges, dtype=np.float64))
                        if edges is not None else counts))
        return out

    def latest(self) -> list[LatestValue]:
        """The last value of every series of the run."""
        rows = self._connection.execute(
            "SELECT r.metric, r.layer, r.param, r.step, "
            "CASE WHEN r.is_nan THEN 'nan' ELSE r.value END, length(r.vector) FROM records r "
            "JOIN (SELECT metric, layer, param, MAX(rowid) AS last FROM records WHERE run_id = ? "
            "GROUP BY metric, layer, param) m ON r.rowid = m.last ORDER BY r.metric",
            (self._id,),
        )
        return [
            LatestValue(metric, layer, param, step, None if value is None else float(value),
                        None if size is None else size // 8)
            for metric, layer, param, step, value, size in rows
        ]

    def problems(self) -> list[dict[str, Any]]:
        rows = self._connection.execute(
            "SELECT step, layer, source, message FROM problems WHERE run_id = ? ORDER BY rowid",
            (self._id,),
        )
        return [dict(step=s, layer=layer, source=src, message=m) for s, layer, src, m in rows]

    def _raise_missing(self, metric: str, layer: str | None, param: str | None, other: str) -> None:
        keys = self.keys(metric)
        if not keys:
            raise KeyError(f"run {self.name!r} has no metric {metric!r}; it has: {', '.join(self.metrics())}")
        if (layer, param) in keys:
            held = "arrays (histograms)" if other == "histograms" else "floats"
            raise KeyError(
                f"run {self.name!r} stores {metric!r} for layer={layer!r}, param={param!r} as "
                f"{held}; read it with run.{other}({metric!r}, {layer!r}, {param!r})"
            )
        raise KeyError(
            f"run {self.name!r} has no {metric!r} series for layer={layer!r}, param={param!r}; "
            f"it has: {', '.join(f'{lay}/{par}' for lay, par in keys)}"
        )


_RUN_COLUMNS = "id, name, framework, started, finished, config, versions"


def open_run(name: str | None = None, store: str | os.PathLike[str] | None = None) -> Run:
    """Open a stored run by name (default: the most recent) in ``store`` (default store)."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"run name must be a str or None, got {type(name).__name__}")
    connection = connect(store_directory(store), create=False)
    if name is None:
        row = connection.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    else:
        row = connection.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE name = ?", (name,)).fetchone()
    if row is None:
        known = [n for (n,) in connection.execute("SELECT name FROM runs ORDER BY id")]
        connection.close()
        wanted = "any run" if name is None else f"run {name!r}"
        raise RunNotFoundError(
            f"no {wanted} in store {store_directory(store)}; runs there: {', '.join(known) or 'none'}"
        )
    return Run(connection, row)


def list_runs(store: str | os.PathLike[str] | None = None) -> list[RunSummary]:
    """Every run in the store, oldest first."""
    connection = connect(store_directory(store), create=False)
    try:
        rows = connection.execute(
            "SELECT r.name, r.framework, r.started, r.finished, "
            "(SELECT COUNT(DISTINCT step) FROM records WHERE run_id = r.id), "
            "(SELECT COUNT(*) FROM records WHERE run_id = r.id) FROM runs r ORDER BY r.id"
        ).fetchall()
    finally:
        connection.close()
    return [RunSummary(*row) for row in rows]
