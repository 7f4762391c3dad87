"""Events (what adapters observe) and records (what metrics produce for sinks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from ikkuna.core.arrays import Array
from ikkuna.core.layers import LayerInfo


@dataclass(frozen=True)
class Event:
    """One observation: a kind, where it was seen, when, and its array or value.

    ``param`` is the neutral role (``weight``/``bias``) for per-parameter kinds, else None.
    ``probe`` is set on the ``probe`` kind only: the step's :class:`ikkuna.ProbeSession`.
    """

    kind: str
    step: int
    epoch: int
    layer: LayerInfo | None = None
    param: str | None = None
    array: Array | None = None
    value: float | None = None
    probe: Any = None


@dataclass(frozen=True, eq=False)
class Histogram:
    """Counts of values in bins: ``edges`` has one more entry than ``counts``."""

    counts: np.ndarray
    edges: np.ndarray

    def __post_init__(self) -> None:
        counts = np.asarray(self.counts, dtype=np.float64).reshape(-1)
        edges = np.asarray(self.edges, dtype=np.float64).reshape(-1)
        if edges.size != counts.size + 1:
            raise ValueError(
                f"Histogram needs len(edges) == len(counts) + 1, got {edges.size} edges "
                f"for {counts.size} counts"
            )
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "edges", edges)


RecordValue = Union[float, np.ndarray, Histogram]


@dataclass(frozen=True)
class Record:
    """One metric value for sinks: a float, a 1-d array, or a :class:`Histogram`.

    ``rank`` is the process that measured it in distributed training (None in a single
    process, and for values reduced over every rank; see ``attach(ranks=...)``).
    """

    run: str
    step: int
    epoch: int
    metric: str
    layer: str | None
    param: str | None
    value: RecordValue
    rank: int | None = None
