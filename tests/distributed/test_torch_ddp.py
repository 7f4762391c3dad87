"""PyTorch DDP: two real processes (gloo on 127.0.0.1), each attached; ranks modes."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ikkuna

pytestmark = pytest.mark.framework
ROOT = Path(__file__).resolve().parents[2]
WORLD = 2
TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_ranks(store: Path, mode: str, *extra: str) -> list[str]:
    """Start both ranks, wait for both (bounded), return their outputs; fail if either fails."""
    port = str(free_port())
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.distributed.ddp_worker", str(rank), str(WORLD), port,
             str(store), mode, *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for rank in range(WORLD)
    ]
    outputs = []
    try:
        for child in children:
            output, _ = child.communicate(timeout=TIMEOUT_S)
            outputs.append(output)
    finally:
        for child in children:
            child.kill()
    for child, output in zip(children, outputs):
        assert child.returncode == 0, output
    return outputs


def reference_gradient_norms(torch) -> dict[tuple[str, str, int], float]:
    """Gradient norms of a single process training on the full batch (what DDP applies)."""
    from tests.distributed import ddp_worker

    network = ddp_worker.model()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    inputs, labels = ddp_worker.full_batch()
    norms = {}
    for step in range(ddp_worker.STEPS):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(network(inputs), labels).backward()
        for name, parameter in network.named_parameters():
            layer, role = name.rsplit(".", 1)
            norms[(layer, role, step)] = float(parameter.grad.double().norm())
        optimizer.step()
    return norms


def stored(store: Path, run: str, metric: str) -> dict[tuple, tuple[float, int | None]]:
    with sqlite3.connect(store / "ikkuna.sqlite") as connection:
        rows = connection.execute(
            "SELECT r.layer, r.param, r.step, r.value, r.rank FROM records r "
            "JOIN runs ON runs.id = r.run_id WHERE runs.name = ? AND r.metric = ?", (run, metric),
        ).fetchall()
    return {(layer, param, step): (value, rank) for layer, param, step, value, rank in rows}


def run_names(store: Path) -> list[str]:
    return sorted(summary.name for summary in ikkuna.list_runs(store=store))


def test_mean_over_ranks_gives_the_gradient_norm_ddp_applies(torch, tmp_path):
    run_ranks(tmp_path, "mean")
    assert run_names(tmp_path) == ["ddp"]  # rank 1 stores nothing of its own
    found = stored(tmp_path, "ddp", "gradient_norm")
    expected = reference_gradient_norms(torch)
    assert set(found) == set(expected)
    for key, norm in expected.items():
        value, rank = found[key]
        assert rank is None  # reduced over the ranks
        assert value == pytest.approx(norm, rel=1e-5)
    with ikkuna.open_run("ddp", store=tmp_path) as run:
        assert run.config["ranks"] == "mean" and run.config["world_size"] == WORLD
        # the ranks see different halves: the loss is their mean, the activations differ
        assert len(run.series("loss")) == 3


def test_max_over_ranks_is_at_least_each_ranks_own_value(torch, tmp_path):
    run_ranks(tmp_path / "max", "max")
    run_ranks(tmp_path / "all", "all")
    maxima = stored(tmp_path / "max", "ddp", "activation_mean")
    per_rank = [stored(tmp_path / "all", f"ddp-rank{r}", "activation_mean") for r in range(WORLD)]
    assert maxima and set(maxima) == set(per_rank[0]) == set(per_rank[1])
    for key, (value, _) in maxima.items():
        assert value == pytest.approx(max(found[key][0] for found in per_rank), rel=1e-12)
    assert per_rank[0] != per_rank[1]  # each rank saw its own half of the batch


def test_all_ranks_store_their_own_runs_and_every_record_carries_its_rank(torch, tmp_path):
    outputs = run_ranks(tmp_path, "all")
    assert run_names(tmp_path) == ["ddp-rank0", "ddp-rank1"]
    assert "run ddp-rank1" in outputs[1]
    for rank in range(WORLD):
        found = stored(tmp_path, f"ddp-rank{rank}", "weight_norm")
        assert found and {r for _, r in found.values()} == {rank}
    # DDP keeps the replicas equal: each rank's weight norms are the same
    assert ({k: v for k, (v, _) in stored(tmp_path, "ddp-rank0", "weight_norm").items()}
            == {k: v for k, (v, _) in stored(tmp_path, "ddp-rank1", "weight_norm").items()})


def test_rank0_mode_stores_rank_zeros_records_only(torch, tmp_path):
    run_ranks(tmp_path, "rank0")
    assert run_names(tmp_path) == ["ddp"]
    found = stored(tmp_path, "ddp", "gradient_norm")
    assert found and {rank for _, rank in found.values()} == {0}


def test_a_metric_raising_on_one_rank_is_isolated_and_reported_on_rank_0(torch, tmp_path):
    outputs = run_ranks(tmp_path, "mean", "1")
    assert all("finished 3 steps" in output for output in outputs)
    with ikkuna.open_run("ddp", store=tmp_path) as run:
        problems = run.problems()
        assert len(problems) == 1
        assert problems[0]["message"].startswith("rank 1: ikkuna: metric 'fails_on_one_rank'")
        assert problems[0]["source"] == "rank1:metric:fails_on_one_rank"
        # rank 0's values go on; the other metrics still reduce over both ranks
        assert list(run.series("fails_on_one_rank", "0", "weight").steps) == [0, 1, 2]
        assert len(run.series("gradient_norm", "0", "weight")) == 3
    assert np.isfinite(stored(tmp_path, "ddp", "gradient_norm")[("0", "weight", 2)][0])


def test_the_readme_ddp_example_runs_and_stores_one_reduced_run(torch, tmp_path):
    done = subprocess.run(
        [sys.executable, "examples/distributed/torch_ddp.py", "--store", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert run_names(tmp_path) == ["ddp-example"]
    with ikkuna.open_run("ddp-example", store=tmp_path) as run:
        assert len(run.series("gradient_norm", "0", "weight")) == 50
