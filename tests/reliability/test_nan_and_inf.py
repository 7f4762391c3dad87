"""NaN and Inf in training, in every framework: a weight of the first dense layer becomes NaN
or +Inf before step 3 (as after an overflow). ikkuna records the non-finite values rather
than failing on them, the store holds them, and the doctor names that layer and that step as
where they began.

The first layer feeds a tanh, so with +Inf only the first layer's own values go non-finite
(tanh(+-Inf) is +-1): the doctor must find the layer, not just the loss.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import ikkuna
from ikkuna.testing.parity.jax_models import cross_entropy_step

pytestmark = pytest.mark.framework

STEPS = 6
BROKEN_AT = 3
VALUES = {"nan": math.nan, "inf": math.inf}


def torch_run(torch, value: float, run: str) -> tuple[ikkuna.Monitor, str]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs, labels = torch.randn(6, 4), torch.randint(0, 3, (6,))
    with ikkuna.attach(model, optimizer=optimizer, run=run) as monitor:
        for step in range(STEPS):
            if step == BROKEN_AT:
                with torch.no_grad():
                    model[0].weight[0, 0] = value
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(inputs), labels)
            loss.backward()
            optimizer.step()
            monitor.log(loss=loss.detach())
    return monitor, "0"


def keras_run(keras, value: float, run: str) -> tuple[ikkuna.Monitor, str]:
    layers = keras.layers
    model = keras.Sequential([keras.Input((4,)), layers.Dense(8, name="hidden"),
                              layers.Activation("tanh", name="act"), layers.Dense(3, name="head")])
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((STEPS * 6, 4)).astype("float32")
    labels = rng.integers(0, 3, STEPS * 6).astype("int32")

    def break_weight(batch, logs=None):
        if batch == BROKEN_AT:
            kernel = model.get_layer("hidden").kernel
            broken = kernel.numpy()
            broken[0, 0] = value
            kernel.assign(broken)

    monitor = ikkuna.attach(model, run=run)
    model.fit(inputs, labels, batch_size=6, epochs=1, shuffle=False, verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(on_train_batch_begin=break_weight)])
    monitor.detach()
    return monitor, "hidden"


def jax_run(jax, value: float, run: str) -> tuple[ikkuna.Monitor, str]:
    import optax
    from flax import nnx

    from ikkuna.demos.nnx_layers import nnx_layers

    tanh = nnx_layers().Tanh

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.dense1 = nnx.Linear(4, 8, rngs=rngs)
            self.tanh = tanh()
            self.head = nnx.Linear(8, 3, rngs=rngs)

        def __call__(self, x):
            return self.head(self.tanh(self.dense1(x)))

    step = nnx.jit(cross_entropy_step())

    model = Net(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
                              wrt=nnx.Param)
    rng = np.random.default_rng(0)
    x = jax.numpy.asarray(rng.standard_normal((6, 4)), jax.numpy.float32)
    y = jax.numpy.asarray(rng.integers(0, 3, 6))
    with ikkuna.attach(model, optimizer=optimizer, run=run) as monitor:
        for index in range(STEPS):
            if index == BROKEN_AT:
                kernel = model.dense1.kernel
                kernel[...] = kernel[...].at[0, 0].set(value)
            monitor.log(loss=step(model, optimizer, x, y))
    return monitor, "dense1"


RUNS = {"torch": torch_run, "keras": keras_run, "jax": jax_run}


@pytest.mark.parametrize("broken", sorted(VALUES))
@pytest.mark.parametrize("framework", sorted(RUNS))
def test_nan_and_inf_are_recorded_and_the_doctor_names_the_layer_and_step_they_began(
        request, framework, broken):
    module = request.getfixturevalue(framework)  # skips (or fails) without the framework
    value = VALUES[broken]
    monitor, layer = RUNS[framework](module, value, f"{framework}-{broken}")
    assert not monitor.problems  # no metric raised on a non-finite value
    with ikkuna.open_run(monitor.run) as run:
        assert run.series("loss").steps.tolist() == list(range(STEPS))  # no step was lost
        weight_norm = run.series("weight_norm", layer, "weight")
        assert weight_norm.steps.tolist() == list(range(STEPS))
        finite_before = np.isfinite(weight_norm.values[:BROKEN_AT])
        assert finite_before.all(), weight_norm.values
        after = weight_norm.values[BROKEN_AT:]
        assert (np.isnan(after) if broken == "nan" else after == np.inf).all(), after
        activations = run.series("activation_mean", layer)
        assert np.isfinite(activations.values[:BROKEN_AT]).all()
        assert not np.isfinite(activations.values[BROKEN_AT:]).any(), activations.values
        losses = run.series("loss").values
        if broken == "inf":  # the tanh bounds what follows: only the layer itself is not finite
            assert np.isfinite(losses).all(), losses
        else:
            assert np.isnan(losses[BROKEN_AT:]).all(), losses
    first = ikkuna.diagnose(monitor.run)[0]
    assert (first.rule, first.layers, first.steps[0]) == ("nan_or_inf", (layer,), BROKEN_AT), first
    assert "activations" in first.message, first.message
