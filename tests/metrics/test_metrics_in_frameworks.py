"""The training-dynamics metrics on real tiny models in every framework, against numpy.

The same network in each framework: dense1 -> tanh -> dense2 -> relu -> dense3, with three
ReLU units held dead by a bias of -100, trained for ten steps with a learning rate halved at
every step (a schedule each framework evaluates itself).
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import ikkuna
from ikkuna.core import kinds as K
from ikkuna.metrics.spectral import SpectralAlpha
from tests.adapters.recording import recorders
from tests.metrics.test_spectral import direct_fit

STEPS = 10
BATCH = 16
INITIAL_RATE = 0.1
DEAD = 3  # of the 6 units after relu
LAYER_ACTIVATIONS = {"dense1": None, "tanh": "tanh", "dense2": None, "relu": "relu", "dense3": None}
METRICS = [
    "learning_rate", "saturated_fraction", "dead_unit_fraction", "distance_from_init",
    "global_weight_norm", "global_gradient_norm", "global_update_norm",
    "global_update_to_weight_ratio",
    "spectral_norm", "condition_number", "stable_rank",
]


def batches() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((BATCH, 4)) * 3).astype(np.float32) for _ in range(STEPS)]


def expected_rate(step: int) -> float:
    return INITIAL_RATE * 0.5 ** step


def train_torch(torch: ModuleType, metrics: list) -> tuple[ikkuna.Monitor, dict]:
    from collections import OrderedDict

    nn = torch.nn
    model = nn.Sequential(OrderedDict(dense1=nn.Linear(4, 8), tanh=nn.Tanh(), dense2=nn.Linear(8, 6),
                                      relu=nn.ReLU(), dense3=nn.Linear(6, 2)))
    with torch.no_grad():
        model.dense2.bias[:DEAD] = -100.0
    initial = {(name.split(".")[0], name.split(".")[1]): p.detach().numpy().copy()
               for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=INITIAL_RATE)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    with ikkuna.attach(model, optimizer=optimizer, metrics=metrics) as monitor:
        for inputs in batches():
            loss = model(torch.from_numpy(inputs)).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return monitor, initial


def train_keras(keras: ModuleType, metrics: list) -> tuple[ikkuna.Monitor, dict]:
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((4,)), layers.Dense(8, name="dense1"), layers.Activation("tanh", name="tanh"),
        layers.Dense(6, name="dense2"), layers.ReLU(name="relu"), layers.Dense(2, name="dense3"),
    ])
    kernel, bias = model.get_layer("dense2").get_weights()
    bias[:DEAD] = -100.0
    model.get_layer("dense2").set_weights([kernel, bias])
    initial = {}
    for name in ("dense1", "dense2", "dense3"):
        kernel, bias = model.get_layer(name).get_weights()
        initial[(name, "weight")], initial[(name, "bias")] = kernel, bias
    schedule = keras.optimizers.schedules.ExponentialDecay(INITIAL_RATE, decay_steps=1, decay_rate=0.5)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    inputs = np.concatenate(batches())
    with ikkuna.attach(model, metrics=metrics) as monitor:
        model.fit(inputs, np.zeros((len(inputs), 2), np.float32), batch_size=BATCH, shuffle=False,
                  verbose=0)
    return monitor, initial


def jax_model() -> Any:
    import jax.numpy as jnp
    from flax import nnx

    class Tanh(nnx.Module):
        def __call__(self, x):
            return jnp.tanh(x)

    class ReLU(nnx.Module):
        def __call__(self, x):
            return nnx.relu(x)

    class Network(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.dense1, self.tanh = nnx.Linear(4, 8, rngs=rngs), Tanh()
            self.dense2, self.relu = nnx.Linear(8, 6, rngs=rngs), ReLU()
            self.dense3 = nnx.Linear(6, 2, rngs=rngs)

        def __call__(self, x):
            return self.dense3(self.relu(self.dense2(self.tanh(self.dense1(x)))))

    model = Network(nnx.Rngs(0))
    model.dense2.bias[...] = model.dense2.bias[...].at[:DEAD].set(-100.0)
    return model


def train_jax(jax: ModuleType, metrics: list, optimizer: Any = None) -> tuple[ikkuna.Monitor, dict]:
    import optax
    from flax import nnx

    model = jax_model()
    initial = {(name, role): np.asarray(getattr(getattr(model, name), native)[...]).copy()
               for name in ("dense1", "dense2", "dense3")
               for role, native in (("weight", "kernel"), ("bias", "bias"))}
    rate = optax.exponential_decay(INITIAL_RATE, transition_steps=1, decay_rate=0.5)
    transformation = optimizer or optax.inject_hyperparams(optax.sgd)(learning_rate=rate)
    optimizer = nnx.Optimizer(model, transformation, wrt=nnx.Param)

    @nnx.jit
    def step(model: Any, optimizer: Any, inputs: Any) -> Any:
        loss, grads = nnx.value_and_grad(lambda m: (m(inputs) ** 2).mean())(model)
        optimizer.update(model, grads)
        return loss

    with ikkuna.attach(model, optimizer=optimizer, metrics=metrics) as monitor:
        for inputs in batches():
            step(model, optimizer, jax.numpy.asarray(inputs))
    return monitor, initial


TRAIN = {"torch": train_torch, "keras": train_keras, "jax": train_jax}
FRAMEWORKS = pytest.mark.parametrize("framework", sorted(TRAIN))


@pytest.fixture
def trained(request, framework):
    module = request.getfixturevalue(framework)
    recorded = recorders(K.ACTIVATIONS, K.WEIGHTS, K.GRADIENTS)
    alpha = SpectralAlpha(every=1)
    monitor, initial = TRAIN[framework](module, [*recorded.values(), *METRICS, alpha])
    assert monitor.problems == []
    return monitor, initial, recorded


def values(monitor: ikkuna.Monitor, metric: str, layer: str | None = None, param: str | None = None):
    series = monitor.series(metric, layer, param)
    return dict(zip(series.steps.tolist(), series.values.tolist()))


@FRAMEWORKS
def test_layers_know_their_activation(trained):
    monitor, _, _ = trained
    assert {layer.name: layer.activation for layer in monitor.layers} == LAYER_ACTIVATIONS
    with ikkuna.open_run(monitor.run, store=monitor.store_path) as run:  # the store keeps them
        assert {layer.name: layer.activation for layer in run.layers()} == LAYER_ACTIVATIONS


@FRAMEWORKS
def test_learning_rate_is_the_optimizers_scheduled_rate_at_each_step(trained):
    monitor, _, _ = trained
    recorded = values(monitor, "learning_rate")
    assert sorted(recorded) == list(range(STEPS))
    for step, rate in recorded.items():
        assert rate == pytest.approx(expected_rate(step), rel=1e-6), step


@FRAMEWORKS
def test_saturated_fraction_of_the_tanh_layer_matches_its_outputs(trained):
    monitor, _, recorded = trained
    found = values(monitor, "saturated_fraction", "tanh")
    assert sorted(found) == list(range(STEPS))
    for step, fraction in found.items():
        outputs = recorded[K.ACTIVATIONS].at(step, "tanh").values
        assert fraction == np.mean(np.abs(outputs) > 0.99)
    assert max(found.values()) > 0  # inputs of scale 3 do saturate some units
    assert {layer for layer, _ in ikkuna.open_run(monitor.run, store=monitor.store_path)
            .keys("saturated_fraction")} == {"tanh"}  # relu and linear layers record nothing


@FRAMEWORKS
def test_dead_unit_fraction_finds_the_units_held_dead(trained):
    monitor, _, recorded = trained
    assert values(monitor, "dead_unit_fraction", "relu") == {STEPS - 1: DEAD / 6}
    outputs = np.concatenate([recorded[K.ACTIVATIONS].at(step, "relu").values
                              for step in range(STEPS)])
    assert not outputs[:, :DEAD].any() and outputs[:, DEAD:].any(axis=0).all()
    assert values(monitor, "dead_unit_fraction", "tanh") == {STEPS - 1: 0.0}


@FRAMEWORKS
def test_distance_from_init_is_the_distance_from_the_weights_before_training(trained):
    monitor, initial, recorded = trained
    for (layer, role), start in initial.items():
        found = values(monitor, "distance_from_init", layer, role)
        assert sorted(found) == list(range(STEPS))
        for step, distance in found.items():
            weights = recorded[K.WEIGHTS].at(step, layer, role).values
            expected = np.linalg.norm(weights.astype(np.float64) - start.astype(np.float64))
            assert distance == pytest.approx(expected, rel=1e-6, abs=1e-9), (layer, role, step)


@FRAMEWORKS
def test_global_norms_are_over_every_parameter_of_the_step(trained):
    monitor, _, recorded = trained
    for metric, kind in (("global_weight_norm", K.WEIGHTS), ("global_gradient_norm", K.GRADIENTS)):
        found = values(monitor, metric)
        assert sorted(found) == list(range(STEPS))
        for step, norm in found.items():
            arrays = [s.values for s in recorded[kind].seen if s.step == step]
            assert len(arrays) == 6
            expected = np.sqrt(sum(np.sum(a.astype(np.float64) ** 2) for a in arrays))
            assert norm == pytest.approx(expected, rel=1e-12), (metric, step)
    ratio, updates, weights = (values(monitor, name) for name in (
        "global_update_to_weight_ratio", "global_update_norm", "global_weight_norm"))
    for step in range(STEPS):
        assert ratio[step] == pytest.approx(updates[step] / weights[step], rel=1e-12)


def test_jax_warns_once_how_to_make_the_learning_rate_readable(jax):
    import optax

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor, _ = train_jax(jax, ["learning_rate", "global_weight_norm"], optimizer=optax.sgd(0.1))
    messages = [str(w.message) for w in caught if "learning rate" in str(w.message)]
    assert len(messages) == 1 and "optax.inject_hyperparams" in messages[0]
    with ikkuna.open_run(monitor.run, store=monitor.store_path) as run:
        assert "learning_rate" not in run.metrics() and "global_weight_norm" in run.metrics()


def test_torch_records_the_first_parameter_groups_rate(torch):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD([{"params": [model.weight], "lr": 0.5},
                                 {"params": [model.bias], "lr": 0.01}])
    with ikkuna.attach(model, optimizer=optimizer, metrics=["learning_rate"]) as monitor:
        for _ in range(2):
            model(torch.ones(4, 3)).sum().backward()
            optimizer.step()
            optimizer.zero_grad()
    assert values(monitor, "learning_rate") == {0: 0.5, 1: 0.5}


@FRAMEWORKS
def test_spectral_metrics_match_numpy_on_each_frameworks_own_weights(trained):
    """Singular values do not depend on the layout, so the native arrays are the reference."""
    monitor, initial, recorded = trained
    for layer in ("dense1", "dense2", "dense3"):
        for step in range(STEPS):
            native = recorded[K.WEIGHTS].at(step, layer, "weight").values.astype(np.float64)
            sigma = np.linalg.svd(native, compute_uv=False)
            expected = {
                "spectral_norm": np.linalg.norm(native, 2),
                "condition_number": np.linalg.cond(native),
                "stable_rank": np.linalg.norm(native, "fro") ** 2 / sigma[0] ** 2,
            }
            for metric, value in expected.items():
                found = values(monitor, metric, layer, "weight")[step]
                assert found == pytest.approx(value, rel=1e-9), (metric, layer, step)
    # dense2 (6 x 8) has the 6 eigenvalues a power-law fit needs
    for step in range(STEPS):
        native = recorded[K.WEIGHTS].at(step, "dense2", "weight").values.astype(np.float64)
        expected_alpha = direct_fit(np.linalg.svd(native, compute_uv=False) ** 2)[0]
        assert values(monitor, "spectral_alpha", "dense2", "weight")[step] == pytest.approx(
            expected_alpha, rel=1e-9)
    with ikkuna.open_run(monitor.run, store=monitor.store_path) as run:
        assert set(run.keys("spectral_norm")) == {(f"dense{i}", "weight") for i in (1, 2, 3)}
        # dense1 (4 x 8 as a matrix) has 4 eigenvalues and dense3 (2 x 6) 2: too few for a fit
        assert set(run.keys("spectral_alpha")) == {("dense2", "weight")}
