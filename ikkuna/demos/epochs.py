"""The demo's epoch loop for hand-written training steps (torch, JAX): batches, progress, logs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ikkuna.core.monitor import Monitor
from ikkuna.demos.digits import batches
from ikkuna.demos.progress import Progress
from ikkuna.demos.variants import BATCH_SIZE


def run_epochs(monitor: Monitor, epochs: int, count: int, rng: np.random.Generator,
               step: Callable[[np.ndarray], tuple[float, float]]) -> None:
    """``epochs`` passes over ``count`` shuffled samples in batches; ``step(indices)`` trains on
    one batch and returns its loss and accuracy, which are logged and shown on the bar."""
    steps_per_epoch = -(-count // BATCH_SIZE)
    for epoch in range(epochs):
        monitor.start_epoch(epoch)
        bar = Progress(steps_per_epoch, f"epoch {epoch + 1}/{epochs}")
        for index in batches(count, BATCH_SIZE, rng):
            loss, accuracy = step(index)
            monitor.log(loss=loss, accuracy=accuracy)
            bar.update(loss=loss, accuracy=accuracy)
        bar.close()
        monitor.finish_epoch()
