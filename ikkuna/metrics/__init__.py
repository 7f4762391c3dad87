"""Built-in metrics, registered as the internal plugin ``ikkuna.metrics``."""

from __future__ import annotations

from ikkuna.core.hookspecs import hookimpl
from ikkuna.metrics.activation_health import DeadUnitFraction, SaturatedFraction
from ikkuna.metrics.activations import ActivationMean, ActivationStd, ActivationZeroFraction
from ikkuna.metrics.distance import DistanceFromInit
from ikkuna.metrics.global_norms import (
    GlobalGradientNorm,
    GlobalUpdateNorm,
    GlobalUpdateToWeightRatio,
    GlobalWeightNorm,
)
from ikkuna.metrics.histograms import ActivationHistogram, GradientHistogram, WeightHistogram
from ikkuna.metrics.norms import GradientNorm, UpdateNorm, UpdateToWeightRatio, WeightNorm
from ikkuna.metrics.optimizer import LearningRate
from ikkuna.metrics.probing import PROBING_METRICS
from ikkuna.metrics.spectral import ConditionNumber, SpectralAlpha, SpectralNorm, StableRank

BUILTIN_METRICS = (
    WeightNorm,
    GradientNorm,
    UpdateNorm,
    UpdateToWeightRatio,
    ActivationMean,
    ActivationStd,
    ActivationZeroFraction,
    WeightHistogram,
    GradientHistogram,
    ActivationHistogram,
    DistanceFromInit,
    GlobalWeightNorm,
    GlobalGradientNorm,
    GlobalUpdateNorm,
    GlobalUpdateToWeightRatio,
    DeadUnitFraction,
    SaturatedFraction,
    LearningRate,
    SpectralNorm,
    ConditionNumber,
    StableRank,
    SpectralAlpha,
    *PROBING_METRICS,
)


@hookimpl
def ikkuna_metrics() -> list[type]:
    return list(BUILTIN_METRICS)
