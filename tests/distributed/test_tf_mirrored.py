"""Keras fit under tf.distribute.MirroredStrategy on two logical CPU devices: one series per
layer per step, with the global batch's values and the all-reduced gradient.

The training runs in a subprocess (tf_mirrored_worker.py): logical devices must be configured
before TensorFlow initializes, and the subprocess has a timeout so it always ends.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import ikkuna
from tests.conftest import require_framework
from tests.distributed import tf_mirrored_worker as worker
from tests.distributed.store_checks import duplicate_records

pytestmark = pytest.mark.framework
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300
STEPS = worker.STEPS_PER_EPOCH * worker.EPOCHS
LAYERS = {"hidden": ("weight", "bias"), "out": ("weight", "bias")}


@pytest.fixture(scope="module", params=["traced", "run_eagerly"])
def trained(request, tmp_path_factory):
    """Run the worker once per mode: (its result, the store's path)."""
    require_framework("tensorflow")  # skips, or fails where frameworks are required
    require_framework("keras")
    directory = tmp_path_factory.mktemp(f"mirrored-{request.param}")
    store, result = directory / "store", directory / "result.json"
    extra = ["--eager"] if request.param == "run_eagerly" else []
    done = subprocess.run(
        [sys.executable, "-m", "tests.distributed.tf_mirrored_worker", str(store), str(result),
         *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(result.read_text()), store


def stored(store: Path, metric: str) -> dict[tuple, float]:
    with sqlite3.connect(store / "ikkuna.sqlite") as connection:
        rows = connection.execute(
            "SELECT r.layer, r.param, r.step, r.value FROM records r JOIN runs "
            "ON runs.id = r.run_id WHERE runs.name = ? AND r.metric = ?", (worker.RUN, metric),
        ).fetchall()
    return {(layer, param, step): value for layer, param, step, value in rows}


def test_the_training_really_runs_on_two_replicas(keras, trained):
    result, _ = trained
    assert result["replicas"] == 2
    assert result["devices"] == ["/device:CPU:0", "/device:CPU:1"]
    assert result["optimizer_steps"] == STEPS


def test_one_record_per_metric_layer_param_and_step_not_one_per_replica(keras, trained):
    result, store = trained
    with sqlite3.connect(store / "ikkuna.sqlite") as connection:
        steps = [step for (step,) in connection.execute(
            "SELECT DISTINCT step FROM records ORDER BY step")]
    assert duplicate_records(store) == []
    assert steps == list(range(result["optimizer_steps"]))  # one stored step per update
    assert [run.name for run in ikkuna.list_runs(store=store)] == [worker.RUN]
    with ikkuna.open_run(worker.RUN, store=store) as run:
        for layer, roles in LAYERS.items():
            assert list(run.series("activation_mean", layer).steps) == list(range(STEPS))
            for role in roles:
                for metric in ("gradient_norm", "weight_norm", "update_norm"):
                    assert list(run.series(metric, layer, role).steps) == list(range(STEPS))
        assert list(run.series("loss").steps) == list(range(STEPS))


def test_gradient_norms_are_those_of_one_device_on_the_whole_global_batch(keras, trained):
    result, store = trained
    expected = {tuple(key.split("/")): norm
                for key, norm in result["reference"]["gradient_norm"].items()}
    found = stored(store, "gradient_norm")
    assert {(layer, role, str(step)) for layer, role, step in found} == set(expected)
    for (layer, role, step), norm in expected.items():
        assert found[(layer, role, int(step))] == pytest.approx(norm, rel=1e-5)


def test_loss_and_activations_are_the_global_batchs(keras, trained):
    result, store = trained
    reference = result["reference"]
    losses = stored(store, "loss")
    for step, loss in reference["loss"].items():
        assert losses[(None, None, int(step))] == pytest.approx(loss, rel=1e-5)
    for metric in ("activation_mean", "activation_std"):
        found = stored(store, metric)
        assert len(found) == len(reference[metric]) == len(LAYERS) * STEPS
        for key, value in reference[metric].items():
            layer, step = key.split("/")
            assert found[(layer, None, int(step))] == pytest.approx(value, rel=1e-5, abs=1e-7)


def test_monitoring_does_not_change_training(keras, trained):
    result, _ = trained
    assert result["losses_with"] == result["losses_without"]  # bitwise
    assert result["weights_with"] == result["weights_without"]


def test_the_example_runs_and_stores_its_run(keras, tmp_path):
    done = subprocess.run(
        [sys.executable, "examples/distributed/tf_mirrored.py", "--store", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "on 2 replicas" in done.stdout
    assert [run.name for run in ikkuna.list_runs(store=tmp_path)] == ["tf-mirrored-example"]
    with ikkuna.open_run("tf-mirrored-example", store=tmp_path) as run:
        assert list(run.series("gradient_norm", "hidden", "weight").steps) == list(range(40))
