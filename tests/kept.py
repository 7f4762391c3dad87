"""Test helpers shared across test packages: an in-memory sink and the resident memory."""

from __future__ import annotations

import os
from pathlib import Path

from ikkuna.core.sink import Sink


class Kept(Sink):
    """Keeps every record it is given, in memory."""

    name = "kept"

    def __init__(self) -> None:
        self.records: list = []

    def write(self, records) -> None:
        self.records.extend(records)


def rss_mib() -> float:
    """This process's resident memory now (not its peak), in MiB (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
