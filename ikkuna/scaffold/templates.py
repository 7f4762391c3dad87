"""The files of a new plugin package, as templates filled with :class:`PluginNames` fields.

Placeholders are ``{distribution}``, ``{module}``, ``{entry_point}``, ``{metric}``,
``{class_name}``, ``{api}`` and ``{ikkuna_version}``; literal braces are doubled.
"""

from __future__ import annotations

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{distribution}"
version = "0.1.0"
description = "An ikkuna plugin: the {metric} metric."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["ikkuna>={ikkuna_version}", "numpy"]

[project.optional-dependencies]
test = ["pytest>=8"]

# ikkuna finds plugins through this entry-point group
[project.entry-points.ikkuna]
{entry_point} = "{module}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

README = '''\
# {distribution}

An [ikkuna](https://pypi.org/project/ikkuna/) plugin. It provides the metric `{metric}`: the
root mean square of each parameter's gradient, on every step, in PyTorch, Keras and JAX.

    pip install -e .                 # ikkuna finds the plugin through its entry point
    ikkuna list                      # shows {metric}, from plugin {entry_point}
    pip install -e '.[test]' && pytest

Use it like a built-in metric:

    monitor = ikkuna.attach(model, metrics=["default", "{metric}"])

Add metrics in `src/{module}/metrics.py` and list them in `ikkuna_metrics()` of
`src/{module}/__init__.py`; `ikkuna_sinks()` adds sinks the same way. The tests use
`ikkuna.testing`: `check_layouts` runs a metric on synthetic events in every framework's
layout, `check_parity` trains the same small networks in every installed framework.
'''

PACKAGE = '''\
"""{distribution}: an ikkuna plugin (entry-point group ``ikkuna``, name ``{entry_point}``)."""

from __future__ import annotations

import ikkuna

from {module}.metrics import {class_name}

#: The ikkuna plugin API this plugin is written for: ikkuna refuses the plugin, with a message
#: saying why, where it provides an incompatible one.
IKKUNA_PLUGIN_API = "{api}"


@ikkuna.hookimpl
def ikkuna_metrics() -> list[type[ikkuna.Metric]]:
    """The metric classes of this plugin."""
    return [{class_name}]
'''

METRICS = '''\
"""The metrics of {distribution}."""

from __future__ import annotations

import math

import ikkuna


class {class_name}(ikkuna.Metric):
    """Root mean square of each parameter's gradient."""

    name = "{metric}"
    needs = ("gradients",)
    cost = "cheap"
    #: compute() reads only the moments (count and sums) of the gradients, so ikkuna keeps no
    #: copy of them; a metric that reads values (group["gradients"]) leaves this unset.
    statistic = "moments"

    def compute(self, group: ikkuna.EventGroup) -> float | None:
        moments = group.moments("gradients")
        if moments.count == 0:
            return None
        return math.sqrt(moments.sum_squares / moments.count)
'''

TESTS = '''\
"""Tests of {distribution}'s metric, on every framework, with ikkuna.testing."""

from __future__ import annotations

import ikkuna
import numpy as np
import pytest
from ikkuna.testing import (
    check_layouts,
    check_parity,
    installed_frameworks,
    run_metric,
    synthetic_steps,
)

from {module} import IKKUNA_PLUGIN_API
from {module}.metrics import {class_name}


def test_same_values_in_the_layout_of_every_framework():
    check_layouts({class_name})


def test_values_are_the_root_mean_square_of_each_gradient():
    results = run_metric({class_name}, synthetic_steps("torch", steps=2))
    expected = {{}}
    for step in synthetic_steps("torch", steps=2):
        for event in step:
            if event.kind == "gradients":
                values = event.array.numpy().astype(np.float64)
                key = ({class_name}.name, event.layer.name, event.param, event.step)
                expected[key] = float(np.sqrt(np.mean(values**2)))
    assert results.keys() == expected.keys()
    for key, value in expected.items():
        assert results[key] == pytest.approx(value, rel=1e-9)


@pytest.mark.skipif(len(installed_frameworks()) < 2,
                    reason="parity needs two frameworks (pip install 'ikkuna[torch,jax]')")
def test_same_values_on_every_installed_framework():
    check_parity({class_name})


def test_ikkuna_discovers_the_installed_plugin():
    manager = ikkuna.PluginManager()
    assert manager.metrics()[{class_name}.name].plugin == "{entry_point}"
    assert "{entry_point}" not in manager.load_failures
    assert IKKUNA_PLUGIN_API == "{api}"
'''

#: Path in the package -> template.
FILES = {
    "pyproject.toml": PYPROJECT,
    "README.md": README,
    "src/{module}/__init__.py": PACKAGE,
    "src/{module}/metrics.py": METRICS,
    "tests/test_metrics.py": TESTS,
}
