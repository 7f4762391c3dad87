"""Run one metric over events the way a monitor does, and compare what it recorded."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ikkuna.core import kinds as K
from ikkuna.core.bus import Bus, MetricSlot, Problem
from ikkuna.core.events import Event, Histogram, Record, RecordValue
from ikkuna.core.metric import Metric

#: What a metric recorded: ``(metric, layer, param, step) -> value`` (a float, a 1-d array or
#: a Histogram). ``metric`` is the record's name (``name.key`` for dict results).
ResultKey = tuple[str, str | None, str | None, int]
Results = dict[ResultKey, RecordValue]
MetricLike = Metric | type[Metric]


class MetricFailed(AssertionError):
    """The metric raised (the monitor would have disabled it); the message has its traceback."""


def as_metric(metric: MetricLike) -> Metric:
    """A fresh metric to run: a class is instantiated, an instance is deep-copied (so each run
    starts from the same state); the class must pass :meth:`ikkuna.Metric.validate`."""
    if isinstance(metric, type) and issubclass(metric, Metric):
        metric.validate()
        return metric()
    if isinstance(metric, Metric):
        type(metric).validate()
        return copy.deepcopy(metric)
    raise TypeError(f"expected an ikkuna.Metric subclass or instance, got {type(metric).__name__}")


def run_metric(metric: MetricLike, steps: Iterable[Iterable[Event]], *, run: str = "test") -> Results:
    """Hand ``steps`` (events grouped by step) to ``metric`` through ikkuna's own bus.

    The bus does what it does in training: it groups the kinds the metric ``needs`` per
    (layer, param, step), honours ``layers``, ``every`` and ``applies_to``, computes only the
    declared ``statistic`` for metrics that set one (so such a metric fails here if it reads
    values), and calls ``finish_step``. A metric that raises makes this raise
    :class:`MetricFailed` with the traceback, instead of being disabled with a warning.
    """
    metric = as_metric(metric)
    probe_kinds = sorted(K.PROBE_KINDS.intersection(type(metric).needs))
    if probe_kinds:
        raise ValueError(
            f"metric {type(metric).name!r} needs {probe_kinds}, which only a training run with "
            "attach(probe=...) gives; test it with ikkuna.testing.parity_results(..., probe=...)"
        )
    problems: list[Problem] = []
    bus = Bus([MetricSlot(metric, plugin="ikkuna.testing")], run, problems.append)
    records: list[Record] = []
    with warnings.catch_warnings():
        # the bus's "disabled" warning: the failure is raised below instead (numpy's own
        # warnings from the metric still show)
        warnings.filterwarnings("ignore", message=r"ikkuna: metric .* raised", category=RuntimeWarning)
        for index, events in enumerate(steps):
            events = list(events)
            first = events[0] if events else None
            bus.open_step(first.step if first else index, first.epoch if first else 0)
            for event in events:
                bus.publish(event)  # a kind the metric does not need is dropped there
            records += bus.close_step()
            if problems:
                problem = problems[0]
                where = f"layer {problem.layer!r}, " if problem.layer else ""
                raise MetricFailed(f"metric {type(metric).name!r} raised at {where}step {problem.step} "
                                   f"(in ikkuna.testing.run_metric):\n{problem.details}")
    return results_of(records)


def results_of(records: Iterable[Record]) -> Results:
    """Records as :data:`Results`: ``(metric, layer, param, step) -> value``."""
    return {(r.metric, r.layer, r.param, r.step): r.value for r in records}


def assert_results_close(actual: Mapping[ResultKey, Any], expected: Mapping[ResultKey, Any], *,
                         rtol: float = 1e-5, atol: float = 0.0, what: str = "results") -> None:
    """Assert two results hold the same keys and values to a relative ``rtol``.

    A value near zero is judged against the largest value of its series (same metric, layer
    and param), as float32 arithmetic in different frameworks differs by rounding only, and
    every value may also differ by ``atol`` (for series that are zero but for rounding).
    Histograms must have the same total count, edges to ``rtol`` of their range, and counts
    that differ by at most 2 (a value on a bin edge may fall either side).
    """
    missing = sorted(map(str, set(expected) - set(actual)))
    extra = sorted(map(str, set(actual) - set(expected)))
    if missing or extra:
        raise AssertionError(f"{what}: keys differ; missing {missing[:5]}, unexpected {extra[:5]}")
    scales: dict[tuple[Any, ...], float] = {}
    for key, value in expected.items():
        if not isinstance(value, Histogram):
            series = key[:3]
            scales[series] = max(scales.get(series, 0.0), float(np.nanmax(np.abs(np.append(
                np.asarray(value, dtype=np.float64), 0.0)), initial=0.0)))
    for key, want in expected.items():
        got = actual[key]
        where = f"{what}: {key[0]} layer={key[1]} param={key[2]} step={key[3]}"
        if isinstance(want, Histogram):
            _assert_histograms_close(got, want, rtol, where)
            continue
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                                   rtol=rtol, atol=atol + rtol * 0.1 * scales[key[:3]], err_msg=where)


def _assert_histograms_close(got: Any, want: Histogram, rtol: float, where: str) -> None:
    if not isinstance(got, Histogram):
        raise AssertionError(f"{where}: expected a Histogram, got {type(got).__name__}")
    scale = float(np.max(np.abs(want.edges))) if want.edges.size else 0.0
    np.testing.assert_allclose(got.edges, want.edges, rtol=rtol, atol=rtol * scale,
                               err_msg=f"{where} (edges)")
    if got.counts.sum() != want.counts.sum() or np.abs(got.counts - want.counts).sum() > 2:
        raise AssertionError(f"{where}: counts {got.counts.tolist()} != {want.counts.tolist()}")
