"""The example plugin (examples/ikkuna-plugin-example): parity of its metric, its own tests,
and the package pip-installed next to ikkuna, found through its entry point in a real run."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import ikkuna
from ikkuna.testing import check_parity
from ikkuna.testing.parity import BATCH
from tests.plugins.installing import install, run_command, run_python, script

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ikkuna-plugin-example"
EXAMPLE_SOURCE = EXAMPLE / "src"


def reference_effective_rank(activations: np.ndarray) -> float:
    """exp of the entropy of the normalized singular values of centered (samples, channels)."""
    matrix = activations.reshape(-1, activations.shape[-1]).astype(np.float64)
    sigma = np.linalg.svd(matrix - matrix.mean(axis=0), compute_uv=False)
    p = sigma[sigma > 1e-12 * sigma.max()] / sigma.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


@pytest.fixture
def example_plugin(monkeypatch):
    """The plugin package imported from its source folder; forgotten afterwards."""
    monkeypatch.syspath_prepend(str(EXAMPLE_SOURCE))
    yield importlib.import_module("ikkuna_plugin_example")
    for name in [n for n in sys.modules if n.split(".")[0] == "ikkuna_plugin_example"]:
        del sys.modules[name]


def test_effective_rank_is_the_same_on_torch_keras_and_jax(example_plugin, torch, keras, jax):
    found = check_parity(example_plugin.EffectiveRank, frameworks=("torch", "keras", "jax"))
    assert set(found) == {(f, n) for f in ("torch", "keras", "jax") for n in ("mlp", "cnn")}
    mlp = found[("torch", "mlp")]
    assert {key[1] for key in mlp} == {"dense1", "relu1", "dense2", "tanh1", "dense3"}
    # BATCH centered samples span at most BATCH - 1 directions; 3 logits at most 3
    assert all(1.0 <= value <= BATCH - 1 for value in mlp.values())
    assert all(value <= 3.0 for key, value in mlp.items() if key[1] == "dense3")


def test_the_example_plugins_own_tests_pass_on_every_framework(tmp_path, torch, keras, jax):
    command = [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "--rootdir",
               str(EXAMPLE), "--basetemp", str(tmp_path / "basetemp"), str(EXAMPLE / "tests")]
    result = run_command(EXAMPLE_SOURCE, command, EXAMPLE, timeout=600)  # PYTHONPATH=src
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary, summary
    for word in ("skipped", "xfail", "xpass", "deselected", "error"):
        assert word not in summary, summary
    parity = "test_effective_rank.py::test_metric_gives_the_same_values_on_every_installed_framework"
    assert f"PASSED tests/{parity}" in result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A pip --target folder with ikkuna and the example plugin installed from their folders."""
    target = tmp_path_factory.mktemp("installed") / "target"
    install(target, ROOT, EXAMPLE)
    return target


def test_the_installed_ikkuna_command_lists_the_plugins_metric_and_sink(installed, tmp_path):
    result = run_command(installed, [str(script(installed, "ikkuna")), "list"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:3] for line in result.stdout.splitlines()
            if line.startswith("  ") and line.split()}
    assert rows["effective_rank"] == ["example", "expensive"]
    assert rows["markdown_summary"][0] == "example"
    assert "failed to import" not in result.stdout + result.stderr


def test_install_reports_pips_output_for_a_project_that_does_not_build(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "pyproject.toml").write_text("[project]\nname = 'broken'\nversion = 'not a version'\n")
    with pytest.raises(AssertionError, match="pip install into .* failed") as failure:
        install(tmp_path / "target", broken)
    assert "project.version" in str(failure.value)  # the build's own error, passed on
    with pytest.raises(ValueError, match="no pyproject.toml"):
        install(tmp_path / "target", tmp_path)


TRAINING = """
import json
import numpy as np
import torch
import ikkuna
import ikkuna_plugin_example

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
seen = {}
for index, layer in enumerate(model):
    layer.register_forward_hook(lambda module, args, output, name=str(index):
                                seen.setdefault(name, []).append(output.detach().numpy().copy()))
inputs, labels = torch.randn(32, 8), torch.randint(0, 3, (32,))
with ikkuna.attach(model, optimizer=optimizer, metrics=["effective_rank"],
                   sinks=["store", "markdown_summary"], store="runs", run="installed"):
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
np.savez("activations.npz", **{f"{name}.{step}": values for name, steps in seen.items()
                               for step, values in enumerate(steps)})
print(json.dumps({"ikkuna": ikkuna.__file__, "plugin": ikkuna_plugin_example.__file__}))
"""


def test_the_installed_plugin_measures_a_torch_run_into_the_store_and_a_summary(
        installed, tmp_path, torch):
    result = run_python(installed, TRAINING, tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(modules["ikkuna"]).resolve().is_relative_to(installed.resolve())
    assert Path(modules["plugin"]).resolve().is_relative_to(installed.resolve())

    activations = np.load(tmp_path / "activations.npz")
    summary = (tmp_path / "runs" / "summaries" / "installed.md").read_text(encoding="utf-8")
    with ikkuna.open_run("installed", store=tmp_path / "runs") as run:
        assert run.keys("effective_rank") == [("0", None), ("1", None), ("2", None)]
        for layer in ("0", "1", "2"):
            series = run.series("effective_rank", layer)
            assert series.steps.tolist() == [0, 1, 2]
            expected = [reference_effective_rank(activations[f"{layer}.{step}"]) for step in range(3)]
            np.testing.assert_allclose(series.values, expected, rtol=1e-6, err_msg=layer)
            last, low, high = series.values[-1], series.values.min(), series.values.max()
            row = f"| effective_rank | {layer} |  | 3 | 2 | {last:.6g} | {low:.6g} | {high:.6g} |"
            assert row in summary.splitlines()
