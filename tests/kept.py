"""Test helpers shared across test packages: the resident memory (the in-memory sink is
:class:`ikkuna.testing.MemorySink`)."""

from __future__ import annotations

import os
from pathlib import Path


def rss_mib() -> float:
    """This process's resident memory now (not its peak), in MiB (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
