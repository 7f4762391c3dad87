"""Framework-neutral description of one layer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

LAYER_TYPES = ("dense", "conv2d", "norm", "embedding", "other")


@dataclass(frozen=True)
class LayerInfo:
    """One layer of a model, as every framework names it.

    ``name`` is the dotted attribute path (``encoder.0``). ``params`` maps each native
    parameter name to its neutral role: ``weight`` for torch ``weight`` and Keras/Flax
    ``kernel``, ``bias`` for biases; other parameters keep their own name.
    """

    name: str
    kind: str
    framework: str
    params: Mapping[str, str] = field(default_factory=dict)

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
