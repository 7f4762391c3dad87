"""Training is bitwise the same with ikkuna attached: torch with every built-in metric, on every
step and with ``every=3``, and Keras ``fit`` with every built-in metric and ``every=3`` (the
Keras file covers each alone; JAX's covers both together).

The torch model has what a monitor could disturb: BatchNorm (running statistics updated by
every training forward pass, the probe's included if it ran one in training mode), Dropout (the
random number stream), and Adam (optimizer state).
"""

from __future__ import annotations

import pytest

import ikkuna
from ikkuna.testing import MemorySink
from tests.reliability.test_keras_reliability import dense_model, fit_losses_and_weights

pytestmark = pytest.mark.framework

STEPS = 12


def torch_training(torch, attach_options=None):
    """Seeded training of a small CNN: its step losses and its whole state (parameters, BatchNorm
    buffers, Adam's moments) at the end; with ikkuna attached when ``attach_options`` is given."""
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(4 * 4 * 4, 16), nn.Tanh(), nn.Linear(16, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    data = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 1, 8, 8, generator=data), torch.randint(0, 3, (8,), generator=data))
               for _ in range(STEPS)]
    torch.manual_seed(2)  # dropout's stream: the same with and without ikkuna
    sink = MemorySink()
    monitor = (None if attach_options is None
               else ikkuna.attach(model, optimizer=optimizer, sinks=[sink], **attach_options))
    losses = []
    for inputs, labels in batches:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(inputs), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if monitor is not None:
            monitor.log(loss=loss.detach(), labels=labels)
    if monitor is not None:
        monitor.detach()
        assert not monitor.problems, monitor.problems
    state = {name: value.clone() for name, value in model.state_dict().items()}
    for index, per_parameter in optimizer.state_dict()["state"].items():
        for name, value in per_parameter.items():
            state[f"adam.{index}.{name}"] = torch.as_tensor(value).clone()
    return losses, state, sink.records


@pytest.mark.parametrize("options", [{"metrics": "full"}, {"metrics": "full", "every": 3},
                                     {"every": 3}], ids=["full", "full-every3", "every3"])
def test_torch_losses_weights_and_optimizer_state_are_bitwise_unchanged_by_ikkuna(torch, options):
    losses, state, _ = torch_training(torch)
    watched_losses, watched_state, records = torch_training(torch, options)
    every = options.get("every", 1)
    recorded = {r.step for r in records if r.metric == "gradient_norm"}
    assert recorded == set(range(0, STEPS, every))  # ikkuna did record
    if options.get("metrics") == "full":
        names = {r.metric for r in records}
        assert len(names) > 20 and {"update_to_weight_ratio", "activation_std"} <= names, names
    assert len(set(losses)) > 1
    assert watched_losses == losses  # bitwise: float == float
    assert watched_state.keys() == state.keys()
    assert any(name.endswith("running_mean") for name in state)
    for name, value in state.items():
        assert torch.equal(watched_state[name], value), name


def test_keras_fit_with_every_builtin_metric_every_3_steps_is_bitwise_unchanged(keras):
    import numpy as np

    initial = dense_model(keras, seed=0, activation="relu").get_weights()
    sink = MemorySink()
    plain = fit_losses_and_weights(keras, initial)
    watched = fit_losses_and_weights(keras, initial, {"metrics": "full", "every": 3,
                                                      "sinks": [sink]})
    assert {r.step for r in sink.records if r.metric == "gradient_norm"} == set(range(0, 24, 3))
    assert len({r.metric for r in sink.records}) > 15
    assert watched[0] == plain[0] and len(plain[0]) == 24  # every step's running loss
    assert watched[1] == plain[1]  # History's epoch losses
    for after, wanted in zip(watched[2], plain[2], strict=True):
        np.testing.assert_array_equal(after, wanted)


def keras_fit_weights(keras, activation, initial, attach_options=None):
    """Final weights and step losses of 24 unshuffled SGD steps of ``dense_model`` (Dense,
    then a separate Activation layer) from the weights ``initial``."""
    import numpy as np

    model = dense_model(keras, seed=1, activation=activation)
    model.set_weights(initial)
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((48, 4)).astype("float32")
    labels = rng.integers(0, 3, 48).astype("int32")
    losses = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(float(logs["loss"])))
    monitor = None if attach_options is None else ikkuna.attach(model, **attach_options)
    model.fit(inputs, labels, batch_size=4, epochs=2, shuffle=False, verbose=0,
              callbacks=[record])
    if monitor is not None:
        monitor.detach()
        assert not monitor.problems
    return losses, model.get_weights()


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "elu"])
def test_keras_fit_recording_a_dense_output_read_by_a_separate_activation_is_bitwise_unchanged(
        keras, activation):
    """Recording the output of a Dense layer that an Activation layer reads must leave
    TensorFlow's graph optimizer free to fuse the two (into a fused matmul whose activation
    rounds differently from the separate op): before the fix, 6e-8 apart after 24 steps."""
    import numpy as np

    initial = dense_model(keras, seed=0, activation=activation).get_weights()
    sink = MemorySink()
    plain_losses, plain = keras_fit_weights(keras, activation, initial)
    losses, weights = keras_fit_weights(keras, activation, initial,
                                        {"metrics": ["activation_mean"], "sinks": [sink]})
    assert {r.layer for r in sink.records} >= {"hidden", "act"}  # the Dense output recorded
    assert losses == plain_losses and len(losses) == 24
    for after, wanted in zip(weights, plain, strict=True):
        np.testing.assert_array_equal(after, wanted)
    assert not all(np.array_equal(a, b) for a, b in zip(plain, initial))  # it trained


def test_keras_mirrored_fit_recording_a_dense_output_read_by_tanh_is_bitwise_unchanged(
        keras, tmp_path):
    """The same under MirroredStrategy on two logical CPUs, where each replica's values are
    sent once per step by a merge_call (in a subprocess: logical devices must be set up before
    TensorFlow starts)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    result = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.reliability.keras_mirrored_worker", "tanh",
         str(tmp_path / "store"), str(result)],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300,
        check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads(result.read_text())
    assert found["replicas"] == 2
    assert found["layers"] == ["act", "hidden", "out"]  # the Dense output was recorded
    assert found["losses_with"] == found["losses_without"] and len(found["losses_with"]) == 6
    assert found["weights_with"] == found["weights_without"]  # bitwise (floats from JSON)
