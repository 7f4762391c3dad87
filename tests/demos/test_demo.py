"""``ikkuna demo``: every framework trains the same CNN, stores the run, writes the report and
the TensorBoard logs, and a broken variant looks broken in the stored series."""

from __future__ import annotations

import numpy as np
import pytest

import ikkuna
from ikkuna.cli import main
from ikkuna.demos import run_demo
from ikkuna.demos.variants import LAYERS
from tests.conftest import FRAMEWORKS, require_framework

#: steps a peak of the broken run is compared over: a learning rate far too high blows the
#: weights up within a few steps, after which their update/weight ratio falls again
EARLY_STEPS = 10


def _global_ratio(outcome) -> np.ndarray:
    with ikkuna.open_run(outcome.run, store=outcome.monitor.store_path) as run:
        return run.series("global_update_to_weight_ratio").values


@pytest.fixture(params=FRAMEWORKS)
def framework(request) -> str:
    """Each framework name, with that framework imported (skips/fails as conftest says)."""
    request.getfixturevalue(request.param)
    require_framework("matplotlib")
    require_framework("tensorboard")
    return request.param


def test_broken_learning_rate_shows_in_the_stored_series_and_the_diagnosis(framework, private_store, capsys):
    healthy = run_demo(framework, epochs=1, run=f"{framework}-healthy")
    broken = run_demo(framework, epochs=1, run=f"{framework}-lr", breakage="lr")
    healthy_ratio, broken_ratio = _global_ratio(healthy), _global_ratio(broken)
    assert np.all(np.isfinite(healthy_ratio)) and np.all(np.isfinite(broken_ratio))
    early = np.median(broken_ratio[:EARLY_STEPS]) / np.median(healthy_ratio[:EARLY_STEPS])
    assert early >= 10, early
    assert broken_ratio.max() >= 10 * healthy_ratio.max()
    assert healthy.findings == []
    assert "learning_rate_too_high" in [finding.rule for finding in broken.findings]
    assert healthy.test_accuracy > 0.6 > 0.3 > broken.test_accuracy


def test_demo_stores_the_run_writes_report_and_tensorboard_and_says_where(framework, private_store, capsys):
    outcome = run_demo(framework, epochs=1, run=f"demo-{framework}")
    out = capsys.readouterr().out
    with ikkuna.open_run(outcome.run) as run:
        assert run.framework == framework
        assert len(run.series("loss")) == 23  # 1437 training digits in batches of 64
        assert [layer.name for layer in run.layers()] == list(LAYERS)
        assert set(ikkuna.DEFAULT_METRICS) - {"saturated_fraction"} <= set(run.metrics())
    assert outcome.report.is_file() and outcome.report.name == "index.html"
    assert outcome.report.is_relative_to(private_store)
    assert any(outcome.tensorboard.glob(f"{outcome.run}/events.out.tfevents.*"))
    for line in (f"run:         {outcome.run}", f"report:      {outcome.report}",
                 f"tensorboard: tensorboard --logdir {outcome.tensorboard}", "says:\n  no problems found"):
        assert line in out


def test_dying_relus_are_named_by_the_doctor(torch, private_store, capsys):
    outcome = run_demo("torch", epochs=1, run="dead", breakage="dead")
    dead = [finding for finding in outcome.findings if finding.rule == "dead_units"]
    assert {"relu1", "relu2", "relu3"} <= {layer for finding in dead for layer in finding.layers}
    assert "dead_units" in capsys.readouterr().out


def test_the_command_takes_framework_break_and_console(torch, private_store, capsys):
    require_framework("tqdm")
    assert main(["demo", "--framework", "torch", "--break", "init", "--epochs", "1",
                 "--run", "cli-init", "--console", "10"]) == 0
    captured = capsys.readouterr()
    assert "bad initialization" in captured.out
    assert "step 10" in captured.err  # the console table, every 10 steps
    with ikkuna.open_run("cli-init") as run:
        assert run.series("loss").steps.size == 23


def test_unknown_framework_or_break_names_what_is_accepted(capsys):
    with pytest.raises(ValueError, match="torch, keras, jax"):
        run_demo("mxnet")
    with pytest.raises(ValueError, match="lr, init, dead"):
        run_demo("torch", breakage="everything")
    with pytest.raises(SystemExit):
        main(["demo", "--break", "everything"])
    assert "choose from 'lr', 'init', 'dead'" in capsys.readouterr().err


def test_the_command_takes_no_abbreviated_options(capsys):
    """scripts/demo.sh reads --framework as written to pick what to install."""
    with pytest.raises(SystemExit):
        main(["demo", "--fram", "jax"])
    assert "unrecognized arguments: --fram" in capsys.readouterr().err


def test_a_negative_console_interval_names_the_option(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--console", "-1"])
    assert "--console: expected a whole number of steps >= 0, got '-1'" in capsys.readouterr().err


def test_a_framework_that_is_not_installed_names_what_to_install(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "optax", None)  # importing optax now fails
    assert main(["demo", "--framework", "jax", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert "pip install 'ikkuna[jax,demo]'" in err and "optax" in err
