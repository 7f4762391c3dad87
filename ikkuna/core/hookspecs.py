"""The hooks an ikkuna plugin may implement (pluggy project ``ikkuna``).

A plugin is a module or object with functions decorated by ``@ikkuna.hookimpl`` and named as
below. Built-in metrics, sinks and adapters are plugins of exactly this kind. External plugins
are found through the entry-point group ``ikkuna``.

A plugin declares the version of this contract it was written for as a module attribute,
``IKKUNA_PLUGIN_API = "1.0"``. ikkuna loads it if the major numbers match and the plugin's
minor number is at most :data:`PLUGIN_API_VERSION`'s (minor versions only add); otherwise it
refuses the plugin with a message saying which versions it accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ikkuna.adapters.base import Adapter
    from ikkuna.core.metric import Metric
    from ikkuna.core.sink import Sink

PROJECT = "ikkuna"
#: The version of the plugin contract (these hooks, Metric, Sink, Adapter, Array, EventGroup):
#: ``"MAJOR.MINOR"``. A new minor version only adds; a new major version may break plugins.
#: 1.1 added the ``"sum_squares"`` statistic and ``Sink.wait()``.
PLUGIN_API_VERSION = "1.1"
#: The module attribute by which a plugin declares the plugin API version it was built for.
PLUGIN_API_ATTRIBUTE = "IKKUNA_PLUGIN_API"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ikkuna_metrics() -> list[type[Metric]]:
    """Return the metric classes this plugin provides.

    Called once when the plugin manager starts. Each class subclasses :class:`ikkuna.Metric`
    and has a ``name`` no other plugin uses; a name taken twice is an error naming both plugins.
    """


@hookspec
def ikkuna_sinks() -> list[type[Sink]]:
    """Return the sink classes this plugin provides.

    Called once when the plugin manager starts. Each class subclasses :class:`ikkuna.Sink`
    and has a unique ``name``. A sink named in ``attach(sinks=[...])`` is made by its
    ``create(store)`` class method (by default ``cls()``); sink instances can be passed too.
    """


@hookspec
def ikkuna_adapters() -> list[type[Adapter]]:
    """Return the framework adapter classes this plugin provides.

    Called once when the plugin manager starts. ``ikkuna.attach(model)`` asks each adapter's
    ``accepts(model)`` in turn and uses the first that accepts, so a new framework is a plugin.
    """


@hookspec
def ikkuna_findings() -> list[Callable[..., Any]]:
    """Return diagnosis rules: ``rule(history) -> Iterable[ikkuna.Finding]``.

    ``history`` (:class:`ikkuna.doctor.history.History`) reads a run's recorded series, from
    the store or live from a monitor's memory. The doctor (``ikkuna doctor``,
    :func:`ikkuna.diagnose`, ``attach(doctor="warn"|"raise")``) runs every rule; one that raises
    is reported and the others go on.
    """
