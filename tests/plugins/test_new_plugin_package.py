"""A package written by `ikkuna new-plugin` installs, is discovered, passes its own tests and
measures a real run, all from a pip --target folder (as a user who pip-installs it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import ikkuna
from tests.plugins.installing import install, run_command, run_python, script

ROOT = Path(__file__).resolve().parents[2]
METRIC = "grad_noise_gradient_rms"


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path]:
    """(package folder, target): the package made by the command of a pip-installed ikkuna,
    then installed next to that ikkuna."""
    base = tmp_path_factory.mktemp("new-plugin")
    ikkuna_only = base / "ikkuna-only"
    install(ikkuna_only, ROOT)
    made = run_command(ikkuna_only, [str(script(ikkuna_only, "ikkuna")), "new-plugin", "grad-noise"],
                       base)
    assert made.returncode == 0, made.stderr
    package = base / "ikkuna-grad-noise"
    target = base / "target"
    install(target, ROOT, package)
    return package, target


def test_the_installed_package_is_listed_with_its_metric_and_plugin(made, tmp_path):
    _, target = made
    result = run_command(target, [str(script(target, "ikkuna")), "list"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:3] for line in result.stdout.splitlines()
            if line.startswith("  ") and line.split()}
    assert rows[METRIC] == ["grad_noise", "cheap"]
    assert "warning" not in result.stdout and "failed to import" not in result.stderr


def test_the_generated_tests_pass_as_written_on_every_framework(made, tmp_path, torch, keras, jax):
    package, target = made
    command = [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider",
               "--basetemp", str(tmp_path / "basetemp"), "tests"]
    result = run_command(target, command, package, timeout=600)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert summary.startswith("4 passed") or "= 4 passed" in summary, summary
    for word in ("skipped", "xfail", "error"):
        assert word not in summary, summary
    assert "PASSED tests/test_metrics.py::test_same_values_on_every_installed_framework" in result.stdout


TRAINING = """
import json
import numpy as np
import torch
import ikkuna
import ikkuna_grad_noise

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
inputs, labels = torch.randn(32, 8), torch.randint(0, 3, (32,))
expected = {}
with ikkuna.attach(model, optimizer=optimizer, metrics=["grad_noise_gradient_rms"],
                   store="runs", run="made"):
    for step in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        for name, parameter in model.named_parameters():
            layer, role = name.split(".")
            values = parameter.grad.double().numpy()
            expected[f"{layer}/{role}/{step}"] = float(np.sqrt(np.mean(values ** 2)))
        optimizer.step()
print(json.dumps({"ikkuna": ikkuna.__file__, "plugin": ikkuna_grad_noise.__file__,
                  "expected": expected}))
"""


def test_the_installed_package_measures_a_torch_run_into_the_store(made, tmp_path, torch):
    _, target = made
    result = run_python(target, TRAINING, tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(found["ikkuna"]).resolve().is_relative_to(target.resolve())
    assert Path(found["plugin"]).resolve().is_relative_to(target.resolve())
    with ikkuna.open_run("made", store=tmp_path / "runs") as run:
        keys = run.keys(METRIC)
        assert sorted(keys) == [(layer, role) for layer in ("0", "2") for role in ("bias", "weight")]
        for layer, role in keys:
            series = run.series(METRIC, layer, role)
            assert series.steps.tolist() == [0, 1, 2]
            expected = [found["expected"][f"{layer}/{role}/{step}"] for step in range(3)]
            np.testing.assert_allclose(series.values, expected, rtol=1e-6, err_msg=f"{layer}.{role}")
