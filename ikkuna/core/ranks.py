"""Several processes training one model: which rank stores what (``attach(ranks=...)``).

The adapter says whether training is distributed (:class:`Distribution`: this process's rank,
the number of ranks, and a collective that gathers one object from every rank); the
framework's own engine does the communication. Modes:

- ``"rank0"`` (the default): rank 0 stores its records; the other ranks store nothing and
  call no collective.
- ``"all"``: every rank stores its records, in a run of its own named ``<run>-rank<r>``.
- ``"mean"`` / ``"max"``: at each step's end every rank sends its records to all ranks; rank 0
  stores one series per metric, layer and parameter, the mean or maximum over the ranks that
  have the value (vectors and histograms elementwise when their shapes agree, else rank 0's).
  Problems on any rank (a metric that raised) reach rank 0's store, prefixed with the rank.

Every stored record carries its rank (``Record.rank``); reduced records carry ``None``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ikkuna.core.bus import Problem
from ikkuna.core.events import Histogram, Record

RANK_MODES = {
    "rank0": "rank 0 stores its records, the other ranks nothing (no collective)",
    "all": "every rank stores its records, in a run <run>-rank<r>",
    "mean": "rank 0 stores the mean over the ranks of each value (one collective a step)",
    "max": "rank 0 stores the maximum over the ranks of each value (one collective a step)",
}
DEFAULT_RANK_MODE = "rank0"
_REDUCE = {"mean": np.mean, "max": np.max}

RecordKey = tuple[int, int, str, "str | None", "str | None"]


@dataclass(frozen=True)
class Distribution:
    """This process's place in a distributed run, as the adapter found it."""

    rank: int
    world_size: int
    #: A collective: every rank passes one picklable object, each gets the list in rank order.
    gather: Callable[[Any], list[Any]]
    #: Releases what ``gather`` set up (called on ``detach()``).
    close: Callable[[], None] = lambda: None


def check_rank_mode(mode: Any) -> str:
    if not isinstance(mode, str) or mode not in RANK_MODES:
        raise ValueError(
            f"ranks= must be one of {', '.join(repr(m) for m in RANK_MODES)}, got {mode!r}"
        )
    return mode


class RankCombiner:
    """Applies a rank mode to each step's records (see the module docstring)."""

    def __init__(self, mode: str, distribution: Distribution) -> None:
        self.mode = check_rank_mode(mode)
        self.rank = distribution.rank
        self.world_size = distribution.world_size
        self._gather = distribution.gather
        self.close = distribution.close

    @property
    def stores(self) -> bool:
        """Whether this rank writes to its sinks."""
        return self.mode == "all" or self.rank == 0

    @property
    def reduces(self) -> bool:
        return self.mode in _REDUCE

    def run_name(self, run: str) -> str:
        return f"{run}-rank{self.rank}" if self.mode == "all" else run

    def combine(self, run: str, records: Sequence[Record],
                problems: Sequence[Problem]) -> tuple[list[Record], list[Problem]]:
        """This step's records (and other ranks' new problems) as this rank should store them.

        In the reducing modes this is a collective: every rank must call it once per step.
        """
        if not self.reduces:
            return [dataclasses.replace(r, rank=self.rank) for r in records], []
        payload = ([_key(r) + (r.value,) for r in records], [dataclasses.astuple(p) for p in problems])
        gathered = self._gather(payload)
        if self.rank != 0:
            return [], []
        return self._reduced(run, gathered), [
            _from_rank(rank, Problem(*fields))
            for rank, (_, sent) in enumerate(gathered) if rank != 0
            for fields in sent
        ]

    def _reduced(self, run: str, gathered: list[Any]) -> list[Record]:
        values: dict[RecordKey, list[Any]] = {}
        for rows, _ in gathered:
            for *key, value in rows:
                values.setdefault(tuple(key), []).append(value)
        reduced = []
        for key, found in values.items():
            step, epoch, metric, layer, param = key
            reduced.append(Record(run, step, epoch, metric, layer, param,
                                  _reduce(self.mode, found), rank=None))
        return reduced


def _key(record: Record) -> RecordKey:
    return (record.step, record.epoch, record.metric, record.layer, record.param)


def _reduce(mode: str, values: list[Any]) -> Any:
    reduce = _REDUCE[mode]
    first = values[0]
    if isinstance(first, Histogram):
        if all(isinstance(v, Histogram) and np.array_equal(v.edges, first.edges) for v in values):
            return Histogram(reduce(np.stack([v.counts for v in values]), axis=0), first.edges)
        return first
    if isinstance(first, np.ndarray):
        if all(isinstance(v, np.ndarray) and v.shape == first.shape for v in values):
            return reduce(np.stack(values), axis=0)
        return first
    return float(reduce(np.asarray(values, dtype=np.float64)))


def _from_rank(rank: int, problem: Problem) -> Problem:
    return dataclasses.replace(problem, message=f"rank {rank}: {problem.message}",
                               source=f"rank{rank}:{problem.source}")
