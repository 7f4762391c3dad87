"""The markdown_summary sink: one file a run, last value and finite range of every series."""

from __future__ import annotations

import math

import ikkuna
import numpy as np
import pytest
from ikkuna.testing import MemorySink
from ikkuna.testing.parity import train

from ikkuna_plugin_example import EffectiveRank, MarkdownSummarySink

RUN = ikkuna.RunInfo("run-1", "torch")


def record(step: int, metric: str, value, layer: str | None = "dense1",
           param: str | None = None) -> ikkuna.Record:
    return ikkuna.Record("run-1", step, 0, metric, layer, param, value)


def summarize(sink: MarkdownSummarySink, *batches) -> str:
    sink.open(RUN)
    for batch in batches:
        sink.write(batch)
        sink.flush()
    sink.close()
    return sink.file_path.read_text(encoding="utf-8")


def table(text: str) -> dict[tuple[str, str, str], list[str]]:
    """The rows of a summary's table: (metric, layer, param) -> the other cells."""
    rows = [line.strip("|").split(" | ") for line in text.splitlines() if line.startswith("| ")]
    return {tuple(cell.strip() for cell in row[:3]): [cell.strip() for cell in row[3:]]
            for row in rows[1:]}


def test_summary_has_last_value_and_finite_range_of_every_scalar_series(tmp_path):
    text = summarize(
        MarkdownSummarySink(tmp_path),
        [record(0, "effective_rank", 3.0), record(0, "weight_norm", 2.0, param="weight"),
         record(0, "loss", 1.5, layer=None)],
        [record(1, "effective_rank", np.float32(2.5)), record(1, "loss", 0.25, layer=None),
         record(1, "weight_histogram", ikkuna.Histogram(np.ones(2), np.arange(3.0)))],
        [record(2, "effective_rank", math.nan), record(2, "loss", 0.5, layer=None),
         record(2, "activation_values", np.arange(4.0))],
    )
    assert (tmp_path / "run-1.md").read_text(encoding="utf-8") == text
    assert text == (
        "# ikkuna run `run-1`\n\n"
        "Framework: torch. Every scalar series: how many values, the last one and the smallest "
        "and largest finite one.\n\n"
        "| metric | layer | param | values | last step | last | min | max |\n"
        "|---|---|---|---|---|---|---|---|\n"
        "| effective_rank | dense1 |  | 3 | 2 | nan | 2.5 | 3 |\n"
        "| loss |  |  | 3 | 2 | 0.5 | 0.25 | 1.5 |\n"
        "| weight_norm | dense1 | weight | 1 | 0 | 2 | 2 | 2 |\n"
    )


def test_the_last_value_is_the_latest_step_whatever_the_arrival_order(tmp_path):
    text = summarize(MarkdownSummarySink(tmp_path),
                     [record(3, "effective_rank", 1.0)], [record(1, "effective_rank", 9.0)])
    assert table(text)[("effective_rank", "dense1", "")] == ["2", "3", "1", "1", "9"]


def test_a_run_without_scalars_says_so(tmp_path):
    text = summarize(MarkdownSummarySink(tmp_path), [])
    assert text.endswith("No scalar values were recorded.\n")


def test_another_runs_summary_is_never_overwritten(tmp_path):
    first = summarize(MarkdownSummarySink(tmp_path), [record(0, "loss", 1.0, layer=None)])
    with pytest.raises(FileExistsError, match="run-1.md already exists"):
        MarkdownSummarySink(tmp_path).open(RUN)
    assert (tmp_path / "run-1.md").read_text(encoding="utf-8") == first


def test_named_in_attach_it_writes_under_the_store(tmp_path):
    sink = MarkdownSummarySink.create(tmp_path / "store")
    assert sink.directory == tmp_path / "store" / "summaries"
    summarize(sink, [])
    assert (tmp_path / "store" / "summaries" / "run-1.md").is_file()


def test_without_a_directory_it_writes_under_the_default_store(private_store):
    assert MarkdownSummarySink().directory == private_store / "summaries"


def test_a_directory_that_is_not_a_path_is_refused():
    with pytest.raises(TypeError, match=r"MarkdownSummarySink\(directory=...\)"):
        MarkdownSummarySink(3)


def test_a_monitored_run_is_summarized_from_the_records_it_made(tmp_path, frameworks):
    memory, summary = MemorySink(), MarkdownSummarySink(tmp_path)
    monitor = train(frameworks[0], "mlp", metrics=[EffectiveRank, "weight_norm"],
                    sinks=[memory, summary], run="monitored")
    assert monitor.run == "monitored"
    rows = table((tmp_path / "monitored.md").read_text(encoding="utf-8"))
    series: dict[tuple[str, str, str], list[ikkuna.Record]] = {}
    for r in memory.records:
        series.setdefault((r.metric, r.layer or "", r.param or ""), []).append(r)
    assert set(rows) == set(series)
    assert ("effective_rank", "dense2", "") in rows
    for key, records in series.items():
        values = [float(r.value) for r in records]
        last = max(records, key=lambda r: r.step)
        assert rows[key] == [str(len(values)), str(last.step), f"{float(last.value):.6g}",
                             f"{min(values):.6g}", f"{max(values):.6g}"], key
