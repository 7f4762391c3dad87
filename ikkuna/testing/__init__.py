"""Helpers to test a metric plugin on every framework without writing framework code.

- :func:`check_layouts` runs a metric on synthetic training steps laid out as torch, Keras
  and JAX lay them out (no framework needed) and asserts the same values in each;
- :func:`run_metric` runs a metric on any events, through ikkuna's own bus, and
  :func:`synthetic_steps` makes such events;
- :func:`check_parity` trains the parity networks (the same MLP and CNN, weights and batches)
  in every installed framework with the metric attached and asserts the same values;
- :class:`MemorySink` keeps records in memory, to test a monitored run or a sink.

The parity networks import their framework on use; the rest needs numpy only.
"""

from __future__ import annotations

from ikkuna.testing.checks import (
    MemorySink,
    check_layouts,
    check_parity,
    installed_frameworks,
    parity_results,
)
from ikkuna.testing.running import (
    MetricFailed,
    Results,
    assert_results_close,
    results_of,
    run_metric,
)
from ikkuna.testing.synthetic import LAYOUTS, NETWORK, SYNTHETIC_KINDS, layers, synthetic_steps

__all__ = [
    "LAYOUTS",
    "NETWORK",
    "SYNTHETIC_KINDS",
    "MemorySink",
    "MetricFailed",
    "Results",
    "assert_results_close",
    "check_layouts",
    "check_parity",
    "installed_frameworks",
    "layers",
    "parity_results",
    "results_of",
    "run_metric",
    "synthetic_steps",
]
