"""An adapter for no framework, to test what depends only on an adapter's class attributes."""

from __future__ import annotations

from ikkuna.adapters.base import Adapter
from ikkuna.core.bus import MetricSlot


class BareAdapter(Adapter):
    """Accepts nothing, has no layers and no capabilities; subclass to give it some."""

    framework = "bare"

    @classmethod
    def accepts(cls, model):
        return False

    def layers(self):
        return []

    def install(self, monitor, layers, kinds):
        pass

    def remove(self):
        pass


def slot_names(slots: list[MetricSlot]) -> list[str]:
    return [slot.name for slot in slots]
