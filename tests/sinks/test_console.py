"""The console sink: a compact table of the latest scalars every n steps, whole lines beside a
tqdm bar."""

from __future__ import annotations

import io
import math
import sys

import pytest

import ikkuna
from ikkuna.core.events import Histogram, Record
from ikkuna.core.tables import format_value
from ikkuna.sinks.console import ConsoleSink
from tests.conftest import require_framework
from tests.sinks.training import train_mlp


def step_records(step: int) -> list[Record]:
    return [
        Record("exp", step, 0, "weight_norm", "encoder.0", "weight", 1.5 + step),
        Record("exp", step, 0, "gradient_norm", "encoder.0", "weight", 0.012345),
        Record("exp", step, 0, "weight_norm", "encoder.0", "bias", 0.25),
        Record("exp", step, 0, "activation_mean", "encoder.0", None, math.nan),
        Record("exp", step, 0, "weight_norm", "head", "weight", 3.0),
        Record("exp", step, 0, "weight_histogram", "head", "weight", Histogram([1, 2], [0, 1, 2])),
        Record("exp", step, 0, "loss", None, None, 2.0 / (step + 1)),
        Record("exp", step, 0, "accuracy", None, None, 0.5),
    ]


def run(sink: ConsoleSink, steps: int) -> None:
    for step in range(steps):
        sink.write(step_records(step))
        sink.flush()
    sink.close()


@pytest.fixture
def without_tqdm(monkeypatch):
    monkeypatch.delitem(sys.modules, "tqdm", raising=False)


def printed_table(step: int) -> list[str]:
    """The lines ConsoleSink prints for ``step_records(step)``."""
    return [
        f"step {step}  loss={format_value(2.0 / (step + 1))}  accuracy=0.5",
        "  layer             activation_mean  gradient_norm  weight_norm",
        "  ----------------  ---------------  -------------  -----------",
        "  encoder.0         nan",
        f"  encoder.0.weight                   0.01235        {format_value(1.5 + step)}",
        "  encoder.0.bias                                    0.25",
        "  head.weight                                       3",
    ]


def test_every_nth_step_prints_its_run_level_values_and_a_layer_table(without_tqdm):
    stream = io.StringIO()
    run(ConsoleSink(every=3, stream=stream), steps=7)
    expected = [line for step in (0, 3, 6) for line in printed_table(step)]
    assert stream.getvalue() == "\n".join(expected) + "\n"


def test_metrics_restricts_the_values_and_orders_the_columns(without_tqdm):
    stream = io.StringIO()
    run(ConsoleSink(every=5, metrics=["weight_norm", "loss", "gradient_norm"], stream=stream),
        steps=1)
    assert stream.getvalue().split("\n") == [
        "step 0  loss=2",
        "  layer             weight_norm  gradient_norm",
        "  ----------------  -----------  -------------",
        "  encoder.0.weight  1.5          0.01235",
        "  encoder.0.bias    0.25",
        "  head.weight       3",
        "",
    ]


def test_a_step_without_shown_values_prints_nothing(without_tqdm):
    stream = io.StringIO()
    run(ConsoleSink(every=1, metrics=["not_recorded"], stream=stream), steps=3)
    assert stream.getvalue() == ""


def test_it_prints_to_stderr_by_default(without_tqdm, capsys):
    sink = ConsoleSink(every=1)
    sink.write([Record("exp", 0, 0, "loss", None, None, 0.75)])
    sink.flush()
    assert capsys.readouterr().err == "step 0  loss=0.75\n"


def test_table_lines_stay_whole_beside_a_live_tqdm_bar():
    tqdm = require_framework("tqdm")
    stream = io.StringIO()
    sink = ConsoleSink(every=2, stream=stream)
    with tqdm.tqdm(total=6, file=stream, mininterval=0, miniters=1) as bar:
        for step in range(6):
            sink.write(step_records(step))
            sink.flush()
            bar.update(1)
    # what a terminal shows of each line: the text after its last carriage return
    shown = [line.rsplit("\r", 1)[-1] for line in stream.getvalue().split("\n")]
    tables = [line for line in shown if line and "%|" not in line]
    assert tables == [line for step in (0, 2, 4) for line in printed_table(step)]
    assert "100%|" in shown[-2]  # the bar is drawn again below the last table


