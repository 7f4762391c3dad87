"""The demo's training settings, healthy or deliberately broken, the same for every framework."""

from __future__ import annotations

from dataclasses import dataclass

BATCH_SIZE = 64
LEARNING_RATE = 0.05
MOMENTUM = 0.9

#: The demo CNN on 8x8x1 digits, the same in every framework, by layer name: conv1 (3x3, 8)
#: -> relu1 -> conv2 (3x3, 16) -> norm (BatchNorm) -> relu2 -> pool (2x2 max) -> flatten ->
#: hidden (dense 32) -> relu3 -> head (dense 10).
LAYERS = ("conv1", "relu1", "conv2", "norm", "relu2", "pool", "flatten", "hidden", "relu3", "head")
#: The layers whose bias feeds a ReLU (conv2's bias is followed by BatchNorm: its shift is norm's).
HIDDEN_BIASED = ("conv1", "norm", "hidden")


@dataclass(frozen=True)
class Variant:
    """How a demo training is set up; a broken variant changes one thing of the healthy one.

    ``weight_scale`` multiplies every weight (not bias) after initialization; ``hidden_bias``
    (when set) replaces the bias of the layers in ``HIDDEN_BIASED``, so negative values kill the
    ReLUs after them.
    """

    name: str
    description: str
    learning_rate: float = LEARNING_RATE
    weight_scale: float = 1.0
    hidden_bias: float | None = None


HEALTHY = Variant("healthy", "SGD with momentum at a sensible learning rate")

BROKEN: dict[str, Variant] = {
    "lr": Variant("lr", "learning rate far too high (50x)", learning_rate=50 * LEARNING_RATE),
    "init": Variant("init", "bad initialization: every weight 100x too small", weight_scale=0.01),
    "dead": Variant("dead", "dying ReLUs: the bias before every ReLU set to -5", hidden_bias=-5.0),
}


def variant(breakage: str | None) -> Variant:
    """The healthy variant for ``None``, else the broken one named ``breakage``."""
    if breakage is None:
        return HEALTHY
    if breakage not in BROKEN:
        raise ValueError(f"unknown --break {breakage!r}; choose one of: {', '.join(BROKEN)}")
    return BROKEN[breakage]
