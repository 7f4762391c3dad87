"""Where the embedded store lives and the SQL that lays it out."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

STORE_VARIABLE = "IKKUNA_STORE"
DEFAULT_STORE_DIRECTORY = "ikkuna-runs"
DATABASE_FILE = "ikkuna.sqlite"
BUSY_TIMEOUT_MS = 30_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    framework TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    config TEXT NOT NULL,
    versions TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS layers (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    activation TEXT
);
CREATE TABLE IF NOT EXISTS records (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    step INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    metric TEXT NOT NULL,
    layer TEXT,
    param TEXT,
    value REAL,
    vector BLOB,
    edges BLOB,
    is_nan INTEGER NOT NULL DEFAULT 0,
    rank INTEGER
);
CREATE INDEX IF NOT EXISTS records_by_series ON records (run_id, metric, layer, param, step);
CREATE TABLE IF NOT EXISTS problems (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    step INTEGER,
    layer TEXT,
    source TEXT NOT NULL,
    message TEXT NOT NULL,
    details TEXT NOT NULL
);
"""


def store_directory(path: str | os.PathLike[str] | None = None) -> Path:
    """The store's directory: ``path``, else ``$IKKUNA_STORE``, else ``./ikkuna-runs``."""
    if path is None:
        path = os.environ.get(STORE_VARIABLE) or DEFAULT_STORE_DIRECTORY
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"store= must be a directory path (str or os.PathLike), got {type(path).__name__}")
    return Path(path)


def connect(directory: Path, *, create: bool) -> sqlite3.Connection:
    """Open the store's database; ``create`` makes the directory and tables if missing."""
    database = directory / DATABASE_FILE
    if create:
        directory.mkdir(parents=True, exist_ok=True)
    elif not database.exists():
        raise FileNotFoundError(
            f"no ikkuna store at {database}; train with ikkuna.attach(...) first, or pass the "
            f"store directory (--store / store= / ${STORE_VARIABLE})"
        )
    # Framework callbacks may run on the framework's own threads (TensorFlow runs host
    # callbacks on its thread pool): the store serializes access itself.
    connection = sqlite3.connect(database, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                 check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if create:
        _set_up(connection)
    return connection


def _set_up(connection: sqlite3.Connection) -> None:
    """WAL mode and the tables. Switching to WAL needs the database to itself, and SQLite
    answers "database is locked" at once (not after the busy timeout) while another process
    sets up the same new store: retried until the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.executescript(SCHEMA)
            _add_missing_columns(connection)
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


#: Columns added after a table was first released: (table, column, SQL type). Stores made
#: before them get them on the next write; readers treat them as NULL where missing.
ADDED_COLUMNS = (("layers", "activation", "TEXT"), ("records", "rank", "INTEGER"))


def columns(connection: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    for table, column, sql_type in ADDED_COLUMNS:
        if column not in columns(connection, table):
            try:
                connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
            except sqlite3.OperationalError as error:  # another process added it meanwhile
                if "duplicate column" not in str(error):
                    raise
