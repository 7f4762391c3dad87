"""Rank modes without a framework: what each rank stores, reductions, problems from other ranks."""

from __future__ import annotations

import numpy as np
import pytest

import ikkuna
from ikkuna.core.bus import Problem
from ikkuna.core.events import Histogram, Record
from ikkuna.core.ranks import Distribution, RankCombiner, check_rank_mode


def simulated(mode: str, sent_by_others: list) -> list[RankCombiner]:
    """Rank 0 and rank 1 combiners whose gather returns this rank's payload plus the other's."""

    def gather_for(rank: int):
        def gather(payload):
            return [payload, *sent_by_others] if rank == 0 else [sent_by_others[0], payload]
        return gather

    return [RankCombiner(mode, Distribution(rank, 2, gather_for(rank))) for rank in range(2)]


def record(metric, value, layer="fc", param="weight", step=3) -> Record:
    return Record("run", step, 0, metric, layer, param, value)


def test_unknown_modes_are_refused_naming_the_accepted_ones():
    with pytest.raises(ValueError, match="'rank0', 'all', 'mean', 'max'.*got 'sum'"):
        check_rank_mode("sum")
    with pytest.raises(ValueError, match="ranks= must be one of"):
        ikkuna.attach(object(), ranks="everything")


def test_rank0_and_all_stamp_the_rank_without_a_collective():
    def no_gather(payload):
        raise AssertionError("no collective in this mode")

    for mode in ("rank0", "all"):
        combiner = RankCombiner(mode, Distribution(1, 2, no_gather))
        combined, others = combiner.combine("run", [record("loss", 1.0)], [])
        assert [r.rank for r in combined] == [1] and others == []
    assert not RankCombiner("rank0", Distribution(1, 2, no_gather)).stores
    assert RankCombiner("all", Distribution(1, 2, no_gather)).run_name("exp") == "exp-rank1"


def test_mean_and_max_reduce_floats_vectors_and_histograms_on_rank_0_only():
    other = [(3, 0, "g", "fc", "weight", 3.0), (3, 0, "v", "fc", "weight", np.array([0.0, 4.0])),
             (3, 0, "h", "fc", "weight", Histogram([1, 3], [0, 1, 2])),
             (3, 0, "only_other", None, None, 7.0)]
    mine = [record("g", 1.0), record("v", np.array([2.0, 2.0])),
            record("h", Histogram([3, 1], [0, 1, 2]))]
    for mode, g, v, h in (("mean", 2.0, [1.0, 3.0], [2.0, 2.0]), ("max", 3.0, [2.0, 4.0], [3.0, 3.0])):
        rank0, rank1 = simulated(mode, [(other, [])])
        combined, _ = rank0.combine("run", mine, [])
        by_metric = {r.metric: r for r in combined}
        assert by_metric["g"].value == g and by_metric["g"].rank is None
        assert by_metric["v"].value.tolist() == v
        assert by_metric["h"].value.counts.tolist() == h
        assert by_metric["only_other"].value == 7.0 and by_metric["only_other"].run == "run"
        assert rank1.combine("run", mine, []) == ([], [])


def test_a_vector_of_another_shape_keeps_rank_0s_value():
    rank0, _ = simulated("mean", [([(3, 0, "v", "fc", "weight", np.array([9.0]))], [])])
    combined, _ = rank0.combine("run", [record("v", np.array([1.0, 2.0]))], [])
    assert combined[0].value.tolist() == [1.0, 2.0]


def test_problems_of_other_ranks_reach_rank_0_with_their_rank():
    problem = Problem("metric:m", "ikkuna: metric 'm' raised", step=2, layer="fc", details="tb")
    import dataclasses

    rank0, _ = simulated("mean", [([], [dataclasses.astuple(problem)])])
    _, others = rank0.combine("run", [], [])
    assert others == [Problem("rank1:metric:m", "rank 1: ikkuna: metric 'm' raised", 2, "fc", "tb")]
