"""Build real (tiny) plugin distributions on disk: a package plus dist-info entry-point metadata."""

from __future__ import annotations

import textwrap
from pathlib import Path

GOOD_PLUGIN = '''
import numpy as np
import ikkuna

RECEIVED = []


class ParameterCount(ikkuna.Metric):
    """Number of entries of each parameter."""

    name = "parameter_count"
    needs = ("weights",)

    def compute(self, group):
        RECEIVED.append((group.layer.name, group.param, group.step))
        return float(group["weights"].size)


@ikkuna.hookimpl
def ikkuna_metrics():
    return [ParameterCount]
'''

BROKEN_PLUGIN = '''
raise ImportError("this plugin needs a package that is not installed")
'''

DUPLICATE_PLUGIN = '''
import ikkuna


class AnotherWeightNorm(ikkuna.Metric):
    name = "weight_norm"
    needs = ("weights",)

    def compute(self, group):
        return 0.0


@ikkuna.hookimpl
def ikkuna_metrics():
    return [AnotherWeightNorm]
'''

MISSPELLED_HOOK_PLUGIN = '''
import ikkuna


@ikkuna.hookimpl
def ikkuna_metric():
    return []
'''


def make_distribution(root: Path, distribution: str, module: str, source: str,
                      entry_point: str | None = None) -> Path:
    """Write ``module`` and ``<distribution>-0.1.dist-info`` with an ``ikkuna`` entry point."""
    package = root / module
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(source))
    info = root / f"{distribution.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ikkuna]\n{entry_point or module} = {module}\n")
    return root
