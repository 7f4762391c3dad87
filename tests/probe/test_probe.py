"""ikkuna.Probe and the probe metrics' checks at attach (no framework needed for most)."""

from __future__ import annotations

import numpy as np
import pytest

import ikkuna
from ikkuna.core.attach import expand_presets
from ikkuna.core.plugins import get_plugin_manager
from ikkuna.metrics.probing import PROBING_METRICS


def test_probe_accepts_arrays_and_tuples_and_dicts_of_arrays_with_one_batch_size():
    probe = ikkuna.Probe((np.zeros((6, 2)), {"mask": np.ones((6, 3))}), np.zeros(6), lambda o, t: 0)
    assert probe.batch_size == 6
    parts = probe.split(3)
    assert len(parts) == 3
    assert parts[1][0][0].shape == (2, 2) and parts[1][0][1]["mask"].shape == (2, 3)
    assert parts[2][1].shape == (2,)


@pytest.mark.parametrize("inputs, message", [
    ([1, 2, 3], "numpy array or native tensor"),
    (np.float32(1.0), "numpy array or native tensor"),
    ((np.zeros((4, 1)), np.zeros((5, 1))), "different batch sizes"),
    (np.zeros((1, 3)), "at least 2 samples"),
])
def test_probe_refuses_what_is_not_a_batch_naming_what_is_accepted(inputs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        ikkuna.Probe(inputs)


def test_probe_refuses_targets_of_another_batch_size_and_a_loss_that_is_not_callable():
    with pytest.raises(ValueError, match="targets"):
        ikkuna.Probe(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(TypeError, match="loss"):
        ikkuna.Probe(np.zeros((4, 2)), np.zeros(4), loss="mse")


def test_split_needs_a_number_of_groups_that_divides_the_batch():
    with pytest.raises(ValueError, match="divides 6"):
        ikkuna.Probe(np.zeros((6, 2))).split(4)


def test_the_full_preset_includes_probe_metrics_only_with_a_probe():
    known = get_plugin_manager().metrics()
    names = {m.name for m in PROBING_METRICS}
    assert not names & set(expand_presets(["full"], known, None))
    with_batch = ikkuna.Probe(np.zeros((4, 2)))
    assert set(expand_presets(["full"], known, None, probe=with_batch)) & names == {"svcca_similarity"}
    with_loss = ikkuna.Probe(np.zeros((4, 2)), np.zeros(4), lambda o, t: 0)
    assert names <= set(expand_presets(["full"], known, None, probe=with_loss))


def test_attach_refuses_a_probe_of_the_wrong_type(torch):
    model = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"probe= takes an ikkuna.Probe"):
        ikkuna.attach(model, probe=(np.zeros((4, 2)),), metrics=[])


@pytest.mark.parametrize("metric", [m.name for m in PROBING_METRICS])
def test_attach_refuses_a_probe_metric_without_a_probe_naming_probe(torch, metric):
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"probe=ikkuna.Probe"):
        ikkuna.attach(model, metrics=[metric])


@pytest.mark.parametrize("metric", ["gradient_noise_scale", "gradient_snr", "hessian_trace",
                                    "hessian_top_eigenvalue"])
def test_attach_refuses_gradient_and_curvature_metrics_without_the_probe_loss(torch, metric):
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"loss="):
        ikkuna.attach(model, metrics=[metric], probe=ikkuna.Probe(np.zeros((4, 2), np.float32)))


def test_an_adapter_without_the_probe_refuses_probe_metrics_naming_those_that_have_it(jax):
    params = {"dense": {"kernel": jax.numpy.zeros((2, 2)), "bias": jax.numpy.zeros(2)}}
    probe = ikkuna.Probe(np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32), lambda o, t: 0)
    with pytest.raises(ikkuna.UnsupportedMetricError,
                       match=r"probe_activations.*jax-pytree.*jax, keras, torch"):
        ikkuna.attach(params, metrics=["svcca_similarity"], probe=probe)
