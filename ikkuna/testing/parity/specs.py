"""The parity networks, framework-neutral: layer order, shapes, weights and batches.

Weights are stored in torch layout ((out, in) and (out, in, kh, kw)); each framework's
builder converts them to its own layout. Every framework names its layers alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = 3
BATCH = 6
STEPS = 5
LEARNING_RATE = 0.1


@dataclass(frozen=True)
class Architecture:
    """A parity network: its layers (name, type, size) and the shape of one input sample."""

    name: str
    layers: tuple[tuple[str, str, tuple[int, ...]], ...]
    input_shape: tuple[int, ...]  # channels first for images, as torch sees them

    def weights(self, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
        """Initial weights in torch layout, scaled like a fan-in initializer."""
        rng = np.random.default_rng(seed)
        weights: dict[str, dict[str, np.ndarray]] = {}
        for name, layer_type, shape in self.layers:
            if layer_type in ("dense", "conv2d"):
                fan_in = int(np.prod(shape[1:]))
                weights[name] = {
                    "weight": (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32),
                    "bias": (rng.standard_normal(shape[0]) * 0.1).astype(np.float32),
                }
        return weights

    def batches(self, seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
        rng = np.random.default_rng(seed)
        return [
            (rng.standard_normal((BATCH, *self.input_shape)).astype(np.float32),
             rng.integers(0, CLASSES, BATCH).astype(np.int64))
            for _ in range(STEPS)
        ]


MLP = Architecture(
    "mlp",
    (
        ("dense1", "dense", (16, 8)),
        ("relu1", "relu", ()),
        ("dense2", "dense", (8, 16)),
        ("tanh1", "tanh", ()),  # a bounded activation, for saturated_fraction
        ("dense3", "dense", (CLASSES, 8)),
    ),
    (8,),
)

CNN = Architecture(
    "cnn",
    (
        ("conv1", "conv2d", (4, 2, 3, 3)),
        ("relu1", "relu", ()),
        ("conv2", "conv2d", (6, 4, 3, 3)),
        ("relu2", "relu", ()),
        ("pool", "global_average_pool", ()),
        ("tanh1", "tanh", ()),
        ("dense", "dense", (CLASSES, 6)),
    ),
    (2, 6, 6),
)

ARCHITECTURES = {architecture.name: architecture for architecture in (MLP, CNN)}
