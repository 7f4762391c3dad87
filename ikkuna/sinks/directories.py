"""Where sinks that write files put them: a given directory, or a folder of the store."""

from __future__ import annotations

import os
from pathlib import Path

from ikkuna.sinks.schema import store_directory


def sink_directory(directory: str | os.PathLike[str] | None, folder: str, sink: str) -> Path:
    """``directory`` as a Path; None means ``<default store>/<folder>`` (see ``store_directory``).

    ``sink`` names the sink class in the error for a ``directory`` that is not a path.
    """
    if directory is None:
        return store_directory(None) / folder
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(
            f"{sink}(directory=...) takes a directory path (str or os.PathLike) or None, got "
            f"{type(directory).__name__}: {directory!r}"
        )
    return Path(directory)
