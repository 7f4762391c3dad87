"""Each built-in rule names its problem and layer in a deliberately broken torch training,
stored and live; the healthy trainings on digits get no finding at all."""

from __future__ import annotations

import pytest

from ikkuna.doctor import rules
from tests.doctor.torch_cases import BROKEN, HEALTHY, diagnosed

#: Cases where exactly one thing is wrong: the doctor must say nothing else.
ALONE = ("loss_flat", "weights_not_updating", "saturated_activations")


def named(findings, rule):
    return [finding for finding in findings if finding.rule == rule]


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_training_is_named_with_its_layers_stored_and_live(torch, case):
    rule, layers = BROKEN[case]
    stored, monitor = diagnosed(torch, case)
    found = named(stored, rule)
    assert found, f"{case}: {[(f.rule, f.layers) for f in stored]}"
    finding = found[0]
    if layers is not None:
        assert finding.layers == layers
    else:
        assert "0" in finding.layers
    assert finding.hint and finding.message and finding.evidence
    assert finding.key in monitor.doctor.detected_at  # the live doctor saw it during training
    assert {f.key for f in stored} <= set(monitor.doctor.detected_at)
    if case in ALONE:
        assert [f.rule for f in stored] == [rule]


def test_nan_origin_is_the_layer_and_step_where_x_over_0_started(torch):
    stored, monitor = diagnosed(torch, "nan_or_inf")
    first = stored[0]
    assert (first.rule, first.layers, first.steps[0]) == ("nan_or_inf", ("2",), 3)
    assert first.severity == "error"
    assert "activation" in first.message and "step 3" in first.message
    assert monitor.doctor.detected_at[first.key] == 3


def test_activation_scale_finding_says_it_grows(torch):
    stored, _ = diagnosed(torch, "activation_scale_with_depth")
    (finding,) = named(stored, "activation_scale_with_depth")
    assert "grows" in finding.message
    assert finding.evidence["activation_std 16"] > (
        rules.DEPTH_SCALE_FACTOR * finding.evidence["activation_std 0"])


@pytest.mark.parametrize("case", HEALTHY)
def test_healthy_digits_training_has_no_finding(torch, case):
    stored, monitor = diagnosed(torch, case, metrics="default")
    assert stored == []
    assert monitor.doctor.detected_at == {}
