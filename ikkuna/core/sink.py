"""The sink plugin contract: where records go."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ikkuna.core.events import Record
from ikkuna.core.layers import LayerInfo


@dataclass(frozen=True)
class RunInfo:
    """What a sink learns when a run opens: its name, framework, layers and configuration."""

    name: str
    framework: str
    layers: tuple[LayerInfo, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)


class Sink:
    """Base class of sink plugins.

    The monitor calls :meth:`open` once, then :meth:`write` with each step's records and
    :meth:`flush` at each step's end, and :meth:`close` on ``detach()``. A sink that raises is
    disabled with one warning; the other sinks go on.
    """

    name: ClassVar[str] = ""

    @classmethod
    def create(cls, store: str | os.PathLike[str] | None = None) -> Sink:
        """Make the sink when it is named in ``attach(sinks=...)``.

        ``store`` is the store's directory as a Path: attach's ``store=``, else
        ``$IKKUNA_STORE``, else ``./ikkuna-runs`` (:func:`ikkuna.store_directory`). Sinks that
        write files put them under it by default; override this to pass it on. The base class
        ignores ``store``.
        """
        return cls()

    def open(self, run: RunInfo) -> None:
        """Prepare for ``run``; may rename it (see ``run_name``)."""

    @property
    def run_name(self) -> str | None:
        """The name this sink finally stored the run under, if it had to change it."""
        return None

    def write(self, records: Sequence[Record]) -> None:
        raise NotImplementedError(f"sink {self.name!r} does not implement write()")

    def flush(self) -> None:
        """Make written records durable (a sink may finish that in the background: then
        :meth:`wait` waits for it, and :meth:`close` finishes it)."""

    def wait(self) -> None:
        """Return once the flushed records can be read back (``monitor.series()`` calls it);
        a sink that flushes in the background waits for it here."""

    def close(self) -> None:
        """Flush and release resources; called once."""
