"""The JSON Lines and CSV sinks: every record reads back exactly, and they hold what the store does."""

from __future__ import annotations

import csv
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ikkuna
from ikkuna.core.events import Histogram, Record
from ikkuna.core.sink import RunInfo
from ikkuna.sinks import files
from ikkuna.sinks.files import CsvSink, JsonlSink, read_csv, read_jsonl
from tests.sinks.training import train_mlp

NAN, INF = math.nan, math.inf
SINKS = [(JsonlSink, read_jsonl), (CsvSink, read_csv)]


def canonical(record: Record) -> tuple:
    """A record as comparable plain data: floats as exact hex (NaN, -0.0 and all)."""
    value = record.value
    if isinstance(value, Histogram):
        shown: tuple = ("histogram", [x.hex() for x in value.counts.tolist()],
                        [x.hex() for x in value.edges.tolist()])
    elif isinstance(value, np.ndarray):
        shown = ("vector", str(value.dtype), [x.hex() for x in value.tolist()])
    else:
        shown = ("float", float(value).hex())
    return (record.run, record.step, record.epoch, record.metric, record.layer, record.param, shown)


def every_kind(run: str = "exp") -> list[Record]:
    return [
        Record(run, 0, 0, "weight_norm", "encoder.0", "weight", 0.1),
        Record(run, 0, 0, "weight_norm", "encoder.0", "bias", 1 / 3),
        Record(run, 0, 0, "activation_mean", "head", None, -0.0),
        Record(run, 0, 0, "loss", None, None, NAN),
        Record(run, 1, 0, "loss", None, None, INF),
        Record(run, 1, 0, "gradient_norm", "head", "weight", -INF),
        Record(run, 1, 0, "learning_rate", None, None, 5e-324),
        Record(run, 2, 1, "weight_histogram", "head", "weight",
               Histogram([0, 3, 1.5], [-INF, -1e300, 0.1, 7.25])),
        Record(run, 2, 1, "singular_values", "head", "weight", np.array([2.5, NAN, INF, -INF, 1e-17])),
        Record(run, 2, 1, "empty", "head", "weight", np.array([])),
        Record(run, 3, 1, "gradient_norm", "head", "weight", 0.5, rank=1),
        Record(run, 3, 1, 'odd "metric", with\nnewline', "layer,with;commas", "ünïcode", 1.0),
    ]


def write(sink_class, directory: Path, records: list[Record], name: str = "exp"):
    sink = sink_class(directory)
    sink.open(RunInfo(name=name, framework="numpy"))
    sink.write(records)
    sink.flush()
    sink.close()
    return sink


@pytest.mark.parametrize("sink_class, read", SINKS)
def test_every_kind_of_record_reads_back_exactly(sink_class, read, tmp_path):
    records = every_kind()
    sink = write(sink_class, tmp_path, records)
    assert sink.file_path == tmp_path / f"exp.{sink_class.name}"
    assert [canonical(r) for r in read(sink.file_path)] == [canonical(r) for r in records]


finite_or_not = st.floats(allow_nan=True, allow_infinity=True)
names = st.text(min_size=1, max_size=12)
records = st.lists(st.builds(
    Record, run=st.just("exp"), step=st.integers(0, 2**40), epoch=st.integers(0, 1000),
    metric=names, layer=st.none() | names, param=st.none() | names,
    value=finite_or_not | st.lists(finite_or_not, max_size=5).map(np.array)
    | st.lists(finite_or_not, min_size=1, max_size=4).map(
        lambda counts: Histogram(counts, np.arange(len(counts) + 1, dtype=float))),
), max_size=8)


@pytest.mark.parametrize("sink_class, read", SINKS)
@settings(max_examples=60, deadline=None)
@given(written=records)
def test_any_records_read_back_exactly(sink_class, read, written):
    with tempfile.TemporaryDirectory() as directory:
        sink = write(sink_class, Path(directory), written)
        assert [canonical(r) for r in read(sink.file_path)] == [canonical(r) for r in written]


