"""The embedded store: StoreSink writes, ikkuna.open_run / ikkuna.list_runs read back."""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing

import numpy as np
import pytest

import ikkuna
from ikkuna.core.bus import Problem
from ikkuna.core.errors import RunNotFoundError
from ikkuna.core.events import Histogram, Record
from ikkuna.core.layers import LayerInfo
from ikkuna.core.sink import RunInfo
from ikkuna.sinks import store as store_module
from ikkuna.sinks.schema import DATABASE_FILE
from ikkuna.sinks.store import StoreSink

LAYERS = (
    LayerInfo("encoder.0", "dense", "numpy", {"weight": "weight", "bias": "bias"}),
    LayerInfo("head", "conv2d", "numpy", {"kernel": "weight"}),
)


def open_sink(path, name="exp", commit_seconds=None, **info) -> StoreSink:
    sink = StoreSink(path) if commit_seconds is None else StoreSink(path, commit_seconds)
    sink.open(RunInfo(name=name, framework=info.pop("framework", "numpy"), layers=LAYERS, **info))
    return sink


def record(run, step, metric, value, layer="encoder.0", param="weight", epoch=0) -> Record:
    return Record(run, step, epoch, metric, layer, param, value)


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


# --- round trip --------------------------------------------------------------------------------


def test_float_records_round_trip_as_a_series_by_step(store):
    sink = open_sink(store)
    for step in range(3):
        sink.write([record("exp", step, "weight_norm", 1.5 * step, epoch=step // 2)])
        sink.flush()
    sink.close()
    with ikkuna.open_run("exp", store=store) as run:
        series = run.series("weight_norm", "encoder.0", "weight")
    assert isinstance(series, ikkuna.Series)
    assert len(series) == 3
    np.testing.assert_array_equal(series.steps, [0, 1, 2])
    np.testing.assert_array_equal(series.epochs, [0, 0, 1])
    np.testing.assert_array_equal(series.values, [0.0, 1.5, 3.0])
    assert series.values.dtype == np.float64


def test_run_level_records_with_no_layer_round_trip(store):
    sink = open_sink(store)
    sink.write([record("exp", 0, "loss", 2.5, layer=None, param=None)])
    sink.close()
    with ikkuna.open_run("exp", store=store) as run:
        np.testing.assert_array_equal(run.series("loss").values, [2.5])
        assert run.keys("loss") == [(None, None)]


def test_series_of_one_layer_does_not_include_other_layers_or_params(store):
    sink = open_sink(store)
    sink.write([
        record("exp", 0, "weight_norm", 1.0, param="weight"),
        record("exp", 0, "weight_norm", 2.0, param="bias"),
        record("exp", 0, "weight_norm", 3.0, layer="head"),
    ])
    sink.close()
    with ikkuna.open_run("exp", store=store) as run:
        np.testing.assert_array_equal(run.series("weight_norm", "encoder.0", "bias").values, [2.0])
        np.testing.assert_array_equal(run.series("weight_norm", "head", "weight").values, [3.0])
        assert run.keys("weight_norm") == [
            ("encoder.0", "bias"), ("encoder.0", "weight"), ("head", "weight")]


def test_vector_record_round_trips_as_float64_array(store):
    sink = open_sink(store)
    sink.write([record("exp", 0, "singular_values", np.array([3.0, 2.0, 0.5]))])
    sink.close()
    with ikkuna.open_run("exp", store=store) as run:
        ((step, vector),) = run.histograms("singular_values", "encoder.0", "weight")
    assert step == 0
    assert not isinstance(vector, Histogram)
    assert vector.dtype == np.float64
    np.testing.assert_array_equal(vector, [3.0, 2.0, 0.5])


def test_histogram_record_round_trips_with_counts_and_edges(store):
    sink = open_sink(store)
    sink.write([
        record("exp", 0, "weight_histogram", Histogram([1, 0, 4], [-1.0, 0.0, 1.0, 2.0])),
        record("exp", 1, "weight_histogram", Histogram([2, 3], [0.0, 0.5, 1.0])),
    ])
    sink.close()
    with ikkuna.open_run("exp", store=store) as run:
        stored = run.histograms("weight_histogram", "encoder.0", "weight")
    assert [step for step, _ in stored] == [0, 1]
    first = stored[0][1]
    assert isinstance(first, Histogram)
    np.testing.assert_array_equal(first.counts, [1.0, 0.0, 4.0])
    np.testing.assert_array_equal(first.edges, [-1.0, 0.0, 1.0, 2.0])
    np.testing.assert_array_equal(stored[1][1].counts, [2.0, 3.0])


def test_run_keeps_framework_config_versions_and_layers(store):
    sink = open_sink(store, framework="torch", config={"lr": 0.1, "metrics": ["weight_norm"]},
                     versions={"numpy": "2.0"})
    sink.close()
    with ikkuna.open_run("exp", store=store) as run:
        assert run.name == "exp"
        assert run.framework == "torch"
        assert run.config == {"lr": 0.1, "metrics": ["weight_norm"]}
        assert run.versions == {"numpy": "2.0"}
        layers = run.layers()
    assert [(layer.name, layer.kind, dict(layer.params)) for layer in layers] == [
        ("encoder.0", "dense", {"weight": "weight", "bias": "bias"}),
        ("head", "conv2d", {"kernel": "weight"}),
    ]
    assert all(layer.framework == "torch" for layer in layers)


def test_metrics_lists_each_stored_metric_once_sorted(store):
    sink = open_sink(store)
    sink.write([record("exp", s, m, 1.0) for s in range(2) for m in ("b_metric", "a_metric")])
    sink.close()
    with ikkuna.open_run("exp", store=store) as run:
        assert run.metrics() == ["a_metric", "b_metric"]


def test_list_runs_counts_steps_and_records_oldest_first(store):
    first = open_sink(store, "first")
    first.write([record("first", step, "m", 1.0) for step in range(3)])
    first.write([record("first", 2, "other", 1.0)])
    first.close()
    second = open_sink(store, "second")
    second.flush()
    runs = ikkuna.list_runs(store)
    assert [(r.name, r.framework, r.steps, r.records) for r in runs] == [
        ("first", "numpy", 3, 4), ("second", "numpy", 0, 0)]
    assert runs[0].finished is not None and runs[0].finished >= runs[0].started
    assert runs[1].finished is None  # still open
    second.close()
    assert ikkuna.list_runs(store)[1].finished is not None


def test_default_store_is_taken_from_ikkuna_store_variable(private_store):
    sink = StoreSink()
    sink.open(RunInfo(name="default", framework="numpy"))
    sink.write([record("default", 0, "m", 4.0, layer=None, param=None)])
    sink.close()
    assert (private_store / DATABASE_FILE).exists()
    assert [r.name for r in ikkuna.list_runs()] == ["default"]
    with ikkuna.open_run("default") as run:
        np.testing.assert_array_equal(run.series("m").values, [4.0])


# --- run names, WAL ----------------------------------------------------------------------------


def test_run_names_are_made_unique_with_a_counter(store):
    sinks = [open_sink(store, "exp") for _ in range(3)]
    assert [sink.run_name for sink in sinks] == ["exp", "exp-2", "exp-3"]
    for index, sink in enumerate(sinks):
        sink.write([record(sink.run_name, 0, "m", float(index))])
        sink.close()
    assert [r.name for r in ikkuna.list_runs(store)] == ["exp", "exp-2", "exp-3"]
    with ikkuna.open_run("exp-2", store=store) as run:
        np.testing.assert_array_equal(run.series("m", "encoder.0", "weight").values, [1.0])


def test_open_run_without_a_name_opens_the_most_recent_run(store):
    open_sink(store, "older").close()
    open_sink(store, "newer").close()
    with ikkuna.open_run(store=store) as run:
        assert run.name == "newer"


def test_store_database_is_in_wal_mode(store):
    open_sink(store).close()
    connection = sqlite3.connect(store / DATABASE_FILE)
    try:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    finally:
        connection.close()
    assert mode.lower() == "wal"


# --- read API errors ---------------------------------------------------------------------------


def test_unknown_run_raises_run_not_found_listing_the_runs(store):
    open_sink(store, "alpha").close()
    open_sink(store, "beta").close()
    with pytest.raises(RunNotFoundError) as error:
        ikkuna.open_run("gamma", store=store)
    message = str(error.value)
    assert "gamma" in message
    assert "alpha" in message and "beta" in message
    assert isinstance(error.value, LookupError)


def test_open_run_in_a_store_with_no_runs_says_there_are_none(store):
    open_sink(store, "x").close()  # creates the store
    connection = sqlite3.connect(store / DATABASE_FILE)
    connection.execute("DELETE FROM runs")
    connection.commit()
    connection.close()
    with pytest.raises(RunNotFoundError, match="none"):
        ikkuna.open_run(store=store)


def test_unknown_metric_raises_key_error_listing_the_metrics(store):
    sink = open_sink(store)
    sink.write([record("exp", 0, "weight_norm", 1.0), record("exp", 0, "update_norm", 2.0)])
    sink.close()
    with ikkuna.open_run("exp", store=store) as run:
        with pytest.raises(KeyError) as error:
            run.series("gradient_norm", "encoder.0", "weight")
        with pytest.raises(KeyError) as histogram_error:
            run.histograms("gradient_histogram", "encoder.0", "weight")
    for message in (str(error.value), str(histogram_error.value)):
        assert "gradient_" in message
        assert "weight_norm" in message and "update_norm" in message


def test_known_metric_of_unknown_layer_raises_key_error_listing_the_layers(store):
    sink = open_sink(store)
    sink.write([record("exp", 0, "weight_norm", 1.0)])
    sink.close()
    with ikkuna.open_run("exp", store=store) as run, pytest.raises(KeyError) as error:
        run.series("weight_norm", "decoder.0", "weight")
    assert "decoder.0" in str(error.value)
    assert "encoder.0/weight" in str(error.value)


def test_missing_store_raises_file_not_found_naming_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ikkuna.open_run("exp", store=missing)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ikkuna.list_runs(missing)
    assert not missing.exists()  # reading never creates a store


def test_bad_store_argument_raises_type_error():
    with pytest.raises(TypeError, match="store="):
        ikkuna.list_runs(42)


def test_bad_run_name_type_raises_type_error(store):
    open_sink(store).close()
    with pytest.raises(TypeError, match="run name"):
        ikkuna.open_run(3, store=store)


# --- latest values and problems ----------------------------------------------------------------


def test_latest_gives_the_last_value_of_every_series(store):
    sink = open_sink(store)
    for step in range(3):
        sink.write([
            record("exp", step, "weight_norm", 10.0 + step),
            record("exp", step, "weight_norm", 20.0 + step, param="bias"),
            record("exp", step, "weight_histogram", Histogram([1, 2, 3, 4], np.arange(5.0))),
        ])
        sink.flush()
    sink.write([record("exp", 3, "loss", 0.5, layer=None, param=None)])
    sink.close()
    with ikkuna.open_run("exp", store=store) as run:
        latest = {(v.metric, v.layer, v.param): v for v in run.latest()}
    assert set(latest) == {
        ("weight_norm", "encoder.0", "weight"),
        ("weight_norm", "encoder.0", "bias"),
        ("weight_histogram", "encoder.0", "weight"),
        ("loss", None, None),
    }
    assert (latest["weight_norm", "encoder.0", "weight"].step,
            latest["weight_norm", "encoder.0", "weight"].value) == (2, 12.0)
    assert latest["weight_norm", "encoder.0", "bias"].value == 22.0
    histogram = latest["weight_histogram", "encoder.0", "weight"]
    assert (histogram.step, histogram.value, histogram.bins) == (2, None, 4)
    assert (latest["loss", None, None].step, latest["loss", None, None].value) == (3, 0.5)


def test_latest_only_covers_its_own_run(store):
    first = open_sink(store, "first")
    first.write([record("first", 0, "weight_norm", 1.0)])
    first.close()
    second = open_sink(store, "second")
    second.write([record("second", 5, "weight_norm", 9.0)])
    second.close()
    with ikkuna.open_run("first", store=store) as run:
        assert [(v.step, v.value) for v in run.latest()] == [(0, 1.0)]


def test_noted_problems_are_stored_with_the_run(store):
    sink = open_sink(store)
    sink.note_problem(Problem(source="metric:broken", message="broken raised", step=4,
                              layer="encoder.0", details="Traceback ..."))
    sink.note_problem(Problem(source="sink:tensorboard", message="disk full"))
    with ikkuna.open_run("exp", store=store) as run:  # visible before close
        problems = run.problems()
    sink.close()
    assert problems == [
        {"step": 4, "layer": "encoder.0", "source": "metric:broken", "message": "broken raised"},
        {"step": None, "layer": None, "source": "sink:tensorboard", "message": "disk full"},
    ]


# --- transactions ------------------------------------------------------------------------------


def stored_steps(store, name="exp") -> list[int]:
    with ikkuna.open_run(name, store=store) as run:
        try:
            return run.series("m", "encoder.0", "weight").steps.tolist()
        except KeyError:
            return []


def test_written_records_are_visible_to_other_connections_only_after_flush(store):
    sink = open_sink(store)
    sink.write([record("exp", 0, "m", 1.0)])
    sink.flush()
    sink.write([record("exp", 1, "m", 2.0)])
    sink.wait()
    assert stored_steps(store) == [0]
    sink.flush()
    sink.wait()
    assert stored_steps(store) == [0, 1]
    sink.close()


def test_flushed_records_are_committed_on_the_stores_thread_every_commit_seconds(store):
    sink = open_sink(store, commit_seconds=60)
    sink.write([record("exp", 0, "m", 1.0)])
    sink.flush()
    assert stored_steps(store) == []  # handed over, not committed before 60 s
    sink.wait()  # commits at once
    assert stored_steps(store) == [0]
    sink.close()
    often = open_sink(store, name="often", commit_seconds=0.05)
    often.write([record("often", 3, "m", 1.0)])
    often.flush()
    deadline = time.monotonic() + 30
    while stored_steps(store, "often") != [3] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stored_steps(store, "often") == [3]  # committed without being asked
    often.close()


def test_a_flush_returns_while_the_connection_is_busy(store):
    sink = open_sink(store, commit_seconds=0)
    with sink._lock:  # the commit thread cannot begin a transaction
        for step in range(3):
            sink.write([record("exp", step, "m", 1.0)])
            sink.flush()  # returns all the same: the training step goes on
        assert stored_steps(store) == []
    sink.wait()
    assert stored_steps(store) == [0, 1, 2]
    sink.close()


def test_a_flush_beyond_the_most_uncommitted_rows_waits_for_their_commit(store, monkeypatch):
    """A loop that makes rows faster than the commit thread stores them cannot pile them up."""
    monkeypatch.setattr(store_module, "MOST_UNCOMMITTED_ROWS", 10)
    sink = open_sink(store, commit_seconds=60)
    for step in range(10):
        sink.write([record("exp", step, "m", 1.0)])
        sink.flush()
    assert stored_steps(store) == []  # ten rows: within the bound, left for the next commit
    sink.write([record("exp", 10, "m", 1.0)])
    sink.flush()
    assert stored_steps(store) == list(range(11))  # committed before the flush returned
    sink.write([record("exp", 11, "m", 1.0)])
    sink.flush()
    assert stored_steps(store) == list(range(11))  # one row again: the thread's, in time
    sink.close()
    assert stored_steps(store) == list(range(12))


def test_beyond_the_bound_a_flush_waits_once_while_another_process_holds_the_database(
        store, monkeypatch):
    """Waiting on another process's transaction would stall every step: the first flush beyond
    the bound gives up after MOST_SECONDS_WAITED, the next ones let rows gather until a commit
    ends, and nothing is lost."""
    monkeypatch.setattr(store_module, "MOST_UNCOMMITTED_ROWS", 10)
    monkeypatch.setattr(store_module, "MOST_SECONDS_WAITED", 0.2)
    sink = open_sink(store, commit_seconds=60)
    waits = []
    run_now = sink._commits.run_now
    monkeypatch.setattr(sink._commits, "run_now",
                        lambda timeout=None: waits.append(timeout) or run_now(timeout))
    other = sqlite3.connect(store / DATABASE_FILE, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process, in the middle of a transaction
    try:
        for first in (0, 11, 22):  # each flush hands over 11 rows, beyond the bound
            sink.write([record("exp", step, "m", 1.0) for step in range(first, first + 11)])
            sink.flush()
        assert waits == [0.2]  # the first flush waited, in vain; the next two did not wait
        assert stored_steps(store) == []
    finally:
        other.execute("ROLLBACK")
        other.close()
    sink.wait()
    assert stored_steps(store) == list(range(33))
    monkeypatch.setattr(store_module, "MOST_SECONDS_WAITED", 30.0)  # a loaded machine's commit
    sink.write([record("exp", step, "m", 1.0) for step in range(33, 44)])
    sink.flush()  # the commits ended: a flush beyond the bound waits again
    assert waits == [0.2, None, 30.0]  # (None: wait()'s)
    assert stored_steps(store) == list(range(44))
    sink.close()


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # JAX's, where the suite loaded it
def test_a_forked_child_stores_nothing_through_its_parents_sink(store):
    sink = open_sink(store, commit_seconds=0)
    sink.write([record("exp", 0, "m", 1.0)])
    sink.flush()
    sink.wait()  # no commit under way while forking
    child = os.fork()
    if child == 0:  # the child: its steps, problems and close must not touch the store
        try:
            sink.write([record("exp", 1, "m", 2.0)])
            sink.flush()
            sink.wait()
            sink.note_problem(Problem(source="child", message="from the child", step=1))
            sink.close()
        finally:
            os._exit(0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sink.write([record("exp", 2, "m", 3.0)])
    sink.close()
    assert stored_steps(store) == [0, 2]
    with ikkuna.open_run("exp", store=store) as run:
        assert run.problems() == []


def test_commit_seconds_must_be_a_number_of_zero_or_more(store):
    for wrong in (-1, "1", None, True, float("nan")):
        with pytest.raises(ValueError, match="commit_seconds must be a number >= 0"):
            StoreSink(store, commit_seconds=wrong)


def test_close_flushes_what_was_written(store):
    sink = open_sink(store)
    sink.write([record("exp", 0, "m", 1.0)])
    sink.close()
    assert stored_steps(store) == [0]


def test_each_commit_is_one_transaction_that_fails_as_a_whole(store):
    sink = open_sink(store)
    sink.write([record("exp", 0, "m", 1.0)])
    sink.flush()
    sink.wait()
    sink.write([record("exp", 1, "m", 2.0), record("exp", 1, "m", 3.0),
                record("exp", 1, "m", object())])  # the last row cannot be stored
    sink.flush()
    with pytest.raises(sqlite3.Error):
        sink.wait()  # the commit failed on the store's thread
    assert stored_steps(store) == [0]  # nothing of the failed commit, all of the earlier one
    sink.write([record("exp", 2, "m", 4.0)])
    sink.close()  # the connection is usable after the rollback
    assert stored_steps(store) == [0, 2]


def test_flush_with_nothing_written_adds_no_records(store):
    sink = open_sink(store)
    sink.flush()
    sink.close()
    assert ikkuna.list_runs(store)[0].records == 0


def test_flush_with_nothing_written_opens_no_transaction(store):
    sink = open_sink(store)
    statements: list[str] = []
    sink._connection.set_trace_callback(statements.append)
    sink.flush()
    assert statements == []  # a step without records costs the store nothing
    sink.write([record("exp", 0, "m", 1.0)])
    sink.flush()
    sink.wait()
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
    sink.close()


def test_two_sinks_write_the_same_store_without_mixing_runs(store):
    left = open_sink(store, "left")
    right = open_sink(store, "right")
    for step in range(3):
        left.write([record("left", step, "m", 1.0)])
        right.write([record("right", step, "m", 2.0)])
        left.flush()
        right.flush()
    left.close()
    right.close()
    with ikkuna.open_run("left", store=store) as run:
        np.testing.assert_array_equal(run.series("m", "encoder.0", "weight").values, [1.0] * 3)
    with ikkuna.open_run("right", store=store) as run:
        np.testing.assert_array_equal(run.series("m", "encoder.0", "weight").values, [2.0] * 3)


def test_reading_a_histogram_metric_as_floats_points_to_histograms(tmp_path):

    sink = StoreSink(tmp_path)
    sink.open(RunInfo("h", "numpy"))
    sink.write([Record("h", 0, 0, "weight_histogram", "fc", "weight",
                       Histogram(np.ones(2), np.arange(3.0)))])
    sink.close()
    with ikkuna.open_run("h", store=tmp_path) as run:
        with pytest.raises(KeyError, match=r"run.histograms\('weight_histogram', 'fc', 'weight'\)"):
            run.series("weight_histogram", "fc", "weight")
        with pytest.raises(KeyError, match=r"no metric 'nothing'"):
            run.histograms("nothing")


def test_nan_and_infinities_are_stored_and_read_back_as_such(tmp_path):
    sink = StoreSink(tmp_path)
    sink.open(RunInfo("nan", "numpy"))
    values = [1.0, float("nan"), float("inf"), -float("inf")]
    sink.write([Record("nan", step, 0, "loss", None, None, v) for step, v in enumerate(values)])
    sink.close()
    with ikkuna.open_run("nan", store=tmp_path) as run:
        series = run.series("loss")
        np.testing.assert_array_equal(series.steps, [0, 1, 2, 3])
        np.testing.assert_array_equal(series.values, values)  # NaN == NaN for this assert
        assert np.isneginf(run.latest()[0].value)


def test_the_writer_checkpoints_its_wal_every_10000_pages_and_readers_see_every_commit(store):
    """Fewer checkpoints (each step rewrites the same index pages), each commit still visible
    to another connection at once, and the WAL folded into the database at close."""
    from ikkuna.sinks.store import WAL_CHECKPOINT_PAGES

    sink = open_sink(store)
    assert sink._connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_CHECKPOINT_PAGES
    for step in range(3):
        sink.write([record("exp", step, "weight_norm", float(step))])
        sink.flush()
        sink.wait()
        with closing(sqlite3.connect(store / DATABASE_FILE)) as reader:
            assert reader.execute("SELECT COUNT(*) FROM records").fetchone()[0] == step + 1
    sink.close()  # the last connection: SQLite checkpoints and removes the WAL
    assert not (store / f"{DATABASE_FILE}-wal").exists()
    with ikkuna.open_run("exp", store=store) as run:
        assert run.series("weight_norm", "encoder.0", "weight").values.tolist() == [0.0, 1.0, 2.0]
