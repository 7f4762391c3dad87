"""The benchmark's networks, framework-neutral: the parity MLP and a CNN of about 1M parameters.

Layers are ``(name, type, shape)`` as in ``ikkuna/testing/parity/specs.py``, shapes in torch layout
(``(out, in)`` and ``(out, in, kh, kw)``); each framework's loop builds them with these names.
"""

from __future__ import annotations

import numpy as np

from ikkuna.testing.parity.specs import MLP, Architecture

IMAGE_SIZE = 32
#: conv 3->32, pool, conv 32->64, pool, conv 64->128, dense 8192->128->10 (3x3 "same" convs,
#: 2x2 max pools): 1,143,242 parameters on 32x32x3 images.
CNN = Architecture(
    "cnn",
    (
        ("conv1", "conv2d", (32, 3, 3, 3)),
        ("relu1", "relu", ()),
        ("pool1", "max_pool", ()),
        ("conv2", "conv2d", (64, 32, 3, 3)),
        ("relu2", "relu", ()),
        ("pool2", "max_pool", ()),
        ("conv3", "conv2d", (128, 64, 3, 3)),
        ("relu3", "relu", ()),
        ("flatten", "flatten", ()),
        ("dense1", "dense", (128, 128 * (IMAGE_SIZE // 4) ** 2)),
        ("relu4", "relu", ()),
        ("dense2", "dense", (10, 128)),
    ),
    (3, IMAGE_SIZE, IMAGE_SIZE),
)
ARCHITECTURES = {"mlp": MLP, "cnn": CNN}
DESCRIPTIONS = {
    "mlp": "the parity MLP (ikkuna/testing/parity/specs.py): dense 8->16, ReLU, dense 16->8, tanh, dense 8->3",
    "cnn": "a CNN on 32x32x3 images: conv 3->32, pool, conv 32->64, pool, conv 64->128, "
           "dense 8192->128->10 (3x3 same convs, ReLU, 2x2 max pools)",
}


def parameter_count(architecture: Architecture) -> int:
    """Weights and biases of every dense and conv layer."""
    return sum(int(np.prod(shape)) + shape[0] for _, kind, shape in architecture.layers
               if kind in ("dense", "conv2d"))


def classes(architecture: Architecture) -> int:
    """The width of the last dense layer."""
    return [shape for _, kind, shape in architecture.layers if kind == "dense"][-1][0]


def channels_last(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A sample's shape as Keras and Flax see it (images channels last)."""
    return (*shape[1:], shape[0]) if len(shape) == 3 else shape
