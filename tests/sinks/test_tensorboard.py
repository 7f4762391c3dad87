"""The TensorBoard sink: what TensorBoard's own readers get back from its event files."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ikkuna
from ikkuna.core.events import Histogram, Record
from ikkuna.core.sink import RunInfo
from ikkuna.sinks import tensorboard as tensorboard_sink
from ikkuna.sinks.tensorboard import TensorBoardSink, vector_histogram
from tests.conftest import require_framework
from tests.sinks.training import train_mlp

NAN, INF = math.nan, math.inf


@pytest.fixture(autouse=True)
def tensorboard():
    return require_framework("tensorboard")


def tag(metric: str, layer: str | None, param: str | None) -> str:
    return "/".join(part for part in (metric, layer, param) if part is not None)


def write_run(directory: Path, name: str, steps: list[list[Record]]) -> TensorBoardSink:
    sink = TensorBoardSink(directory)
    sink.open(RunInfo(name=name, framework="numpy"))
    for records in steps:
        sink.write(records)
        sink.flush()
    sink.close()
    return sink


def scalar_steps(run: str) -> list[list[Record]]:
    """Three steps of per-param, per-layer and run-level scalars, with NaN, +-Inf and a float64
    beyond float32's range."""
    values = {
        0: [0.1, 1 / 3, 2.5, NAN, 0.75],
        1: [1e-7, INF, -INF, 1e300, 0.5],
        2: [-0.0, 123456.789, 2.0**-149, 7.0, NAN],
    }
    return [
        [
            Record(run, step, 0, "weight_norm", "encoder.0", "weight", w),
            Record(run, step, 0, "weight_norm", "encoder.0", "bias", b),
            Record(run, step, 0, "activation_mean", "head", None, a),
            Record(run, step, 0, "loss", None, None, loss),
            Record(run, step, 0, "accuracy", None, None, accuracy),
        ]
        for step, (w, b, a, loss, accuracy) in values.items()
    ]


# -- reading with TensorBoard -------------------------------------------------------------------


