"""The embedded default sink: SQLite in WAL mode, one row per record, committed on a thread of
its own every :data:`COMMIT_SECONDS` while training goes on."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ikkuna.core.bus import Problem
from ikkuna.core.events import Histogram, Record
from ikkuna.core.sink import RunInfo, Sink
from ikkuna.sinks.background import Periodic
from ikkuna.sinks.schema import connect, store_directory

_MAX_NAME_TRIES = 10_000
#: WAL pages the writer commits before SQLite copies them back into the database (its
#: default is 1000). Each step rewrites the same index pages, so checkpointing less often
#: copies each of them once instead of many times, and syncs the file less often: the
#: store's cost per step fell from about 0.9 to 0.45 ms on the MLP benchmark. The WAL file
#: grows to about 40 MB meanwhile; every commit is as durable as before.
WAL_CHECKPOINT_PAGES = 10_000
#: Seconds between the store's commits. A commit costs about 200 µs of CPU on the benchmark
#: machine whatever it holds (its WAL frames, its locks), and each row about 8 µs: a commit a
#: step cost a 1.3 ms Keras MLP step about a fifth of its time. A killed process loses the
#: records of at most the last this many seconds (and the step in progress).
COMMIT_SECONDS = 0.5
#: Rows handed over and not yet taken by a commit, at most: a flush that finds more waits for
#: their commit. A training loop can produce rows faster than the commit thread stores them (a
#: small jitted JAX MLP with the default metrics: about 200 steps and 10,000 rows a second,
#: against a thread that shares the interpreter's lock with the loop); unbounded, they piled
#: up by 6 KiB a step. This many scalar rows hold about 13 MiB (twice that while a commit
#: of as many runs).
MOST_UNCOMMITTED_ROWS = 50_000
#: The longest a flush waits for that commit. A commit that takes longer is waiting for the
#: database (another process's transaction, up to SQLite's busy timeout): then the flushes
#: stop waiting, and rows gather again, until a commit ends.
MOST_SECONDS_WAITED = 1.0


class StoreSink(Sink):
    """Writes records to ``<path>/ikkuna.sqlite`` (default ``./ikkuna-runs``).

    A flush hands the step's records over; a thread of the sink's own commits what was handed
    over every ``commit_seconds`` (default :data:`COMMIT_SECONDS`; 0: after every flush), in
    one transaction, so a killed process loses at most the records of the last
    ``commit_seconds`` and of the step in progress. :meth:`wait` commits at once and waits for
    it (``monitor.series()`` does), :meth:`close` commits the rest. Several processes may write
    the same store at once (SQLite WAL with a busy timeout); each run has its own rows. A child
    forked from the process (``os.fork``) stores nothing through this sink.
    """

    name = "store"

    def __init__(self, path: str | os.PathLike[str] | None = None,
                 commit_seconds: float = COMMIT_SECONDS) -> None:
        if isinstance(commit_seconds, bool) or not isinstance(commit_seconds, (int, float)) \
                or not commit_seconds >= 0:
            raise ValueError(f"commit_seconds must be a number >= 0, got {commit_seconds!r}")
        self.path = store_directory(path)
        self._connection: sqlite3.Connection | None = None
        self._run_id: int | None = None
        self._run_name: str | None = None
        self._pending: list[tuple[Any, ...]] = []
        self._handed_over: list[tuple[Any, ...]] = []  # flushed, for the next commit
        self._commit_waits_for_the_database = False  # a flush waited for a commit in vain
        self._pending_lock = threading.Lock()  # callbacks may come from a framework's threads
        self._lock = threading.RLock()  # the connection: the commit thread's and the caller's
        self._commits = Periodic("ikkuna-store-commits", self._commit, float(commit_seconds))
        self._pid = os.getpid()  # a forked child stores nothing through its parent's connection

    @classmethod
    def create(cls, store: str | os.PathLike[str] | None = None) -> StoreSink:
        return cls(path=store)

    @property
    def run_name(self) -> str | None:
        return self._run_name

    def open(self, run: RunInfo) -> None:
        self._connection = connect(self.path, create=True)
        self._connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        self._run_id, self._run_name = self._insert_run(run)
        self._connection.executemany(
            "INSERT INTO layers (run_id, position, name, kind, params, activation) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (self._run_id, position, layer.name, layer.kind, json.dumps(dict(layer.params)),
                 layer.activation)
                for position, layer in enumerate(run.layers)
            ],
        )

    def _insert_run(self, run: RunInfo) -> tuple[int, str]:
        assert self._connection is not None
        for attempt in range(1, _MAX_NAME_TRIES):
            name = run.name if attempt == 1 else f"{run.name}-{attempt}"
            try:
                cursor = self._connection.execute(
                    "INSERT INTO runs (name, framework, started, config, versions) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (name, run.framework, time.time(), json.dumps(dict(run.config), default=str),
                     json.dumps(dict(run.versions))),
                )
                return int(cursor.lastrowid or 0), name
            except sqlite3.IntegrityError:
                continue
        raise RuntimeError(f"could not find a free run name starting with {run.name!r}")

    def write(self, records: Sequence[Record]) -> None:
        if self._forked():
            return
        rows = [self._row(record) for record in records]
        with self._pending_lock:
            self._pending.extend(rows)

    def _row(self, record: Record) -> tuple[Any, ...]:
        value, vector, edges, is_nan = record.value, None, None, 0
        if isinstance(value, Histogram):
            vector, edges, value = value.counts.tobytes(), value.edges.tobytes(), None
        elif isinstance(value, np.ndarray):
            vector, value = np.asarray(value, dtype=np.float64).tobytes(), None
        elif isinstance(value, float) and math.isnan(value):
            value, is_nan = None, 1  # SQLite would store NaN as NULL
        return (self._run_id, record.step, record.epoch, record.metric, record.layer,
                record.param, value, vector, edges, is_nan, record.rank)

    def flush(self) -> None:
        """Hand the records written since the last flush over to the next commit (an error of
        the last commit is raised here, once); beyond :data:`MOST_UNCOMMITTED_ROWS` rows not
        yet committed, commit them and wait for it (at most :data:`MOST_SECONDS_WAITED`)."""
        if not self._pending or self._forked():  # a step without records costs nothing
            return
        with self._pending_lock:
            self._handed_over.extend(self._pending)
            self._pending = []
            uncommitted = len(self._handed_over)
        if self._connection is None:
            return
        if uncommitted > MOST_UNCOMMITTED_ROWS and not self._commit_waits_for_the_database:
            # the loop waits for the store rather than piling rows up
            ended = self._commits.run_now(timeout=MOST_SECONDS_WAITED)
            self._commit_waits_for_the_database = not ended
        else:
            self._commits.poke()

    def wait(self) -> None:
        """Commit what was flushed now, and return once it is committed (readers see it)."""
        if self._connection is not None and not self._forked():
            self._commits.run_now()

    def _commit(self) -> None:
        """Commit the rows handed over so far, in one transaction (on the commit thread)."""
        try:
            self._commit_handed_over()
        finally:
            self._commit_waits_for_the_database = False

    def _commit_handed_over(self) -> None:
        with self._pending_lock:
            rows, self._handed_over = self._handed_over, []
        if not rows:
            return
        with self._lock:
            if self._connection is None:
                return
            with self._transaction():
                self._connection.executemany(
                    "INSERT INTO records (run_id, step, epoch, metric, layer, param, value, "
                    "vector, edges, is_nan, rank) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )

    def _forked(self) -> bool:
        """Whether this is a child forked from the process that opened the store: the parent's
        connection, and its locks (which the parent's commit thread may have held), are not
        the child's to use."""
        return os.getpid() != self._pid

    def note_problem(self, problem: Problem) -> None:
        if self._forked():
            return
        with self._lock:
            if self._connection is None:
                return
            self._note(problem)

    def _note(self, problem: Problem) -> None:
        with self._transaction():
            self._connection.execute(
                "INSERT INTO problems (run_id, step, layer, source, message, details) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (self._run_id, problem.step, problem.layer, problem.source, problem.message,
                 problem.details),
            )

    def close(self) -> None:
        if self._connection is None or self._forked():
            return
        try:
            try:
                self.flush()  # may raise the last commit's error
            finally:
                self._commits.close()  # the last commit, or its error raised
            with self._lock:
                if self._connection is not None:
                    with self._transaction():
                        self._connection.execute(
                            "UPDATE runs SET finished = ? WHERE id = ?", (time.time(), self._run_id)
                        )
        finally:
            with self._lock:
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

    def _transaction(self) -> _Transaction:
        assert self._connection is not None
        return _Transaction(self._connection, self._lock)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error), holding the sink's lock throughout."""

    def __init__(self, connection: sqlite3.Connection, lock: threading.RLock) -> None:
        self._connection = connection
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            self._connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self._connection.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()
