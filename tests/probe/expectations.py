"""Expected probe metric values from per-sample gradients a test computed itself, shared by the
framework probe tests."""

from __future__ import annotations

import numpy as np
import pytest

import ikkuna
from ikkuna.metrics.probing import gradient_noise_scale


def assert_noise_metrics_match(monitor: ikkuna.Monitor, gradients: np.ndarray, microbatches: int,
                               first: tuple[str, str, int] | None = None) -> None:
    """The last stored ``gradient_noise_scale.*`` and ``gradient_snr`` values agree (rel 1e-3)
    with ``gradients`` (samples x every parameter flattened, float64) split in ``microbatches``.

    ``first`` = (layer, param, size): also check that parameter's own ``gradient_snr``, its
    gradients being the first ``size`` columns.
    """
    samples = gradients.shape[0]
    micro = gradients.reshape(microbatches, samples // microbatches, -1).mean(axis=1)
    expected = gradient_noise_scale(micro, group_size=samples // microbatches)
    for key, value in expected.items():
        found = monitor.series(f"gradient_noise_scale.{key}").values[-1]
        assert found == pytest.approx(value, rel=1e-3), key
    if first is not None:
        layer, param, size = first
        own = gradients[:, :size]
        assert monitor.series("gradient_snr", layer, param).values[-1] == pytest.approx(
            np.mean(own.mean(0) ** 2 / own.var(0, ddof=1)), rel=1e-3)
    varies = gradients[:, np.ptp(gradients, axis=0) > 0]
    assert monitor.series("gradient_snr").values[-1] == pytest.approx(
        np.mean(varies.mean(0) ** 2 / varies.var(0, ddof=1)), rel=1e-3)
