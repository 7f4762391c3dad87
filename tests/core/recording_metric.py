"""A metric that remembers what it was given, and a layer to give it, for the core's tests."""

from __future__ import annotations

import numpy as np

from ikkuna.core.layers import LayerInfo
from ikkuna.core.metric import EventGroup, Metric

FC = LayerInfo("fc", "dense", "numpy", {"weight": "weight", "bias": "bias"})


class Recorder(Metric):
    """Remembers every call: (layer, param, step, {kind: copy of the array})."""

    name = "recorder"
    needs = ("weights",)

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.calls: list[tuple] = []

    def compute(self, group: EventGroup):
        arrays = {kind: np.array(group[kind]) for kind in group}
        self.calls.append((group.layer.name if group.layer else None, group.param, group.step, arrays))
        return float(len(self.calls))
