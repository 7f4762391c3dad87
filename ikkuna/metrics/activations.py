"""Statistics of each layer's outputs in the training forward pass."""

from __future__ import annotations

import numpy as np

from ikkuna.core.metric import EventGroup, Metric


class ActivationMean(Metric):
    """Mean of a layer's outputs over the batch and every unit."""

    name = "activation_mean"
    needs = ("activations",)

    def compute(self, group: EventGroup) -> float | None:
        values = group["activations"]
        return float(np.mean(values, dtype=np.float64)) if values.size else None


class ActivationStd(Metric):
    """Standard deviation (population, ddof=0) of a layer's outputs."""

    name = "activation_std"
    needs = ("activations",)

    def compute(self, group: EventGroup) -> float | None:
        values = group["activations"]
        return float(np.std(values, dtype=np.float64)) if values.size else None


class ActivationZeroFraction(Metric):
    """Fraction of a layer's outputs that are exactly zero (dead ReLUs show here)."""

    name = "activation_zero_fraction"
    needs = ("activations",)

    def compute(self, group: EventGroup) -> float | None:
        values = group["activations"]
        return float(np.count_nonzero(values == 0) / values.size) if values.size else None
