"""Built-in sinks, registered as the internal plugin ``ikkuna.sinks``."""

from __future__ import annotations

from ikkuna.core.hookspecs import hookimpl
from ikkuna.sinks.console import ConsoleSink
from ikkuna.sinks.files import CsvSink, JsonlSink
from ikkuna.sinks.store import StoreSink
from ikkuna.sinks.tensorboard import TensorBoardSink


@hookimpl
def ikkuna_sinks() -> list[type]:
    return [StoreSink, TensorBoardSink, JsonlSink, CsvSink, ConsoleSink]
