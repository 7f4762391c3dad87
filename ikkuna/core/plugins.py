"""The plugin manager: a small typed facade over pluggy, one method per hook."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pluggy

from ikkuna.core import hookspecs
from ikkuna.core.errors import IncompatiblePluginError, PluginConflictError
from ikkuna.core.plugin_api import api_refusal

ENTRY_POINT_GROUP = "ikkuna"
DISABLED_PLUGINS_VARIABLE = "IKKUNA_DISABLED_PLUGINS"
#: Built-in plugin modules, registered exactly like external plugins.
BUILTIN_PLUGINS = ("ikkuna.metrics", "ikkuna.sinks", "ikkuna.adapters", "ikkuna.doctor.rules")

T = TypeVar("T")


@dataclass(frozen=True)
class Provided(Generic[T]):
    """Something a plugin provides (a metric, sink or adapter class) and the plugin's name."""

    name: str
    item: T
    plugin: str


class PluginManager:
    """Loads plugins and answers what they provide.

    Order at start: names in ``IKKUNA_DISABLED_PLUGINS`` (comma separated) are blocked, entry
    points of group ``ikkuna`` are loaded (a plugin that fails to import, or declares a plugin
    API this ikkuna does not provide, only warns and is skipped), the built-ins are
    registered, and ``check_pending()`` turns a misspelled hook into an error.
    """

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.load_failures: dict[str, str] = {}
        for name in _disabled_names():
            self._pm.set_blocked(name)
        if load_entry_points:
            self.load_entry_points()
        for module_name in BUILTIN_PLUGINS:
            if not self._pm.is_blocked(module_name) and self._pm.get_plugin(module_name) is None:
                self._pm.register(importlib.import_module(module_name), name=module_name)
        self._pm.check_pending()

    def load_entry_points(self) -> int:
        """Load entry points of group ``ikkuna``; return how many new plugins were registered."""
        loaded = 0
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            name = entry_point.name
            if self._pm.is_blocked(name) or self._pm.get_plugin(name) is not None:
                continue
            try:
                plugin = entry_point.load()
            except Exception as error:  # noqa: BLE001 - one broken plugin must not stop the rest
                dist = getattr(entry_point.dist, "name", "?")
                message = (
                    f"ikkuna: plugin {name!r} (distribution {dist!r}, {entry_point.value}) failed "
                    f"to import and is skipped: {type(error).__name__}: {error}"
                )
                self.load_failures[name] = message
                warnings.warn(message, RuntimeWarning, stacklevel=2)
                continue
            dist = getattr(entry_point.dist, "name", "?")
            refusal = api_refusal(plugin, name, f"distribution {dist!r}, {entry_point.value}")
            if refusal is not None:
                self.load_failures[name] = refusal
                warnings.warn(refusal, RuntimeWarning, stacklevel=2)
                continue
            self._pm.register(plugin, name=name)
            loaded += 1
        return loaded

    def register(self, plugin: Any, name: str | None = None) -> None:
        """Register a plugin object or module by hand (tests, notebooks).

        Raises :class:`ikkuna.IncompatiblePluginError` if it declares a plugin API this ikkuna
        does not provide.
        """
        refusal = api_refusal(plugin, name or getattr(plugin, "__name__", repr(plugin)))
        if refusal is not None:
            raise IncompatiblePluginError(refusal)
        self._pm.register(plugin, name=name)
        self._pm.check_pending()

    def plugin_names(self) -> list[str]:
        return sorted(n for n, p in self._pm.list_name_plugin() if p is not None)

    def metrics(self) -> dict[str, Provided[type]]:
        return self._collect(self._pm.hook.ikkuna_metrics, "metric")

    def sinks(self) -> dict[str, Provided[type]]:
        return self._collect(self._pm.hook.ikkuna_sinks, "sink")

    def adapters(self) -> dict[str, Provided[type]]:
        return self._collect(self._pm.hook.ikkuna_adapters, "adapter", name_attribute="framework")

    def findings(self) -> list[Provided[Callable[..., Any]]]:
        rules = []
        for plugin, items in self._call_each(self._pm.hook.ikkuna_findings):
            rules += [Provided(getattr(r, "__name__", repr(r)), r, plugin) for r in items]
        return rules

    def _call_each(self, hook: Any) -> Iterable[tuple[str, list[Any]]]:
        for impl in hook.get_hookimpls():
            yield self._pm.get_name(impl.plugin) or "?", list(impl.function() or ())

    def _collect(self, hook: Any, what: str, name_attribute: str = "name") -> dict[str, Provided[type]]:
        found: dict[str, Provided[type]] = {}
        for plugin, items in self._call_each(hook):
            for item in items:
                name = getattr(item, name_attribute, "")
                if not name:
                    raise TypeError(f"plugin {plugin!r} provides a {what} {item!r} without a {name_attribute}")
                if name in found and found[name].item is not item:
                    both = (found[name].plugin, plugin)
                    external = next((p for p in both if p not in BUILTIN_PLUGINS), plugin)
                    raise PluginConflictError(
                        f"{what} name {name!r} is provided by two plugins: {both[0]!r} and "
                        f"{both[1]!r}; block one, e.g. {DISABLED_PLUGINS_VARIABLE}={external}"
                    )
                found[name] = Provided(name, item, plugin)
        return found


def _disabled_names() -> list[str]:
    raw = os.environ.get(DISABLED_PLUGINS_VARIABLE, "")
    return [name.strip() for name in raw.split(",") if name.strip()]


_default: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, created on first use."""
    global _default
    if _default is None:
        _default = PluginManager()
    return _default


def reset_plugin_manager() -> None:
    """Forget the process-wide manager so the next use reloads plugins (tests, notebooks)."""
    global _default
    _default = None
