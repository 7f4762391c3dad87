"""The ikkuna command: list, runs, show, demo."""

from __future__ import annotations

import numpy as np
import pytest

import ikkuna
from ikkuna.cli import main


def _train_two_steps(torch, run: str) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with ikkuna.attach(model, optimizer=optimizer, run=run) as monitor:
        for _ in range(2):
            loss = model(torch.ones(2, 3)).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            monitor.log(loss=loss)


def test_list_shows_builtin_metrics_sinks_and_adapters_with_their_plugin(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name, plugin in (("weight_norm", "ikkuna.metrics"), ("store", "ikkuna.sinks"),
                         ("torch", "ikkuna.adapters")):
        line = next(line for line in out.splitlines() if line.split()[:1] == [name])
        assert plugin in line


def test_runs_without_a_store_says_where_it_looked_and_fails(capsys, private_store):
    assert main(["runs"]) == 1
    assert str(private_store) in capsys.readouterr().err


def test_runs_lists_stored_runs_with_their_step_count(torch, capsys):
    _train_two_steps(torch, "first")
    _train_two_steps(torch, "second")
    assert main(["runs"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(rows) == {"first", "second"}
    assert rows["first"][1] == "torch" and rows["first"][-2] == "2"


def test_show_prints_the_last_value_of_each_metric_per_layer(torch, capsys):
    _train_two_steps(torch, "shown")
    assert main(["show", "shown"]) == 0
    out = capsys.readouterr().out
    with ikkuna.open_run("shown") as run:
        expected = run.series("weight_norm", "0", "weight").values[-1]
        loss = run.series("loss").values[-1]
    header = next(line for line in out.splitlines() if line.startswith("layer"))
    start = header.index("weight_norm")
    row = next(line for line in out.splitlines() if line.startswith("0.weight"))
    assert float(row[start:].split()[0]) == pytest.approx(expected, rel=1e-3)
    loss_row = next(line.split() for line in out.splitlines() if line.startswith("loss"))
    assert float(loss_row[2]) == pytest.approx(loss, rel=1e-3)


def test_show_unknown_run_fails_and_lists_the_runs_there(torch, capsys):
    _train_two_steps(torch, "present")
    assert main(["show", "absent"]) == 1
    err = capsys.readouterr().err
    assert "absent" in err and "present" in err


def test_demo_trains_stores_a_run_and_prints_where_it_is(torch, capsys, private_store):
    assert main(["demo", "--epochs", "1", "--run", "demo-test"]) == 0
    out = capsys.readouterr().out
    assert "run:         demo-test" in out
    assert str(private_store / "ikkuna.sqlite") in out
    with ikkuna.open_run("demo-test") as run:
        loss = run.series("loss")
        assert len(loss) == 23  # 1437 training digits in batches of 64
        assert np.mean(loss.values[-5:]) < np.mean(loss.values[:5])
        # saturated_fraction records nothing: the demo's CNN has no bounded activation
        assert set(ikkuna.DEFAULT_METRICS) - {"saturated_fraction"} <= set(run.metrics())
        assert "conv1" in [layer.name for layer in run.layers()]
