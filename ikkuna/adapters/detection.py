"""Choose the adapter for a model without importing any framework."""

from __future__ import annotations

from typing import Any

from ikkuna.adapters.base import Adapter
from ikkuna.core.errors import UnsupportedModelError
from ikkuna.core.plugins import PluginManager


def find_adapter(model: Any, plugins: PluginManager, framework: str | None = None) -> type[Adapter]:
    """The adapter class for ``model`` (or the one named ``framework``), else a clear error."""
    adapters = plugins.adapters()
    if framework is not None:
        if framework not in adapters:
            raise ValueError(
                f"unknown framework {framework!r}; installed adapters: {', '.join(sorted(adapters))}"
            )
        chosen = adapters[framework].item
        if not chosen.accepts(model):
            raise UnsupportedModelError(
                f"framework={framework!r} takes {chosen.accepted}, got "
                f"{type(model).__module__}.{type(model).__qualname__}"
            )
        return chosen
    for provided in adapters.values():
        if provided.item.accepts(model):
            return provided.item
    accepted = "; ".join(f"{p.item.accepted} ({name})" for name, p in sorted(adapters.items()))
    raise UnsupportedModelError(
        f"ikkuna.attach() got {type(model).__module__}.{type(model).__qualname__}, which no "
        f"adapter accepts. Supported models: {accepted}"
    )