def test_jsonl_lines_are_standard_json_with_non_finite_numbers_as_strings(tmp_path):
    sink = write(JsonlSink, tmp_path, every_kind())
    lines = [json.loads(line, parse_constant=pytest.fail) for line in sink.file_path.read_text().splitlines()]
    assert lines[3] == {"run": "exp", "step": 0, "epoch": 0, "metric": "loss", "layer": None,
                        "param": None, "value": "NaN"}
    assert lines[7]["value"] is None and lines[7]["edges"] == ["-Infinity", -1e300, 0.1, 7.25]
    assert lines[8]["value"] is None and lines[8]["vector"] == [2.5, "NaN", "Infinity", "-Infinity", 1e-17]


def test_csv_has_a_header_and_one_row_a_record_with_arrays_as_json_cells(tmp_path):
    sink = write(CsvSink, tmp_path, every_kind())
    with open(sink.file_path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["run", "step", "epoch", "metric", "layer", "param", "value", "counts",
                             "edges", "vector", "rank"]
    assert len(rows) == len(every_kind())
    assert rows[3]["value"] == "NaN" and rows[3]["layer"] == ""
    assert json.loads(rows[7]["counts"]) == [0.0, 3.0, 1.5] and rows[7]["value"] == ""


@pytest.mark.parametrize("sink_class, read", SINKS)
def test_each_flushed_step_is_on_disk_before_close(sink_class, read, tmp_path):
    sink = sink_class(tmp_path)
    sink.open(RunInfo(name="exp", framework="numpy"))
    records = every_kind()
    sink.write(records[:3])
    sink.flush()
    assert [canonical(r) for r in read(sink.file_path)] == [canonical(r) for r in records[:3]]
    sink.close()


@pytest.mark.parametrize("sink_class, read", SINKS)
def test_a_run_never_overwrites_another_runs_file(sink_class, read, tmp_path):
    write(sink_class, tmp_path, every_kind())
    with pytest.raises(FileExistsError, match="choose another run= name or directory"):
        write(sink_class, tmp_path, [])
    assert len(read(tmp_path / f"exp.{sink_class.name}")) == len(every_kind())


@pytest.mark.parametrize("sink_class, read", SINKS)
def test_a_last_line_still_being_written_is_left_out_with_a_warning(sink_class, read, tmp_path):
    records = [*every_kind(), Record("exp", 4, 2, "loss", None, None, 0.12345678901234568)]
    sink = sink_class(tmp_path)
    sink.open(RunInfo(name="exp", framework="numpy"))
    for record in records:
        sink.write([record])
        sink.flush()
        if record is records[-2]:
            complete = sink.file_path.stat().st_size
    sink.close()
    data = sink.file_path.read_bytes()
    partial = tmp_path / f"partial.{sink_class.name}"
    for end in range(complete + 1, len(data)):
        partial.write_bytes(data[:end])
        with pytest.warns(UserWarning, match=rf"left out {end - complete} bytes of an incomplete "
                                             r"last line; the run may still be writing it"):
            found = read(partial)
        assert [canonical(r) for r in found] == [canonical(r) for r in records[:-1]]


def test_a_csv_row_cut_just_after_a_newline_inside_a_quoted_cell_is_left_out(tmp_path):
    sink_class, read = CsvSink, read_csv
    records = every_kind()
    assert "\n" in records[-1].metric
    sink = write(sink_class, tmp_path, records[:-1])
    complete = sink.file_path.read_bytes()
    data = write(sink_class, tmp_path, records, name="full").file_path.read_bytes()
    cut = data.index(b"\n", len(complete)) + 1  # just after the newline in the metric's cell
    partial = tmp_path / f"partial.{sink_class.name}"
    partial.write_bytes(data[:cut])
    with pytest.warns(UserWarning, match=f"left out {cut - len(complete)} bytes"):
        assert len(read(partial)) == len(records) - 1


class CountingFile:
    """A real text file that counts its ``write`` calls and can fail them."""

    def __init__(self, file, fail: bool = False) -> None:
        self.file, self.fail, self.writes = file, fail, 0

    def write(self, text: str) -> int:
        self.writes += 1
        if self.fail:
            raise OSError(28, "No space left on device")
        return self.file.write(text)

    def __getattr__(self, name):
        return getattr(self.file, name)


def counting_opens(monkeypatch, fail: bool = False) -> list[CountingFile]:
    """Make the file sinks open :class:`CountingFile` s; returns the list they are put in."""
    opened: list[CountingFile] = []

    def counting_open(*args, **kwargs) -> CountingFile:
        opened.append(CountingFile(open(*args, **kwargs), fail))  # noqa: SIM115 - the sink closes it
        return opened[-1]

    monkeypatch.setattr(files, "open", counting_open, raising=False)
    return opened


@pytest.mark.parametrize("sink_class, read", SINKS)
def test_each_write_call_writes_its_rows_with_one_file_write(sink_class, read, tmp_path, monkeypatch):
    opened = counting_opens(monkeypatch)
    sink = sink_class(tmp_path)
    sink.open(RunInfo(name="exp", framework="numpy"))
    before = opened[0].writes
    sink.write(every_kind())
    assert opened[0].writes == before + 1
    sink.close()
    assert len(read(sink.file_path)) == len(every_kind())


def test_a_file_that_fails_on_its_first_write_is_closed(tmp_path, monkeypatch):
    opened = counting_opens(monkeypatch, fail=True)
    sink = CsvSink(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        sink.open(RunInfo(name="exp", framework="numpy"))
    assert opened[0].file.closed
    with pytest.raises(RuntimeError, match="before open"):
        sink.write(every_kind())


def stored_records(run: ikkuna.Run) -> list[tuple]:
    """Every record of a stored run as (step, metric, layer, param, value) plain data."""
    found = []
    for metric in run.metrics():
        for layer, param in run.keys(metric):
            try:
                series = run.series(metric, layer, param)
                found += [(int(step), metric, layer, param, ("float", float(value).hex()))
                          for step, value in zip(series.steps, series.values)]
            except KeyError:  # a histogram metric
                found += [(step, metric, layer, param,
                           canonical(Record("", 0, 0, "", None, None, value))[-1])
                          for step, value in run.histograms(metric, layer, param)]
    return sorted(found, key=repr)


@pytest.mark.parametrize("sink_class, read", SINKS)
def test_an_attached_runs_file_holds_exactly_the_records_of_the_store(sink_class, read, torch,
                                                                       tmp_path):
    monitor = train_mlp(torch, sinks=["store", sink_class.name], store=tmp_path, run="mlp")
    from_file = read(tmp_path / "files" / f"mlp.{sink_class.name}")
    assert {record.run for record in from_file} == {"mlp"}
    with ikkuna.open_run(monitor.run, store=tmp_path) as run:
        expected = stored_records(run)
    assert len(expected) > 50
    found = [(r.step, r.metric, r.layer, r.param, canonical(r)[-1]) for r in from_file]
    assert sorted(found, key=repr) == expected


def test_create_and_the_default_directory_are_the_stores_files_folder(tmp_path, private_store):
    assert JsonlSink.create(tmp_path).directory == tmp_path / "files"
    assert CsvSink().directory == private_store / "files"


@pytest.mark.parametrize("sink_class", [JsonlSink, CsvSink])
def test_a_directory_that_is_not_a_path_is_refused_naming_what_is_accepted(sink_class):
    with pytest.raises(TypeError, match=rf"{sink_class.__name__}\(directory=...\) takes a directory "
                                        r"path \(str or os.PathLike\) or None, got list"):
        sink_class(["runs"])
