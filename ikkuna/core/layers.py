"""Framework-neutral description of one layer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

LAYER_TYPES = ("dense", "conv2d", "norm", "embedding", "other")

#: Neutral activation names, keyed by the name squashed (lower case, no ``_``): what class and
#: function names of every framework map to (``nn.Hardtanh`` and ``hard_tanh`` -> ``hard_tanh``).
_ACTIVATION_NAMES = {
    name.replace("_", ""): name
    for name in (
        "relu", "relu6", "leaky_relu", "prelu", "elu", "selu", "celu", "gelu", "silu",
        "hard_silu", "mish", "softplus", "softsign", "tanh", "sigmoid", "hard_tanh",
        "hard_sigmoid", "log_sigmoid", "softmax", "log_softmax", "exponential",
    )
}
_ACTIVATION_NAMES.update({"swish": "silu", "hardswish": "hard_silu"})


def activation_name(name: str | None) -> str | None:
    """The neutral activation name for a framework's class or function name, else None.

    ``"Tanh"``, ``"tanh"`` -> ``"tanh"``; ``"Hardsigmoid"`` -> ``"hard_sigmoid"``;
    ``"SiLU"``, ``"swish"`` -> ``"silu"``. ``"linear"``/``"Identity"`` (no activation) and
    unknown names give None.
    """
    if not name:
        return None
    return _ACTIVATION_NAMES.get(name.lower().replace("_", ""))


@dataclass(frozen=True)
class LayerInfo:
    """One layer of a model, as every framework names it.

    ``name`` is the dotted attribute path (``encoder.0``). ``params`` maps each native
    parameter name to its neutral role: ``weight`` for torch ``weight`` and Keras/Flax
    ``kernel``, ``bias`` for biases; other parameters keep their own name.

    ``activation`` is the neutral name (see :func:`activation_name`) of the activation function
    the layer applies last, so that its outputs are that function's values: ``"tanh"`` for a
    torch ``nn.Tanh``, a Keras ``Activation("tanh")`` or ``Dense(..., activation="tanh")``;
    None for no activation (``linear``) or one the adapter cannot see. It does not take part
    in equality or hashing: a layer is known by its name and framework.
    """

    name: str
    kind: str
    framework: str
    params: Mapping[str, str] = field(default_factory=dict)
    activation: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in LAYER_TYPES:
            raise ValueError(
                f"LayerInfo.kind {self.kind!r} is not one of {', '.join(LAYER_TYPES)}"
            )
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __hash__(self) -> int:
        return hash((self.name, self.framework))

    @property
    def roles(self) -> tuple[str, ...]:
        """The neutral parameter roles of this layer, in native order."""
        return tuple(self.params.values())
