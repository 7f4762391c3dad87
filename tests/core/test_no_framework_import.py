"""`import ikkuna` (and everything that does not train, ikkuna.testing too) imports no framework."""

from __future__ import annotations

import subprocess
import sys

FRAMEWORK_MODULES = ("torch", "tensorflow", "keras", "jax", "flax", "optax")

PROBE = """
import sys
import ikkuna, ikkuna.cli, ikkuna.testing
from ikkuna.testing import check_layouts
from ikkuna.metrics.norms import WeightNorm
check_layouts(WeightNorm)  # a metric tested on every framework's layouts, with no framework
from ikkuna.core.plugins import PluginManager
manager = PluginManager()
manager.metrics(); manager.sinks(); manager.adapters()
ikkuna.attach.__doc__
print(",".join(m for m in {modules!r} if m in sys.modules))
"""


def test_importing_ikkuna_loading_plugins_and_checking_layouts_imports_no_framework():
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(modules=FRAMEWORK_MODULES)],
        capture_output=True, text=True, check=True,
    )
    assert result.stdout.strip() == ""


def test_attach_on_a_non_model_does_not_import_a_framework_to_say_no():
    probe = (
        "import sys, ikkuna\n"
        "try:\n    ikkuna.attach({'not': 'a model'})\n"
        "except ikkuna.UnsupportedModelError as e:\n    print('refused:', e)\n"
        f"print([m for m in {FRAMEWORK_MODULES!r} if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "refused:" in result.stdout and "torch.nn.Module" in result.stdout
    assert result.stdout.strip().endswith("[]")
