"""JAX: a jitted Flax NNX step over a batch sharded on 2 (host) devices with jax.sharding.

XLA_FLAGS=--xla_force_host_platform_device_count=2 must be set before jax is imported, so
the training runs in a subprocess (tests/distributed/jax_sharded_worker.py).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import ikkuna
from tests.conftest import require_framework
from tests.distributed import jax_sharded_worker as worker
from tests.distributed.store_checks import duplicate_records

pytestmark = pytest.mark.framework
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 180
TWO_DEVICES = "--xla_force_host_platform_device_count=2"


def two_device_env() -> dict[str, str]:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {TWO_DEVICES}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    return env


def run_python(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], check=False, cwd=ROOT, env=two_device_env(),
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def sharded_store(tmp_path_factory) -> tuple[Path, str]:
    """One worker run for the module: the store and what the worker printed."""
    for module in ("flax", "optax", "jax"):  # skip, or fail under IKKUNA_REQUIRE_ALL=1
        require_framework(module)
    store = tmp_path_factory.mktemp("jax-sharded")
    return store, run_python("-m", "tests.distributed.jax_sharded_worker", str(store))


def stored(store: Path, run: str) -> dict[tuple[str, str | None, str | None, int], float]:
    with sqlite3.connect(store / "ikkuna.sqlite") as connection:
        rows = connection.execute(
            "SELECT r.metric, r.layer, r.param, r.step, r.value FROM records r "
            "JOIN runs ON runs.id = r.run_id WHERE runs.name = ?", (run,),
        ).fetchall()
    return {(metric, layer, param, step): value for metric, layer, param, step, value in rows}


def test_the_worker_trains_over_two_devices_and_attaching_leaves_the_losses_unchanged(
        jax, sharded_store):
    _, output = sharded_store
    lines = output.splitlines()
    assert "devices 2" in lines and lines[-1] == "done"
    losses = {line.split()[1]: line for line in lines if line.startswith("losses ")}
    # the loss and every weight lived on both devices (on one for the reference run)
    assert "devices [2]" in losses["sharded"] and "devices [2]" in losses["unmonitored"]
    assert "devices [1]" in losses["single"] and "devices [2]" in losses["pytree"]
    # the worker asserts bitwise equality itself; the printed values say the same
    assert (losses["sharded"].split("]", 1)[1] == losses["unmonitored"].split("]", 1)[1])


def test_a_sharded_step_records_once_per_step_not_once_per_device(jax, sharded_store):
    store, _ = sharded_store
    with sqlite3.connect(store / "ikkuna.sqlite") as connection:
        runs = connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert duplicate_records(store) == []
    assert runs == len(worker.RUNS)
    assert sorted(s.name for s in ikkuna.list_runs(store=store)) == sorted(worker.RUNS)
    steps = list(range(worker.STEPS))
    with ikkuna.open_run("sharded", store=store) as run:
        for layer in worker.LAYERS:
            assert list(run.series("activation_mean", layer).steps) == steps
            for param in ("weight", "bias"):
                assert list(run.series("gradient_norm", layer, param).steps) == steps
                assert list(run.series("weight_norm", layer, param).steps) == steps
        assert list(run.series("loss").steps) == steps
        rates = list(run.series("learning_rate").values)  # a replicated scalar, once per step
        assert rates == pytest.approx([worker.LEARNING_RATE] * worker.STEPS)


def test_sharded_records_equal_a_single_device_run_on_the_whole_batch(jax, sharded_store):
    store, _ = sharded_store
    sharded, single = stored(store, "sharded"), stored(store, "single")
    assert set(sharded) == set(single)
    metrics = {metric for metric, *_ in sharded}
    assert {"activation_mean", "activation_std", "gradient_norm", "global_gradient_norm",
            "update_norm", "weight_norm"} <= metrics
    for key, expected in single.items():
        assert sharded[key] == pytest.approx(expected, rel=1e-5), key

    # the callback saw the whole batch, not one device's half: each half's mean differs
    model, _ = worker.build()
    inputs, _ = worker.full_batch()
    half = worker.BATCH // 2
    whole = float(jax.numpy.mean(model.dense1(inputs)))
    assert sharded[("activation_mean", "dense1", None, 0)] == pytest.approx(whole, rel=1e-5)
    for part in (inputs[:half], inputs[half:]):
        assert float(jax.numpy.mean(model.dense1(part))) != pytest.approx(whole, rel=1e-3)


def test_the_jax_sharded_example_runs_on_two_devices_and_stores_its_run(jax, tmp_path):
    output = run_python("examples/distributed/jax_sharded.py", "--store", str(tmp_path),
                        "--steps", "20")
    assert "2 devices" in output
    assert [s.name for s in ikkuna.list_runs(store=tmp_path)] == ["jax-sharded-example"]
    with ikkuna.open_run("jax-sharded-example", store=tmp_path) as run:
        assert list(run.series("loss").steps) == list(range(20))
        assert len(run.series("gradient_norm", "dense1", "weight")) == 20


def test_pure_jax_record_step_in_a_sharded_step_records_the_whole_batch_once_per_step(
        jax, sharded_store):
    store, _ = sharded_store
    pytree, single = stored(store, "pytree"), stored(store, "single")
    common = set(pytree) & set(single)
    assert {metric for metric, *_ in common} >= {"activation_mean", "gradient_norm",
                                                 "update_norm", "weight_norm", "loss"}
    for key in common:
        assert pytree[key] == pytest.approx(single[key], rel=1e-5), key
    with ikkuna.open_run("pytree", store=store) as run:
        for layer in worker.LAYERS:
            assert list(run.series("activation_mean", layer).steps) == list(range(worker.STEPS))
            assert list(run.series("gradient_norm", layer, "weight").steps) == list(
                range(worker.STEPS))


def test_detach_waits_for_the_steps_still_on_their_way_to_the_host(jax, sharded_store):
    store, _ = sharded_store
    with ikkuna.open_run("unlogged", store=store) as run:
        steps = list(range(worker.STEPS))
        for layer in worker.LAYERS:
            assert list(run.series("gradient_norm", layer, "weight").steps) == steps
            assert list(run.series("slow", layer, "weight").steps) == steps
