"""docs/writing-plugins.md stays true: its hooks are the hookspecs, its examples run."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import ikkuna
import ikkuna.testing
from ikkuna.core import hookspecs
from ikkuna.core.metric import COST_CLASSES
from ikkuna.core.statistics import STATISTICS

DOC = Path(__file__).resolve().parents[2] / "docs" / "writing-plugins.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_every_hookspec_is_documented_with_its_own_docstring():
    text = DOC.read_text()
    specs = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("ikkuna_")]
    assert specs
    for name in specs:
        assert f"### `{name}()" in text, name
        assert inspect.getdoc(getattr(hookspecs, name)) in text, f"{name}: docstring differs"


def test_every_testing_helper_cost_class_and_statistic_is_documented():
    text = DOC.read_text()
    for name in ikkuna.testing.__all__:
        if not name.isupper():
            assert f"`{name}" in text, name
    for name in (*COST_CLASSES, *STATISTICS):
        assert name in text, name


def test_the_metric_and_test_examples_run_as_written():
    namespace: dict = {}
    _, metric_block, _, test_block = python_blocks()
    exec(compile(metric_block, "metric example", "exec"), namespace)
    exec(compile(test_block, "test example", "exec"), namespace)
    namespace["test_same_values_in_every_frameworks_layout"]()
    namespace["test_values_are_the_largest_singular_value"]()
    metric = namespace["MaxSingularValue"]
    metric.validate()
    assert namespace["ikkuna_metrics"]() == [metric]


def test_the_sink_example_prints_the_last_value_of_every_series(capsys):
    namespace: dict = {}
    exec(compile(python_blocks()[2], "sink example", "exec"), namespace)
    sink = namespace["PrintLast"]()
    sink.open(ikkuna.RunInfo("run-a", "torch"))
    sink.write([ikkuna.Record("run-a", 0, 0, "m", "l", "weight", 1.0),
                ikkuna.Record("run-a", 1, 0, "m", "l", "weight", 2.0)])
    sink.close()
    assert capsys.readouterr().out.strip() == "run-a m l weight 2.0"


def test_the_parity_example_runs_on_every_framework(torch, keras, jax):
    namespace: dict = {}
    exec(compile(python_blocks()[1], "metric example", "exec"), namespace)
    exec(compile(python_blocks()[3], "test example", "exec"), namespace)
    namespace["test_same_values_on_every_installed_framework"]()


def test_the_api_version_in_the_doc_is_the_current_one():
    assert python_blocks()[0].strip().endswith(f'IKKUNA_PLUGIN_API = "{ikkuna.PLUGIN_API_VERSION}"')
