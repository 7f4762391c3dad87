"""Store queries the distributed tests share."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def duplicate_records(store: Path) -> list[tuple]:
    """Every (run, metric, layer, param, step) stored more than once, with its count."""
    with sqlite3.connect(store / "ikkuna.sqlite") as connection:
        return connection.execute(
            "SELECT run_id, metric, layer, param, step, COUNT(*) FROM records "
            "GROUP BY run_id, metric, layer, param, step HAVING COUNT(*) > 1").fetchall()
