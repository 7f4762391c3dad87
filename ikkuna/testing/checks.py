"""Checks a plugin author runs on a metric: layouts on synthetic steps, parity on real models."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from typing import Any

from ikkuna.core.events import Record
from ikkuna.core.sink import RunInfo, Sink
from ikkuna.testing import parity
from ikkuna.testing.running import (
    MetricLike,
    Results,
    as_metric,
    assert_results_close,
    results_of,
    run_metric,
)
from ikkuna.testing.synthetic import LAYOUTS, synthetic_steps


class MemorySink(Sink):
    """Keeps every record of a run in memory (``records``); for tests."""

    name = "memory"

    def __init__(self) -> None:
        self.run: RunInfo | None = None
        self.records: list[Record] = []

    def open(self, run: RunInfo) -> None:
        self.run = run

    def write(self, records: Sequence[Record]) -> None:
        self.records.extend(records)


def check_layouts(metric: MetricLike, *, steps: int = 3, seed: int = 0, rtol: float = 1e-6,
                  atol: float = 0.0) -> Results:
    """Run ``metric`` on the same synthetic steps in torch, Keras and JAX layouts (no framework
    needed) and assert it records the same values in each; return the torch layout's results.

    Fails if the metric records nothing at all, which usually means its ``needs`` or
    ``applies_to`` exclude every synthetic layer.
    """
    reference: Results | None = None
    for framework in LAYOUTS:
        results = run_metric(metric, synthetic_steps(framework, steps=steps, seed=seed))
        if reference is None:
            if not results:
                name = type(as_metric(metric)).name
                raise AssertionError(f"metric {name!r} recorded nothing on the synthetic steps")
            reference = results
        else:
            assert_results_close(results, reference, rtol=rtol, atol=atol,
                                 what=f"{framework} layout vs torch")
    assert reference is not None
    return reference


def installed_frameworks() -> tuple[str, ...]:
    """The frameworks whose parity networks can run here (their modules are importable)."""
    return tuple(framework for framework, modules in parity.REQUIRED_MODULES.items()
                 if all(importlib.util.find_spec(module) is not None for module in modules))


def parity_results(metric: MetricLike, framework: str, network: str = "mlp",
                   style: str | None = None, **attach_options: Any) -> Results:
    """Train a parity network (``"mlp"`` or ``"cnn"``) in ``framework`` with only ``metric``
    attached and return what it recorded (not the loss the trainer logs). ``attach_options``
    go to ``ikkuna.attach``."""
    sink = MemorySink()
    fresh = as_metric(metric)
    name = type(fresh).name
    parity.train(framework, network, style, metrics=[fresh], sinks=[sink], **attach_options)
    return results_of(record for record in sink.records
                      if record.metric == name or record.metric.startswith(f"{name}."))


def check_parity(metric: MetricLike, *, frameworks: str | Sequence[str] | None = None,
                 networks: str | Sequence[str] = ("mlp", "cnn"), rtol: float = 1e-5,
                 atol: float = 0.0, **attach_options: Any) -> dict[tuple[str, str], Results]:
    """Train the parity networks in every installed framework (or ``frameworks``) with
    ``metric`` and assert each records the same values as the first framework, to ``rtol``
    (and ``atol``, see :func:`assert_results_close`).

    Returns ``{(framework, network): results}``. Raises if no framework is installed or the
    metric records nothing on a network; warns that nothing was compared where only one
    framework runs.
    """
    chosen = _names(frameworks) if frameworks is not None else installed_frameworks()
    if not chosen:
        raise RuntimeError(
            "no framework is installed to run the parity networks; install one of "
            f"{', '.join(parity.REQUIRED_MODULES)} (pip install 'ikkuna[torch]')"
        )
    if len(chosen) == 1:
        warnings.warn(f"check_parity ran only {chosen[0]}: nothing was compared; install a "
                      "second framework to check parity", UserWarning, stacklevel=2)
    networks = _names(networks)
    name = type(as_metric(metric)).name
    found: dict[tuple[str, str], Results] = {}
    for network in networks:
        for framework in chosen:
            results = parity_results(metric, framework, network, **attach_options)
            if not results:
                raise AssertionError(f"metric {name!r} recorded nothing on the {framework} {network}")
            reference = found.get((chosen[0], network))
            if reference is not None:
                assert_results_close(results, reference, rtol=rtol, atol=atol,
                                     what=f"{name} on the {network}: {framework} vs {chosen[0]}")
            found[(framework, network)] = results
    return found


def _names(given: str | Sequence[str]) -> tuple[str, ...]:
    """One name or several, as a tuple (``"torch"`` is one name, not five letters)."""
    return (given,) if isinstance(given, str) else tuple(given)
