"""Built-in sinks, registered as the internal plugin ``ikkuna.sinks``."""

from __future__ import annotations

from ikkuna.core.hookspecs import hookimpl
from ikkuna.sinks.store import StoreSink


@hookimpl
def ikkuna_sinks() -> list[type]:
    return [StoreSink]