def test_an_attached_run_prints_the_stored_values_of_every_nth_step(torch, tmp_path):
    stream = io.StringIO()
    monitor = train_mlp(torch, steps=5, sinks=["store", ConsoleSink(every=2, stream=stream)],
                        store=tmp_path, run="mlp")
    with ikkuna.open_run(monitor.run, store=tmp_path) as stored:
        loss = stored.series("loss")
        norms = stored.series("weight_norm", "2", "weight")
    printed = stream.getvalue().split("\n")
    headers = [line for line in printed if line.startswith("step ")]
    assert [line.split()[1] for line in headers] == ["0", "2", "4"]
    for header, step in zip(headers, (0, 2, 4)):
        assert f"loss={format_value(float(loss.values[list(loss.steps).index(step)]))}" in header
    rows = [line.split() for line in printed if line.startswith("  2.weight ")]
    assert [row[-1] for row in rows] == [format_value(float(norms.values[step])) for step in (0, 2, 4)]


def test_a_table_is_printed_at_the_first_step_at_or_after_each_multiple_of_every(without_tqdm):
    stream = io.StringIO()
    sink = ConsoleSink(every=10, stream=stream)
    for step in range(0, 34, 3):
        sink.write([Record("exp", step, 0, "loss", None, None, float(step))])
        sink.flush()
    sink.close()
    assert stream.getvalue().split("\n") == [
        "step 0  loss=0.0", "step 12  loss=12", "step 21  loss=21", "step 30  loss=30", ""]


def test_a_value_on_its_own_schedule_shows_its_latest_value_and_the_step_it_is_from(without_tqdm):
    stream = io.StringIO()
    sink = ConsoleSink(every=4, stream=stream)
    for step in range(9):
        records = [Record("exp", step, 0, "loss", None, None, float(step))]
        if step % 5 == 0:
            records.append(Record("exp", step, 0, "weight_norm", "head", "weight", 10.0 + step))
        sink.write(records)
        sink.flush()
    sink.close()
    assert stream.getvalue().split("\n") == [
        "step 0  loss=0.0",
        "  layer        weight_norm",
        "  -----------  -----------",
        "  head.weight  10",
        "step 4  loss=4",
        "  layer        weight_norm",
        "  -----------  -----------",
        "  head.weight  10@0",
        "step 8  loss=8",
        "  layer        weight_norm",
        "  -----------  -----------",
        "  head.weight  15@5",
        "",
    ]


def test_a_monitor_every_3_steps_shows_in_a_console_every_10_steps(torch, tmp_path):
    stream = io.StringIO()
    monitor = train_mlp(torch, steps=31, sinks=["store", ConsoleSink(every=10, stream=stream)],
                        store=tmp_path, run="mlp", every=3, metrics=["weight_norm"])
    with ikkuna.open_run(monitor.run, store=tmp_path) as stored:
        loss = stored.series("loss")
        norms = stored.series("weight_norm", "2", "weight")
    assert list(norms.steps) == list(range(0, 31, 3))
    printed = stream.getvalue().split("\n")
    headers = [line for line in printed if line.startswith("step ")]
    assert [line.split()[1] for line in headers] == ["0", "10", "20", "30"]
    for header, step in zip(headers, (0, 10, 20, 30)):
        assert f"loss={format_value(float(loss.values[list(loss.steps).index(step)]))}" in header
    rows = [line.split()[-1] for line in printed if line.startswith("  2.weight ")]
    norm = {int(step): format_value(float(value)) for step, value in zip(norms.steps, norms.values)}
    assert rows == [norm[0], f"{norm[9]}@9", f"{norm[18]}@18", norm[30]]


@pytest.mark.parametrize("every, error", [(0, ValueError), (-1, ValueError), ("10", TypeError),
                                          (True, TypeError), (2.0, TypeError)])
def test_every_must_be_a_positive_int(every, error):
    with pytest.raises(error, match=r"ConsoleSink\(every=...\) takes an int >= 1"):
        ConsoleSink(every=every)


@pytest.mark.parametrize("metrics", ["loss", [1], 3])
def test_metrics_must_be_a_list_of_names(metrics):
    with pytest.raises(TypeError, match=r"ConsoleSink\(metrics=...\) takes a list of metric names"):
        ConsoleSink(metrics=metrics)


def test_stream_must_be_writable():
    with pytest.raises(TypeError, match=r"ConsoleSink\(stream=...\) takes a text stream"):
        ConsoleSink(stream="stderr")
