"""``ikkuna doctor``: findings most severe first with their evidence and hint; exit status."""

from __future__ import annotations

import warnings

import ikkuna
from ikkuna.cli import main
from tests.doctor import torch_cases


def train(torch, name: str) -> None:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        torch_cases.train(torch, getattr(torch_cases, name)(torch), run=name)


def test_doctor_prints_the_nan_origin_first_with_layer_steps_evidence_and_hint(torch, capsys):
    train(torch, "nan_or_inf")
    assert main(["doctor", "nan_or_inf"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("run nan_or_inf: 2 findings (2 errors)")
    first = lines[2]
    assert first.startswith("error: nan_or_inf in 2 (steps 3-9): activation_mean of layer '2' is")
    assert "at step 3" in first
    assert lines[3].startswith("  evidence: activation_mean 2 @ 3 = nan")
    assert lines[4].startswith("  hint: layer '2' computes a non-finite output at step 3")
    assert "error: loss_diverging (steps 3-9): the loss became nan at step 3" in out


def test_doctor_of_a_healthy_run_says_no_problems_found(torch, capsys, private_store):
    train(torch, "healthy_mlp")
    assert main(["doctor", "--store", str(private_store)]) == 0  # the latest run
    assert capsys.readouterr().out == "run healthy_mlp: no problems found\n"


def test_doctor_of_an_unknown_run_fails_naming_the_runs_there(torch, capsys):
    train(torch, "nan_or_inf")
    assert main(["doctor", "no-such-run"]) == 1
    err = capsys.readouterr().err
    assert "no-such-run" in err and "nan_or_inf" in err


def test_doctor_without_a_store_fails(capsys, private_store):
    assert main(["doctor"]) == 1
    assert str(private_store) in capsys.readouterr().err


def test_diagnose_reads_the_same_findings_by_name_run_and_monitor(torch):
    train(torch, "weights_not_updating")
    by_name = ikkuna.diagnose("weights_not_updating")
    with ikkuna.open_run("weights_not_updating") as run:
        assert ikkuna.diagnose(run) == by_name
    assert [f.rule for f in by_name] == ["weights_not_updating"]
