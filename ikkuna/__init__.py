"""ikkuna: see inside neural-network training, whatever the framework.

    monitor = ikkuna.attach(model, optimizer=optimizer)
    ...train as usual...
    monitor.detach()

Only numpy and pluggy are imported here; each framework is imported by its adapter on use.
"""

from __future__ import annotations

from ikkuna.adapters.base import Adapter
from ikkuna.core.arrays import Array, Layout
from ikkuna.core.attach import DEFAULT_METRICS, PRESETS, attach
from ikkuna.core.bus import Problem
from ikkuna.core.errors import (
    IkkunaError,
    IncompatiblePluginError,
    PluginConflictError,
    RunNotFoundError,
    UnknownMetricError,
    UnknownSinkError,
    UnsupportedMetricError,
    UnsupportedModelError,
)
from ikkuna.core.events import Event, Histogram, Record
from ikkuna.core.hookspecs import PLUGIN_API_VERSION, hookimpl, hookspec
from ikkuna.core.layers import LayerInfo
from ikkuna.core.metric import EventGroup, Metric
from ikkuna.core.monitor import Monitor
from ikkuna.core.plugins import PluginManager, get_plugin_manager
from ikkuna.core.probe import Probe, ProbeParameter, ProbeSession
from ikkuna.core.schedule import Every
from ikkuna.core.sink import RunInfo, Sink
from ikkuna.core.statistics import Moments
from ikkuna.doctor import Finding, TrainingProblem, TrainingWarning, diagnose
from ikkuna.sinks.reader import Run, Series, list_runs, open_run
from ikkuna.sinks.schema import store_directory

__version__ = "0.1.0"


def __getattr__(name: str):
    """``ikkuna.keras`` and ``ikkuna.jax`` are imported on first use (they import frameworks)."""
    if name in ("keras", "jax"):
        import importlib

        return importlib.import_module(f"ikkuna.{name}")
    raise AttributeError(f"module 'ikkuna' has no attribute {name!r}")

__all__ = [
    "DEFAULT_METRICS",
    "Adapter",
    "Array",
    "Event",
    "Finding",
    "EventGroup",
    "Every",
    "Histogram",
    "IkkunaError",
    "IncompatiblePluginError",
    "LayerInfo",
    "Layout",
    "Metric",
    "Moments",
    "PLUGIN_API_VERSION",
    "PRESETS",
    "Monitor",
    "PluginConflictError",
    "PluginManager",
    "Probe",
    "ProbeParameter",
    "ProbeSession",
    "Problem",
    "Record",
    "Run",
    "RunInfo",
    "RunNotFoundError",
    "Series",
    "Sink",
    "TrainingProblem",
    "TrainingWarning",
    "UnknownMetricError",
    "UnknownSinkError",
    "UnsupportedMetricError",
    "UnsupportedModelError",
    "attach",
    "diagnose",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "list_runs",
    "open_run",
    "store_directory",
]
