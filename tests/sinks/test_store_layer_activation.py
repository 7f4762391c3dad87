"""The store keeps each layer's activation, and reads and extends stores made before it did."""

from __future__ import annotations

import sqlite3

import ikkuna
from ikkuna.core.layers import LayerInfo
from ikkuna.core.sink import RunInfo
from ikkuna.sinks.schema import DATABASE_FILE
from ikkuna.sinks.store import StoreSink

LAYERS = (
    LayerInfo("dense", "dense", "numpy", {"weight": "weight"}),
    LayerInfo("tanh", "other", "numpy", activation="tanh"),
)

#: The layers table as stores made before LayerInfo.activation have it.
OLD_SCHEMA = """
CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, framework TEXT NOT NULL,
                   started REAL NOT NULL, finished REAL, config TEXT NOT NULL,
                   versions TEXT NOT NULL);
CREATE TABLE layers (run_id INTEGER NOT NULL REFERENCES runs(id), position INTEGER NOT NULL,
                     name TEXT NOT NULL, kind TEXT NOT NULL, params TEXT NOT NULL);
INSERT INTO runs VALUES (1, 'old', 'numpy', 0.0, 1.0, '{}', '{}');
INSERT INTO layers VALUES (1, 0, 'dense', 'dense', '{"weight": "weight"}');
"""


def write_run(store, name: str) -> None:
    sink = StoreSink(store)
    sink.open(RunInfo(name=name, framework="numpy", layers=LAYERS))
    sink.close()


def activations(store, name: str) -> dict[str, str | None]:
    with ikkuna.open_run(name, store=store) as run:
        return {layer.name: layer.activation for layer in run.layers()}


def test_layer_activations_round_trip(tmp_path):
    write_run(tmp_path, "new")
    assert activations(tmp_path, "new") == {"dense": None, "tanh": "tanh"}


def test_a_store_made_before_activations_reads_as_none_and_takes_new_runs(tmp_path):
    connection = sqlite3.connect(tmp_path / DATABASE_FILE)
    connection.executescript(OLD_SCHEMA)
    connection.close()
    assert activations(tmp_path, "old") == {"dense": None}
    write_run(tmp_path, "new")
    assert activations(tmp_path, "new") == {"dense": None, "tanh": "tanh"}
    assert activations(tmp_path, "old") == {"dense": None}
