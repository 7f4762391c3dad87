"""The built-in sinks are registered as plugins and made by name."""

from __future__ import annotations

from ikkuna.core.plugins import PluginManager
from ikkuna.sinks import ikkuna_sinks
from ikkuna.sinks.console import ConsoleSink
from ikkuna.sinks.files import CsvSink, JsonlSink
from ikkuna.sinks.store import StoreSink
from ikkuna.sinks.tensorboard import TensorBoardSink

BUILTIN = [StoreSink, TensorBoardSink, JsonlSink, CsvSink, ConsoleSink]


def test_the_builtin_plugin_provides_every_sink():
    assert ikkuna_sinks() == BUILTIN


def test_every_builtin_sink_is_known_by_its_name_with_a_one_line_description():
    known = PluginManager().sinks()
    for sink_class in BUILTIN:
        assert known[sink_class.name].item is sink_class
        assert sink_class.__doc__ and sink_class.__doc__.strip().split("\n")[0].endswith(".")


def test_named_file_sinks_write_under_the_store_and_the_console_prints_every_tenth_step(tmp_path):
    assert TensorBoardSink.create(tmp_path).directory == tmp_path / "tensorboard"
    assert JsonlSink.create(tmp_path).directory == tmp_path / "files"
    assert CsvSink.create(tmp_path).directory == tmp_path / "files"
    assert ConsoleSink.create(tmp_path).every == 10
