"""Units that stopped working: dead units (always zero) and saturated bounded activations."""

from __future__ import annotations

import numpy as np

from ikkuna.core.layers import LayerInfo
from ikkuna.core.metric import EventGroup, Metric
from ikkuna.core.schedule import LayerSelection, ScheduleLike
from ikkuna.core.statistics import FIRED_UNITS

DEFAULT_WINDOW = 10

#: Bounds of the bounded activations: (lower, upper, margin). An output counts as saturated
#: within ``margin`` of a bound (strictly: tanh ``|y| > 0.99``, sigmoid ``y < 0.01 or
#: y > 0.99``; there tanh's derivative is below 2% of its peak, sigmoid's below 4%); the hard
#: variants (margin 0) count outputs at a bound, where their derivative is exactly zero.
SATURATION_BOUNDS: dict[str, tuple[float, float, float]] = {
    "tanh": (-1.0, 1.0, 0.01),
    "sigmoid": (0.0, 1.0, 0.01),
    "softsign": (-1.0, 1.0, 0.01),
    "hard_tanh": (-1.0, 1.0, 0.0),
    "hard_sigmoid": (0.0, 1.0, 0.0),
}


class DeadUnitFraction(Metric):
    """Fraction of a layer's units (channels) that were exactly zero for a whole window of steps.

    A unit is dead in a window when its output was ``== 0`` for every sample of every step of
    the last ``window`` steps this metric saw for the layer (exact zeros: a ReLU that never
    fires; a negative output is not dead). One value is recorded at the end of each window,
    on the steps where the count of steps seen reaches a multiple of ``window``; steps the
    monitor or ``every=`` skip do not count. Channels are the last axis of
    ``as_channels_last()`` (image feature maps, a dense layer's features).
    """

    name = "dead_unit_fraction"
    needs = ("activations",)
    cost = "moderate"
    statistic = FIRED_UNITS

    def __init__(self, *, window: int = DEFAULT_WINDOW, layers: LayerSelection = None,
                 every: ScheduleLike = None) -> None:
        super().__init__(layers=layers, every=every)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive int (steps), got {window!r}")
        self.window = window
        self._alive: dict[str | None, np.ndarray] = {}
        self._steps: dict[str | None, int] = {}

    def compute(self, group: EventGroup) -> float | None:
        fired = group.statistic("activations", FIRED_UNITS)
        if fired is None:
            return None
        layer = group.layer.name if group.layer is not None else None
        alive = self._alive.get(layer)
        if alive is None or alive.shape != fired.shape:
            alive, self._steps[layer] = np.zeros_like(fired), 0
        alive = self._alive[layer] = alive | fired
        self._steps[layer] += 1
        if self._steps[layer] % self.window:
            return None
        del self._alive[layer]
        return float(np.count_nonzero(~alive) / alive.size)


class SaturatedFraction(Metric):
    """Fraction of a bounded activation's outputs at (or within 1% of) its bounds.

    Known from the layer's activation (``LayerInfo.activation``): tanh and softsign
    ``|y| > 0.99``, sigmoid ``y < 0.01`` or ``y > 0.99``, hard_tanh ``|y| >= 1``,
    hard_sigmoid ``y <= 0`` or ``y >= 1`` (see ``SATURATION_BOUNDS``). Layers whose activation
    is unbounded (relu, linear) or unknown record nothing: a torch ``nn.Tanh``, a Keras
    ``Activation``/``Dense(activation=...)`` and a Flax module class named for its activation
    (``class Tanh(nnx.Module)``) are known.
    """

    name = "saturated_fraction"
    needs = ("activations",)

    def applies_to(self, layer: LayerInfo) -> bool:
        return (layer.activation or "") in SATURATION_BOUNDS

    def compute(self, group: EventGroup) -> float | None:
        activation = group.layer.activation if group.layer is not None else None
        bounds = SATURATION_BOUNDS.get(activation or "")
        values = group["activations"]
        if bounds is None or values.size == 0:
            return None
        return saturated_fraction(values, *bounds)


def saturated_fraction(values: np.ndarray, lower: float, upper: float, margin: float) -> float:
    """Fraction of ``values`` within ``margin`` of ``lower`` or ``upper`` (at them if 0)."""
    if margin > 0:
        saturated = (values < lower + margin) | (values > upper - margin)
    else:
        saturated = (values <= lower) | (values >= upper)
    return float(np.count_nonzero(saturated) / values.size)
