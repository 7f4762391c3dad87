"""``attach(doctor=...)`` in torch: warn once per finding, raise out of the training loop."""

from __future__ import annotations

import warnings

import pytest

import ikkuna
from tests.doctor import torch_cases
from tests.doctor.torch_cases import BATCH, data, nan_from


def nan_training(torch, **attach):
    """The x/0-from-step-3 model in a plain loop; returns (monitor, where) where ``where``
    lists (step, call) in the order the loop made them, up to the one that raised."""
    torch.manual_seed(0)
    model = nan_from(torch, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    inputs, labels = (torch.from_numpy(a) for a in data(images=False))
    where: list[tuple[int, str]] = []
    monitor = ikkuna.attach(model, optimizer=optimizer, sinks=[], **attach)
    with monitor:
        for step in range(8):
            batch = slice(step * BATCH, (step + 1) * BATCH)
            where.append((step, "model(x)"))
            loss = torch.nn.functional.cross_entropy(model(inputs[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            where.append((step, "optimizer.step()"))
            optimizer.step()
            monitor.log(loss=loss.item())
    return monitor, where


def test_warn_warns_each_finding_once_without_a_store(torch):
    with pytest.warns(ikkuna.TrainingWarning) as caught:
        monitor, _ = nan_training(torch, doctor="warn", doctor_every=1)
    messages = [str(w.message) for w in caught if issubclass(w.category, ikkuna.TrainingWarning)]
    assert len(messages) == len(set(messages)) == len(monitor.doctor.findings) == 2
    assert messages[0].startswith("ikkuna doctor: error: nan_or_inf in 2 (step 3): activation_mean")
    assert "hint:" in messages[0]
    assert monitor.doctor.detected_at == {("nan_or_inf", ("2",)): 3, ("loss_diverging", ()): 3}


def test_raise_stops_the_loop_in_the_next_forward_pass_with_the_finding(torch):
    with pytest.raises(ikkuna.TrainingProblem) as raised:
        nan_training(torch, doctor="raise", doctor_every=1)
    finding = raised.value.finding
    assert (finding.rule, finding.layers, finding.steps) == ("nan_or_inf", ("2",), (3, 3))
    assert [f.rule for f in raised.value.findings] == ["nan_or_inf", "loss_diverging"]
    assert "nan_or_inf in 2" in str(raised.value)
    # step 3 ran to its end; the rules ran when step 4's forward pass closed it
    frames = [frame.name for frame in raised.traceback]
    assert "nan_training" in frames and "_on_model_forward" in frames


def test_raise_reports_each_finding_once_and_training_can_go_on(torch):
    torch.manual_seed(0)
    model = nan_from(torch, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    inputs, labels = (torch.from_numpy(a) for a in data(images=False))
    raised = []
    with ikkuna.attach(model, optimizer=optimizer, sinks=[], doctor="raise", doctor_every=1) as m:
        for step in range(8):
            try:
                loss = torch.nn.functional.cross_entropy(model(inputs[:BATCH]), labels[:BATCH])
            except ikkuna.TrainingProblem as problem:
                raised.append((step, problem.finding.rule))
                loss = torch.nn.functional.cross_entropy(model(inputs[:BATCH]), labels[:BATCH])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            m.log(loss=loss.item())
    assert raised == [(4, "nan_or_inf")]
    assert m.step == 7


def test_a_finding_of_the_last_steps_is_raised_by_detach(torch):
    with pytest.raises(ikkuna.TrainingProblem) as raised:
        nan_training(torch, doctor="raise", doctor_every=1000)
    assert raised.value.finding.rule == "nan_or_inf"
    frames = [frame.name for frame in raised.traceback]
    assert "detach" in frames


def test_doctor_every_sets_the_steps_after_which_rules_run(torch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ikkuna.TrainingWarning)
        monitor, _ = nan_training(torch, doctor="warn", doctor_every=5)
    assert set(monitor.doctor.detected_at.values()) == {4}  # after steps 4, 9, ... and detach


def test_the_live_doctor_finds_what_diagnose_finds_in_the_store(torch):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ikkuna.TrainingWarning)
        monitor = torch_cases.train(torch, torch_cases.weights_not_updating(torch), run="frozen",
                                    doctor="warn")
    assert ikkuna.diagnose(monitor) == ikkuna.diagnose("frozen")
    assert [f.rule for f in monitor.doctor.findings] == ["weights_not_updating"]


@pytest.mark.parametrize("options, accepted", [
    ({"doctor": "loud"}, "doctor= takes None, 'warn' or 'raise', got 'loud'"),
    ({"doctor": True}, "doctor= takes None, 'warn' or 'raise', got True"),
    ({"doctor": "warn", "doctor_every": 0}, "doctor_every= takes an int >= 1"),
    ({"doctor": "raise", "doctor_every": 2.5}, "doctor_every= takes an int >= 1"),
])
def test_bad_doctor_options_are_refused_naming_what_is_accepted(torch, options, accepted):
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match=accepted.replace("(", r"\(").replace(")", r"\)")):
        ikkuna.attach(model, sinks=[], **options)
    assert not model._forward_pre_hooks  # nothing was installed
