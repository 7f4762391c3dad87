"""Synthetic EventGroups for metric tests: numpy arrays as one layer's events of one step."""

from __future__ import annotations

import numpy as np

from ikkuna.core.arrays import Array, Layout
from ikkuna.core.events import Event
from ikkuna.core.layers import LayerInfo
from ikkuna.core.metric import EventGroup

FC = LayerInfo("fc", "dense", "numpy", {"weight": "weight", "bias": "bias"})
#: torch-like layouts: activations (N, C, ...) and parameters (out, in)
CHANNELS_FIRST = Layout(batch_axis=0, channel_axis=1)
CHANNELS_LAST = Layout(batch_axis=0, channel_axis=-1)
WEIGHT_LAYOUT = Layout(out_axis=0, in_axis=1)


def group(*, step: int = 0, layer: LayerInfo | None = FC, param: str | None = "weight",
          layout: Layout | None = None, dtype=np.float32, **arrays) -> EventGroup:
    """An EventGroup with one event per keyword (``weights=...``, ``activations=...``);
    ``value_<kind>=x`` makes a value event of ``kind``."""
    events = {}
    for kind, values in arrays.items():
        if kind.startswith("value_"):
            kind = kind.removeprefix("value_")
            events[kind] = Event(kind, step, 0, None, None, value=float(values))
            continue
        default = CHANNELS_FIRST if kind == "activations" else WEIGHT_LAYOUT
        array = Array.from_numpy(np.asarray(values, dtype=dtype), layout or default)
        events[kind] = Event(kind, step, 0, layer, None if kind == "activations" else param,
                             array=array)
    is_layer_group = "activations" in arrays or layer is None
    return EventGroup(events, step=step, epoch=0, layer=layer,
                      param=None if is_layer_group else param)
