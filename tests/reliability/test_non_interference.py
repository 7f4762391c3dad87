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
from tests.kept import Kept
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
    sink = Kept()
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
    sink = Kept()
    plain = fit_losses_and_weights(keras, initial)
    watched = fit_losses_and_weights(keras, initial, {"metrics": "full", "every": 3,
                                                      "sinks": [sink]})
    assert {r.step for r in sink.records if r.metric == "gradient_norm"} == set(range(0, 24, 3))
    assert len({r.metric for r in sink.records}) > 15
    assert watched[0] == plain[0] and len(plain[0]) == 24  # every step's running loss
    assert watched[1] == plain[1]  # History's epoch losses
    for after, wanted in zip(watched[2], plain[2], strict=True):
        np.testing.assert_array_equal(after, wanted)
