"""Step schedules (``every=``) and layer selections (``layers=``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Union

from ikkuna.core.layers import LayerInfo


@dataclass(frozen=True)
class Every:
    """Active on steps ``start, start + n, start + 2n, ...``."""

    n: int
    start: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"every= must be a positive int, got {self.n!r}")
        if isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 0:
            raise ValueError(f"Every(start=) must be an int >= 0, got {self.start!r}")

    def __call__(self, step: int) -> bool:
        return step >= self.start and (step - self.start) % self.n == 0


ScheduleLike = Union[int, Every, Callable[[int], bool], None]
LayerSelection = Union[str, Iterable[str], Callable[[LayerInfo], bool], None]

ALWAYS = Every(1)


def as_schedule(every: ScheduleLike) -> Callable[[int], bool]:
    """Turn an ``every=`` argument into a predicate over steps."""
    if every is None:
        return ALWAYS
    if isinstance(every, bool):
        raise TypeError("every= must be an int, ikkuna.Every or a callable(step) -> bool, got bool")
    if isinstance(every, int):
        return Every(every)
    if callable(every):
        return every
    raise TypeError(
        "every= must be an int, ikkuna.Every or a callable(step) -> bool, "
        f"got {type(every).__name__}"
    )


def as_layer_filter(layers: LayerSelection) -> Callable[[LayerInfo], bool]:
    """Turn a ``layers=`` argument (glob, globs, or predicate) into a predicate over layers.

    Globs match the dotted layer name with :func:`fnmatch.fnmatchcase` (``"encoder.*"``).
    """
    if layers is None:
        return lambda layer: True
    if isinstance(layers, str):
        patterns: tuple[str, ...] = (layers,)
    elif callable(layers):
        return layers
    else:
        try:
            patterns = tuple(layers)
        except TypeError:
            raise TypeError(
                "layers= must be a glob string, a list of globs or a callable(LayerInfo) -> bool, "
                f"got {type(layers).__name__}"
            ) from None
        bad = [p for p in patterns if not isinstance(p, str)]
        if bad:
            raise TypeError(f"layers= globs must be strings, got {bad!r}")
    return lambda layer: any(fnmatch.fnmatchcase(layer.name, p) for p in patterns)
