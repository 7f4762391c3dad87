"""Stored runs for the report tests, written straight through the store sink (no framework)."""

from __future__ import annotations

import numpy as np

from ikkuna.core.events import Histogram, Record
from ikkuna.core.layers import LayerInfo
from ikkuna.core.sink import RunInfo
from ikkuna.sinks.store import StoreSink

SCRIPT_LAYER = "<script>alert(1)</script>"
PARAMS = {"weight": "weight", "bias": "bias"}
LAYERS = (
    LayerInfo("conv", "conv2d", "numpy", PARAMS),
    LayerInfo(SCRIPT_LAYER, "dense", "numpy", PARAMS),
    LayerInfo("head", "dense", "numpy", {"kernel": "weight", "bias": "bias"}),
)
STEPS = 20
NAN_STEP = 12
#: A metric name a plugin might choose: characters no file name may hold, and markup.
ODD_METRIC = "plugin/odd name:<i> $\\frac$"
#: metric -> (layer, param) keys written by :func:`write_run`; histograms are vectors.
SCALAR_METRICS = {
    "loss": [(None, None)],
    "learning_rate": [(None, None)],
    "weight_norm": [(layer.name, param) for layer in LAYERS for param in ("weight", "bias")],
    "gradient_norm": [(layer.name, param) for layer in LAYERS for param in ("weight", "bias")],
    "activation_mean": [(layer.name, None) for layer in LAYERS],
    ODD_METRIC: [("conv", None)],
}
HISTOGRAM_METRICS = {
    "weight_histogram": [(layer.name, "weight") for layer in LAYERS],
    "activation_counts": [("head", None)],
}


def write_run(store, name: str, *, metrics: set[str] | None = None, scale: float = 1.0) -> str:
    """A run of :data:`STEPS` steps with every metric above (or those in ``metrics``): loss
    falling over decades, a NaN gradient norm in ``head`` from :data:`NAN_STEP`. Returns the
    stored name."""
    sink = StoreSink(store)
    sink.open(RunInfo(name, "numpy", LAYERS, config={"lr": 0.1, "note": "<b>config</b>"},
                      versions={"numpy": np.__version__}))
    wanted = metrics if metrics is not None else set(SCALAR_METRICS) | set(HISTOGRAM_METRICS)
    rng = np.random.default_rng(0)
    for step in range(STEPS):
        records = [Record(name, step, step // 10, metric, layer, param,
                          _scalar(metric, layer, param, step, scale))
                   for metric, keys in SCALAR_METRICS.items() if metric in wanted
                   for layer, param in keys]
        records += [Record(name, step, step // 10, metric, layer, param,
                           _histogram(rng, step) if param else rng.random(8))
                    for metric, keys in HISTOGRAM_METRICS.items() if metric in wanted
                    for layer, param in keys]
        sink.write(records)
        sink.flush()
    sink.close()
    return sink.run_name


def _scalar(metric: str, layer: str | None, param: str | None, step: int, scale: float) -> float:
    if metric == "gradient_norm" and layer == "head" and param == "weight" and step >= NAN_STEP:
        return float("nan")
    if metric == "loss":
        return scale * 10.0 ** (-step / 5)  # four decades over the run
    return scale * (1.0 + step / STEPS + (0.5 if param == "bias" else 0.0))


def _histogram(rng: np.random.Generator, step: int) -> Histogram:
    counts, edges = np.histogram(rng.normal(0.0, 1.0 + step / 10, 200), bins=12)
    return Histogram(counts, edges)
