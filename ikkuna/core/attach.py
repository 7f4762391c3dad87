"""``ikkuna.attach``: resolve metrics, sinks and the adapter, then start a Monitor."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Union

from ikkuna.adapters.detection import find_adapter
from ikkuna.core.bus import MetricSlot
from ikkuna.core.errors import UnknownMetricError, UnknownSinkError, UnsupportedMetricError
from ikkuna.core.metric import Metric
from ikkuna.core.monitor import Monitor
from ikkuna.core.plugins import PluginManager, Provided, get_plugin_manager
from ikkuna.core.probe import Probe, as_probe, check_probe_metrics, probe_refusal
from ikkuna.core.schedule import LayerSelection, ScheduleLike
from ikkuna.core.sink import Sink
from ikkuna.core.ranks import DEFAULT_RANK_MODE, RankCombiner, check_rank_mode
from ikkuna.doctor.live import DEFAULT_DOCTOR_EVERY, LiveDoctor
from ikkuna.doctor.live import check_every as check_doctor_every
from ikkuna.sinks.schema import store_directory

if TYPE_CHECKING:
    from ikkuna.adapters.base import Adapter

MetricSpec = Union[str, Metric, type]
SinkSpec = Union[str, Sink]

#: The metrics ``attach`` uses when ``metrics=`` is not given (cheap enough for every step).
#: Those needing a capability the adapter lacks (``learning_rate``) are left out there.
DEFAULT_METRICS = (
    "weight_norm",
    "gradient_norm",
    "update_norm",
    "update_to_weight_ratio",
    "activation_mean",
    "activation_std",
    "activation_zero_fraction",
    "global_gradient_norm",
    "global_update_to_weight_ratio",
    "distance_from_init",
    "dead_unit_fraction",
    "saturated_fraction",
    "learning_rate",
)
#: Plugin whose metrics make up the ``"full"`` preset.
BUILTIN_METRICS_PLUGIN = "ikkuna.metrics"
#: Named metric sets ``metrics=`` accepts: ``"default"`` (cheap, every step) and ``"full"``
#: (every built-in metric this model's adapter supports, each on its own default schedule).
PRESETS = ("default", "full")
DEFAULT_SINKS = ("store",)


def attach(
    model: Any,
    *,
    optimizer: Any = None,
    metrics: Iterable[MetricSpec] | str | None = None,
    sinks: Iterable[SinkSpec] | None = None,
    layers: LayerSelection = None,
    every: ScheduleLike = None,
    run: str | None = None,
    store: str | os.PathLike[str] | None = None,
    framework: str | None = None,
    plugins: PluginManager | None = None,
    probe: Probe | None = None,
    doctor: str | None = None,
    doctor_every: int = DEFAULT_DOCTOR_EVERY,
    ranks: str = DEFAULT_RANK_MODE,
) -> Monitor:
    """Start monitoring ``model``'s training; returns the :class:`Monitor` (a context manager).

    ``metrics``: names, instances or presets (``"default"``: :data:`DEFAULT_METRICS` that the
    adapter supports, the default; ``"full"``: every built-in metric the adapter supports;
    ``[]`` for none).
    ``sinks``: names or instances (default: the embedded store under ``./ikkuna-runs``, or
    ``store=``). ``layers``: a glob, globs or a predicate on :class:`LayerInfo`. ``every``: an
    int ``n`` (every n-th step), :class:`ikkuna.Every` or a predicate on the step. ``run``: the
    run's name (made unique in the store). ``optimizer``: the optimizer whose steps count; if
    omitted, adapters that can see every optimizer's steps use those that train the model.
    ``probe``: an :class:`ikkuna.Probe` (a fixed batch and loss) for the metrics that probe
    the model after the step (SVCCA, gradient noise, curvature); ``"full"`` includes them only
    when it is given. ``doctor``: ``"warn"`` or ``"raise"`` runs the doctor's rules on the
    records every ``doctor_every`` steps (no store needed) and warns
    (:class:`ikkuna.TrainingWarning`) or raises :class:`ikkuna.TrainingProblem` once per finding.
    ``ranks``: in distributed training (every rank calls ``attach``), ``"rank0"`` (rank 0
    stores its records), ``"all"`` (every rank stores, in run ``<run>-rank<r>``), ``"mean"``
    or ``"max"`` (rank 0 stores each value reduced over the ranks); see :mod:`ikkuna.core.ranks`.
    """
    check_rank_mode(ranks)
    check_doctor_every(doctor_every)
    if store is not None:
        store_directory(store)  # a clear TypeError for anything but a path, sinks or not
    probe = as_probe(probe)
    plugins = plugins or get_plugin_manager()
    live_doctor = None if doctor is None else LiveDoctor(doctor, doctor_every, plugins)
    adapter_class = find_adapter(model, plugins, framework)
    adapter = adapter_class(model, optimizer)
    distribution = adapter.distribution()
    combiner = None if distribution is None else RankCombiner(ranks, distribution)
    slots = resolve_metrics("default" if metrics is None else metrics, plugins, adapter_class,
                            probe=probe)
    check_probe_metrics(slots, probe)
    run_name = _check_run_name(run) if run is not None else _default_run_name(adapter_class.framework)
    sink_objects = resolve_sinks(DEFAULT_SINKS if sinks is None else sinks, plugins, store)
    config = {
        "metrics": [slot.name for slot in slots],
        "sinks": [sink.name for sink in sink_objects],
        "every": repr(every),
        "layers": repr(layers),
        "model": f"{type(model).__module__}.{type(model).__qualname__}",
        "optimizer": None if optimizer is None else type(optimizer).__qualname__,
    }
    if distribution is not None:
        config.update(ranks=ranks, rank=distribution.rank, world_size=distribution.world_size)
    monitor = Monitor(adapter, slots, sink_objects, run=run_name, layers=layers, every=every,
                      config=config, probe=probe, ranks=combiner)
    if live_doctor is not None:
        monitor.doctor = live_doctor
        live_doctor.bind(monitor)
    return monitor.start()


def resolve_metrics(
    specs: Iterable[MetricSpec] | str,
    plugins: PluginManager,
    adapter_class: type[Adapter] | None = None,
    *,
    probe: Probe | None = None,
) -> list[MetricSlot]:
    """Metric names, presets, classes or instances to slots.

    Unknown names list the known ones; a metric that requires a capability ``adapter_class``
    lacks is refused, naming the adapters that have it.
    """
    if isinstance(specs, (str, Metric)):
        specs = [specs]
    _check_iterable("metrics", specs, "metric names (str), ikkuna.Metric subclasses or "
                    "instances, or a preset 'default'/'full'")
    known = plugins.metrics()
    specs = expand_presets(specs, known, adapter_class, probe=probe)
    slots: list[MetricSlot] = []
    for spec in specs:
        if isinstance(spec, str):
            if spec not in known:
                raise UnknownMetricError(
                    f"unknown metric {spec!r}; known metrics: {', '.join(sorted(known))}; "
                    f"presets: {', '.join(PRESETS)}"
                )
            metric_class, plugin = known[spec].item, known[spec].plugin
            metric_class.validate()
            metric = metric_class()
        elif isinstance(spec, type) and issubclass(spec, Metric):
            spec.validate()
            metric, plugin = spec(), spec.__module__
        elif isinstance(spec, Metric):
            type(spec).validate()
            metric, plugin = spec, type(spec).__module__
        else:
            raise TypeError(
                "metrics= takes metric names (str), ikkuna.Metric subclasses or instances, "
                f"got {type(spec).__name__}: {spec!r}"
            )
        _check_supported(type(metric), adapter_class, plugins)
        slots.append(MetricSlot(metric, plugin))
    names = [slot.name for slot in slots]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"metrics= names the same metric twice: {', '.join(repeated)}")
    return slots


def expand_presets(
    specs: Iterable[MetricSpec], known: dict[str, Provided[type]], adapter_class: type[Adapter] | None,
    *,
    probe: Probe | None = None,
) -> list[MetricSpec]:
    """Replace preset names by their metric names (a name given twice is kept once).

    Presets leave out the metrics ``adapter_class`` cannot run; a metric named on its own is
    kept (and refused later, naming the adapters that can run it).
    """
    expanded: list[MetricSpec] = []
    for spec in specs:
        if spec == "default":
            names: list[MetricSpec] = [
                name for name in DEFAULT_METRICS
                if name not in known or supports(adapter_class, known[name].item)
            ]
        elif spec == "full":
            names = [
                name for name, provided in known.items()
                if provided.plugin == BUILTIN_METRICS_PLUGIN
                and supports(adapter_class, provided.item)
                and probe_refusal(provided.item, probe) is None
            ]
        else:
            names = [spec]
        expanded += [n for n in names if not (isinstance(n, str) and n in expanded)]
    return expanded


def supports(adapter_class: type[Adapter] | None, metric_class: type[Metric]) -> bool:
    """Whether an adapter has every capability the metric requires (unknown adapter: yes)."""
    return adapter_class is None or metric_class.requires <= adapter_class.capabilities


def _check_supported(
    metric_class: type[Metric], adapter_class: type[Adapter] | None, plugins: PluginManager
) -> None:
    if supports(adapter_class, metric_class):
        return
    assert adapter_class is not None
    missing = sorted(metric_class.requires - adapter_class.capabilities)
    able = sorted(name for name, p in plugins.adapters().items() if supports(p.item, metric_class))
    raise UnsupportedMetricError(
        f"metric {metric_class.name!r} requires {', '.join(missing)}, which the "
        f"{adapter_class.framework} adapter does not provide; adapters that do: "
        f"{', '.join(able) or 'none'}"
    )


def resolve_sinks(
    specs: Iterable[SinkSpec], plugins: PluginManager, store: str | os.PathLike[str] | None
) -> list[Sink]:
    """Sink names or classes (made with ``Sink.create(directory)``, the store's directory that
    ``store`` resolves to) or instances to sink objects."""
    store = store_directory(store)
    if isinstance(specs, (str, Sink)) or (isinstance(specs, type) and issubclass(specs, Sink)):
        specs = [specs]
    _check_iterable("sinks", specs, "sink names (str), ikkuna.Sink subclasses or instances")
    known = plugins.sinks()
    sinks: list[Sink] = []
    for spec in specs:
        if isinstance(spec, Sink):
            sinks.append(spec)
        elif isinstance(spec, type) and issubclass(spec, Sink):
            sinks.append(spec.create(store))
        elif isinstance(spec, str):
            if spec not in known:
                raise UnknownSinkError(f"unknown sink {spec!r}; known sinks: {', '.join(sorted(known))}")
            provided = known[spec]
            if not (isinstance(provided.item, type) and issubclass(provided.item, Sink)):
                raise TypeError(
                    f"sink {spec!r} of plugin {provided.plugin!r} is not an ikkuna.Sink subclass "
                    f"({provided.item!r}); ikkuna_sinks() must return Sink subclasses"
                )
            sinks.append(provided.item.create(store))
        else:
            raise TypeError(
                "sinks= takes sink names (str), ikkuna.Sink subclasses or instances, got "
                f"{type(spec).__name__}: {spec!r}"
            )
    return sinks


def _default_run_name(framework: str) -> str:
    return f"{framework}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _check_iterable(option: str, specs: Any, accepted: str) -> None:
    try:
        iter(specs)
    except TypeError:
        raise TypeError(
            f"{option}= takes one or a list of {accepted}; got {type(specs).__name__}: {specs!r}"
        ) from None


def _check_run_name(run: Any) -> str:
    if not isinstance(run, str) or not run.strip():
        raise TypeError(f"run= must be a non-empty str, got {run!r}")
    if any(c in run for c in "/\\\0") or run in (".", ".."):
        raise ValueError(f"run= must not contain '/', '\\\\' or NUL or be '.' or '..', got {run!r}")
    return run
