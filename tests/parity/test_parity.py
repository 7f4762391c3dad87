"""The same network, weights and batches give the same events and metric values in every framework.

PyTorch is the reference; each other framework's run is compared after canonical layout
(``as_channels_last`` for activations, ``as_matrix`` for parameters) to relative 1e-5.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import ikkuna
from ikkuna.core import kinds as K
from ikkuna.metrics import BUILTIN_METRICS
from ikkuna.testing import parity
from ikkuna.testing.parity import ARCHITECTURES, STEPS

COMPARED_KINDS = (K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.GRADIENTS, K.WEIGHTS, K.UPDATES)
RELATIVE = 1e-5
#: Options that make a built-in metric record within the parity runs' STEPS steps.
METRIC_OPTIONS = {"dead_unit_fraction": {"window": 2}}


#: The built-in metrics compared: all but those that need a probe batch (``probe=``).
COMPARED_METRICS = [m for m in BUILTIN_METRICS if m.cost != "probe"]


def builtin_metrics() -> list:
    """The compared metrics: by name, or as an instance where METRIC_OPTIONS has options."""
    return [m(**METRIC_OPTIONS[m.name]) if m.name in METRIC_OPTIONS else m.name
            for m in COMPARED_METRICS]


class CanonicalRecorder(ikkuna.Metric):
    """Keeps every array of its kind in canonical layout, keyed by (layer, param, step)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[tuple[str | None, str | None, int], np.ndarray] = {}

    def compute(self, group: ikkuna.EventGroup) -> None:
        array = group.array(self.needs[0])
        canonical = array.as_matrix() if self.needs[0] in K.PARAMETER_KINDS else array.as_channels_last()
        key = (group.layer.name if group.layer else None, group.param, group.step)
        assert key not in self.seen, f"{self.name} called twice for {key}"
        self.seen[key] = np.array(canonical, dtype=np.float64)


def recorders() -> dict[str, CanonicalRecorder]:
    return {
        kind: type(f"Canonical_{kind}", (CanonicalRecorder,),
                   {"name": f"canonical_{kind}", "needs": (kind,)})()
        for kind in COMPARED_KINDS
    }


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str,
                 scale: float | None = None) -> None:
    """Relative 1e-5; entries near zero are judged against ``scale`` (default: the array's)."""
    if scale is None:
        scale = float(np.max(np.abs(expected))) * 0.1 if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=RELATIVE, atol=RELATIVE * scale,
                               err_msg=what)


#: Every framework and training style compared with torch.
CANDIDATES = [(framework, style) for framework in ("keras", "jax")
              for style in parity.styles(framework)]
CANDIDATE_IDS = [f"{framework}-{style}" for framework, style in CANDIDATES]


def run(framework: str, module: Any, architecture: str, style: str | None, **options: Any):
    """Train in ``framework`` (its fixture ``module`` is imported and seeded) under attach."""
    return parity.train(framework, architecture, style, **options)


@pytest.fixture(scope="module")
def torch_reference(tmp_path_factory):
    """The torch runs, made once per architecture, with a store of their own."""
    return {"store": tmp_path_factory.mktemp("torch-reference")}


def reference(torch, architecture: str, cache: dict) -> tuple[dict, Any]:
    """Canonical arrays and the monitor (whose run holds every built-in metric) of torch."""
    if architecture not in cache:
        recorded = recorders()
        monitor = run("torch", torch, architecture, None, store=cache["store"],
                      metrics=[*recorded.values(), *builtin_metrics()])
        cache[architecture] = ({k: r.seen for k, r in recorded.items()}, monitor)
    return cache[architecture]


@pytest.mark.parametrize(("framework", "style"), CANDIDATES, ids=CANDIDATE_IDS)
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_framework_matches_torch_event_by_event(request, torch, framework, style, architecture,
                                                torch_reference):
    module = request.getfixturevalue(framework)
    expected, _ = reference(torch, architecture, torch_reference)
    recorded = recorders()
    run(framework, module, architecture, style, metrics=list(recorded.values()), sinks=[])
    for kind in COMPARED_KINDS:
        actual = recorded[kind].seen
        assert set(actual) == set(expected[kind]), f"{kind}: different (layer, param, step) keys"
        assert {step for _, _, step in actual} == set(range(STEPS))
        for key, values in expected[kind].items():
            assert actual[key].shape == values.shape, f"{kind} {key}: shape"
            # An update is the difference of two float32 weights: it is exact only to the
            # weights' rounding, so it is judged against the weights it changed.
            scale = np.max(np.abs(expected[K.WEIGHTS][key])) if kind == K.UPDATES else None
            assert_close(actual[key], values, f"{kind} {key}", scale)


@pytest.mark.parametrize(("framework", "style"), CANDIDATES, ids=CANDIDATE_IDS)
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_framework_matches_torch_for_every_builtin_metric(request, torch, framework, style,
                                                          architecture, torch_reference):
    module = request.getfixturevalue(framework)
    _, torch_monitor = reference(torch, architecture, torch_reference)
    other = run(framework, module, architecture, style, metrics=builtin_metrics())
    with ikkuna.open_run(torch_monitor.run, store=torch_monitor.store_path) as expected, \
            ikkuna.open_run(other.run) as actual:
        metrics = [m for m in expected.metrics() if not m.startswith("canonical_")]
        assert {m.name for m in COMPARED_METRICS} <= set(metrics)
        assert set(actual.metrics()) >= set(metrics)
        for metric in metrics:
            keys = expected.keys(metric)
            assert actual.keys(metric) == keys, metric
            for layer, param in keys:
                if "histogram" in metric:
                    _compare_histograms(expected, actual, metric, layer, param)
                    continue
                want = expected.series(metric, layer, param)
                got = actual.series(metric, layer, param)
                np.testing.assert_array_equal(got.steps, want.steps)
                assert_close(got.values, want.values, f"{metric} {layer}.{param}")


def _compare_histograms(expected, actual, metric: str, layer: str | None, param: str | None) -> None:
    for (step_a, want), (step_b, got) in zip(expected.histograms(metric, layer, param),
                                             actual.histograms(metric, layer, param), strict=True):
        assert step_a == step_b
        # edges are evenly spaced from min to max: an inner edge near 0 is exact only to the range
        assert_close(got.edges, want.edges, f"{metric} {layer}.{param} edges at {step_a}",
                     scale=float(np.max(np.abs(want.edges))))
        # values on a bin edge may fall either side between frameworks: counts agree to 1 value
        assert np.abs(got.counts - want.counts).sum() <= 2, f"{metric} {layer}.{param} at {step_a}"
        assert got.counts.sum() == want.counts.sum()