def provider(logdir: Path):
    """TensorBoard's data provider over ``logdir`` (what its dashboards read), keeping every point,
    and a request context to ask it with."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.context import RequestContext

    multiplexer = plugin_event_multiplexer.EventMultiplexer(size_guidance={"tensors": 0})
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    return data_provider.MultiplexerDataProvider(multiplexer, str(logdir)), RequestContext()


def tensorboard_scalars(logdir: Path) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """Every (run, tag) of the scalar dashboard with its (step, value) points."""
    reader, context = provider(logdir)
    read = reader.read_scalars(context, experiment_id="", plugin_name="scalars", downsample=10**9)
    return {(run, name): [(point.step, point.value) for point in points]
            for run, tags in read.items() for name, points in tags.items()}


def tensorboard_histograms(logdir: Path) -> dict[tuple[str, str], list[tuple[int, np.ndarray]]]:
    """Every (run, tag) of the histogram dashboard: (step, [left, right, count] rows)."""
    reader, context = provider(logdir)
    read = reader.read_tensors(context, experiment_id="", plugin_name="histograms",
                               downsample=10**9)
    return {(run, name): [(point.step, point.numpy) for point in points]
            for run, tags in read.items() for name, points in tags.items()}


def raw_histograms(log_dir: Path, name: str):
    """The ``HistogramProto`` values of one tag as written (TensorBoard's legacy accumulator)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"histograms": 0})
    accumulator.Reload()
    return accumulator.Histograms(name)


def float32(value: float) -> float:
    with np.errstate(over="ignore"):
        return float(np.float32(value))


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def shown_buckets(histogram: Histogram) -> np.ndarray:
    """[left, right, count] of the bins from the first to the last non-empty one."""
    filled = np.flatnonzero(histogram.counts)
    first, last = filled[0], filled[-1]
    edges = histogram.edges[first:last + 2]
    return np.stack([edges[:-1], edges[1:], histogram.counts[first:last + 1]], axis=1)


# -- scalars ------------------------------------------------------------------------------------


def test_every_scalar_comes_back_with_its_tag_step_and_value_at_float32(tmp_path):
    steps = scalar_steps("exp")
    write_run(tmp_path, "exp", steps)
    expected: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for record in (record for records in steps for record in records):
        key = ("exp", tag(record.metric, record.layer, record.param))
        expected.setdefault(key, []).append((record.step, float32(record.value)))
    found = tensorboard_scalars(tmp_path)
    assert found.keys() == expected.keys()
    for key, points in expected.items():
        assert [step for step, _ in found[key]] == [step for step, _ in points], key
        assert all(same(a, b) for (_, a), (_, b) in zip(found[key], points)), (key, found[key])


def test_nan_and_infinities_are_kept_and_values_beyond_float32_become_infinite(tmp_path):
    write_run(tmp_path, "exp", scalar_steps("exp"))
    found = tensorboard_scalars(tmp_path)
    assert math.isnan(dict(found["exp", "loss"])[0])
    assert dict(found["exp", "weight_norm/encoder.0/bias"])[1] == INF
    assert dict(found["exp", "activation_mean/head"])[1] == -INF
    assert dict(found["exp", "loss"])[1] == INF  # 1e300 has no float32


def test_runs_are_folders_side_by_side_under_the_directory(tmp_path):
    first = write_run(tmp_path, "first", scalar_steps("first"))
    second = write_run(tmp_path, "second", scalar_steps("second"))
    assert (first.log_dir, second.log_dir) == (tmp_path / "first", tmp_path / "second")
    runs = {run for run, _ in tensorboard_scalars(tmp_path)}
    assert runs == {"first", "second"}


def test_a_second_run_of_the_same_name_is_refused_not_merged_into_the_first(tmp_path):
    first = write_run(tmp_path, "exp", scalar_steps("exp"))
    (events,) = first.log_dir.iterdir()
    size = events.stat().st_size
    with pytest.raises(FileExistsError, match=r"choose another run= name or directory=") as error:
        write_run(tmp_path, "exp", scalar_steps("exp"))
    assert str(tmp_path / "exp") in str(error.value)
    assert list(first.log_dir.iterdir()) == [events] and events.stat().st_size == size


def test_a_file_whose_first_write_fails_is_closed(tmp_path, monkeypatch):
    class FailingFile:
        def __init__(self, file) -> None:
            self.file = file

        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.file, name)

    opened: list[FailingFile] = []

    def failing_open(*args) -> FailingFile:
        opened.append(FailingFile(open(*args)))  # noqa: SIM115 - the sink closes it
        return opened[-1]

    monkeypatch.setattr(tensorboard_sink, "open", failing_open, raising=False)
    sink = TensorBoardSink(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        sink.open(RunInfo(name="exp", framework="numpy"))
    assert opened[0].file.closed
    with pytest.raises(RuntimeError, match="before open"):
        sink.write(scalar_steps("exp")[0])


# -- histograms ---------------------------------------------------------------------------------


def test_a_histogram_comes_back_with_its_bins_from_the_first_to_the_last_filled_one(tmp_path):
    histogram = Histogram(counts=[0, 0, 3, 0, 5, 1, 0], edges=np.linspace(-1.0, 1.0, 8))
    sink = write_run(tmp_path, "exp", [[Record("exp", 3, 0, "weight_histogram", "head", "weight",
                                               histogram)]])
    (raw,) = raw_histograms(sink.log_dir, "weight_histogram/head/weight")
    assert raw.step == 3
    assert raw.histogram_value.bucket == [3.0, 0.0, 5.0, 1.0]
    assert raw.histogram_value.bucket_limit == histogram.edges[3:7].tolist()
    assert (raw.histogram_value.min, raw.histogram_value.max) == (histogram.edges[2], histogram.edges[6])
    assert raw.histogram_value.num == 9
    centres = (histogram.edges[:-1] + histogram.edges[1:]) / 2
    assert raw.histogram_value.sum == pytest.approx(np.dot(histogram.counts, centres))
    assert raw.histogram_value.sum_squares == pytest.approx(np.dot(histogram.counts, centres**2))
    ((step, shown),) = tensorboard_histograms(tmp_path)["exp", "weight_histogram/head/weight"]
    assert step == 3
    np.testing.assert_array_equal(shown, shown_buckets(histogram).astype(np.float32))


def test_a_plain_vector_becomes_a_histogram_of_its_finite_entries(tmp_path):
    vector = np.array([3.0, 1.0, 0.5, 0.25, 0.25, 0.125, NAN, INF])
    sink = write_run(tmp_path, "exp", [[Record("exp", 0, 0, "singular_values", "head", "weight",
                                               vector)]])
    expected = vector_histogram(vector)
    assert expected.counts.sum() == 6  # NaN and Inf have no bin
    counts, edges = np.histogram(vector[:6], bins=6)
    np.testing.assert_array_equal(expected.counts, counts)
    np.testing.assert_array_equal(expected.edges, edges)
    (raw,) = raw_histograms(sink.log_dir, "singular_values/head/weight")
    assert raw.histogram_value.bucket == expected.counts.tolist()  # first and last bins are filled
    assert raw.histogram_value.bucket_limit == expected.edges[1:].tolist()
    ((_, shown),) = tensorboard_histograms(tmp_path)["exp", "singular_values/head/weight"]
    np.testing.assert_array_equal(shown, shown_buckets(expected).astype(np.float32))


@pytest.mark.parametrize("vector", [[NAN, INF, -INF], []])
def test_a_vector_without_finite_entries_is_left_out_not_drawn_over_an_invented_range(tmp_path,
                                                                                      vector):
    sink = write_run(tmp_path, "exp", [[
        Record("exp", 0, 0, "singular_values", "head", "weight", np.array(vector)),
        Record("exp", 0, 0, "loss", None, None, 1.0),
    ]])
    with pytest.raises(KeyError, match="singular_values/head/weight"):
        raw_histograms(sink.log_dir, "singular_values/head/weight")
    assert "singular_values/head/weight" not in {name for _, name in tensorboard_histograms(tmp_path)}
    assert tensorboard_scalars(tmp_path)["exp", "loss"] == [(0, 1.0)]


def test_an_empty_histogram_keeps_its_range_and_counts_nothing(tmp_path):
    histogram = Histogram(counts=[0, 0], edges=[0.0, 1.0, 2.0])
    sink = write_run(tmp_path, "exp", [[Record("exp", 0, 0, "h", None, None, histogram)]])
    (raw,) = raw_histograms(sink.log_dir, "h")
    assert (raw.histogram_value.num, raw.histogram_value.min, raw.histogram_value.max) == (0, 0, 2)
    assert raw.histogram_value.bucket == [0.0, 0.0]


# -- through attach -----------------------------------------------------------------------------


def test_every_scalar_and_histogram_of_an_attached_run_is_in_tensorboard(torch, tmp_path):
    monitor = train_mlp(torch, sinks=["store", "tensorboard"], store=tmp_path, run="mlp")
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    histograms = tensorboard_histograms(tmp_path / "tensorboard")
    checked = 0
    with ikkuna.open_run(monitor.run, store=tmp_path) as run:
        for metric in run.metrics():
            for layer, param in run.keys(metric):
                key = (run.name, tag(metric, layer, param))
                if metric == "weight_histogram":
                    stored = run.histograms(metric, layer, param)
                    assert [step for step, _ in histograms[key]] == [step for step, _ in stored]
                    for (_, shown), (_, histogram) in zip(histograms[key], stored):
                        np.testing.assert_array_equal(shown, shown_buckets(histogram).astype(np.float32))
                    continue
                series = run.series(metric, layer, param)
                expected = [(int(s), float32(v)) for s, v in zip(series.steps, series.values)]
                assert [step for step, _ in scalars[key]] == [step for step, _ in expected], key
                assert all(same(a, b) for (_, a), (_, b) in zip(scalars[key], expected)), key
                checked += 1
    assert checked >= 15 and ("mlp", "loss") in scalars and ("mlp", "activation_mean/0") in scalars


def test_attach_by_name_writes_the_run_under_the_stores_tensorboard_folder(torch, tmp_path):
    monitor = train_mlp(torch, steps=1, sinks=["tensorboard"], store=tmp_path, run="exp")
    (sink,) = monitor.sinks
    assert isinstance(sink, TensorBoardSink) and sink.log_dir == tmp_path / "tensorboard" / "exp"
    assert [path.name.startswith("events.out.tfevents.") for path in sink.log_dir.iterdir()] == [True]
    assert ("exp", "loss") in tensorboard_scalars(tmp_path / "tensorboard")


def test_create_and_the_default_directory_are_folders_of_the_store(tmp_path, private_store):
    assert TensorBoardSink.create(tmp_path).directory == tmp_path / "tensorboard"
    assert TensorBoardSink().directory == private_store / "tensorboard"


# -- dependencies and errors --------------------------------------------------------------------


def test_writing_events_imports_no_tensorflow(tmp_path):
    probe = (
        "import sys\n"
        "from ikkuna.core.events import Record\nfrom ikkuna.core.sink import RunInfo\n"
        "from ikkuna.sinks.tensorboard import TensorBoardSink\n"
        f"sink = TensorBoardSink({str(tmp_path)!r})\nsink.open(RunInfo('exp', 'numpy'))\n"
        "sink.write([Record('exp', 0, 0, 'loss', None, None, 1.0)])\nsink.close()\n"
        "print('tensorflow' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_without_tensorboard_opening_says_which_extra_installs_it(tmp_path, monkeypatch):
    for module in [name for name in sys.modules if name.split(".")[0] == "tensorboard"]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    tensorboard_sink._tensorboard.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install 'ikkuna\[tensorboard\]'"):
            TensorBoardSink(tmp_path).open(RunInfo("exp", "numpy"))
    finally:
        tensorboard_sink._tensorboard.cache_clear()


def test_a_directory_that_is_not_a_path_is_refused_naming_what_is_accepted():
    with pytest.raises(TypeError, match=r"TensorBoardSink\(directory=...\) takes a directory path "
                                        r"\(str or os.PathLike\) or None, got int"):
        TensorBoardSink(3)
