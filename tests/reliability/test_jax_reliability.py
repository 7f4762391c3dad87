"""JAX (Flax NNX + optax under nnx.jit): every training dtype and parameter-free layers, memory
over a long run, and training left bitwise unchanged with every built-in metric.

jax, flax and optax are imported inside the tests (after the ``jax`` fixture), never here.
"""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest

import ikkuna
from ikkuna.testing import MemorySink
from tests.kept import rss_mib

pytestmark = pytest.mark.framework


def make_mlp(dtype=None, seed: int = 0):
    """dense1 (4->8), Tanh, ReLU (both parameter-free modules), head (8->3), in ``dtype``."""
    import jax.numpy as jnp
    from flax import nnx

    from ikkuna.demos.nnx_layers import nnx_layers

    layers = nnx_layers()
    dtype = jnp.float32 if dtype is None else dtype

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.dense1 = nnx.Linear(4, 8, dtype=dtype, param_dtype=dtype, rngs=rngs)
            self.tanh = layers.Tanh()
            self.relu = layers.ReLU()
            self.head = nnx.Linear(8, 3, dtype=dtype, param_dtype=dtype, rngs=rngs)

        def __call__(self, x):
            return self.head(self.relu(self.tanh(self.dense1(x))))

    return Net(nnx.Rngs(seed))


def jitted_step():
    import jax.numpy as jnp
    import optax
    from flax import nnx

    @nnx.jit
    def step(model, optimizer, x, y):
        def loss_of(model):
            logits = model(x).astype(jnp.float32)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = nnx.value_and_grad(loss_of)(model)
        optimizer.update(model, grads)
        return loss

    return step


def batches(count: int, dtype, seed: int = 0):
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    return [(jnp.asarray(rng.normal(size=(6, 4)), dtype), jnp.asarray(rng.integers(0, 3, 6)))
            for _ in range(count)]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_every_training_dtype_records_every_default_metric(jax, dtype):
    import optax
    from flax import nnx

    from ikkuna.core.attach import DEFAULT_METRICS

    dtype = getattr(jax.numpy, dtype)
    model = make_mlp(dtype)
    optimizer = nnx.Optimizer(model, optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
                              wrt=nnx.Param)
    step = jitted_step()
    sink = MemorySink()
    with ikkuna.attach(model, optimizer=optimizer, sinks=[sink]) as monitor:
        for x, y in batches(12, dtype):  # dead_unit_fraction records once per 10 steps
            monitor.log(loss=step(model, optimizer, x, y))
    assert not monitor.problems
    assert model.dense1.kernel[...].dtype == dtype  # trained in that dtype
    names = {r.metric for r in sink.records}
    assert set(DEFAULT_METRICS) | {"loss"} <= names, set(DEFAULT_METRICS) - names
    floats = [r for r in sink.records if isinstance(r.value, float)]
    assert len(floats) == len(sink.records)
    assert all(math.isfinite(r.value) for r in floats), [r for r in floats
                                                         if not math.isfinite(r.value)]
    activations = {r.layer for r in sink.records if r.metric == "activation_mean"}
    assert activations == {"dense1", "tanh", "relu", "head"}  # parameter-free layers too
    assert {r.layer for r in sink.records if r.metric == "saturated_fraction"} >= {"tanh"}
    assert {(r.layer, r.param) for r in sink.records if r.metric == "gradient_norm"} == {
        ("dense1", "weight"), ("dense1", "bias"), ("head", "weight"), ("head", "bias")}


def test_memory_does_not_grow_over_5000_jitted_steps_with_the_default_metrics(jax, tmp_path):
    import optax
    from flax import nnx

    model = make_mlp()
    optimizer = nnx.Optimizer(model, optax.sgd(0.01), wrt=nnx.Param)
    step = jitted_step()
    x, y = batches(1, jax.numpy.float32)[0]
    measured = {}
    with pytest.warns(RuntimeWarning, match="learning rate"):  # plain optax.sgd: not readable
        monitor = ikkuna.attach(model, optimizer=optimizer, store=tmp_path)
    with monitor:
        for index in range(5000):
            monitor.log(loss=step(model, optimizer, x, y))
            if index in (1000, 4999):
                jax.effects_barrier()
                gc.collect()
                measured[index] = rss_mib()
    assert not monitor.problems
    # Measured: no growth (391 MiB at both points). The bound is 20 MiB over 4,000 steps, about
    # 5 KiB a step: looser than torch's 8 MiB because JAX's CPU client and XLA keep allocator
    # pools and caches whose size can vary between runs, yet tight enough to catch a step's
    # host copies of its arrays or its records (dozens of Python objects) being kept.
    assert measured[4999] - measured[1000] < 20.0, measured
    with ikkuna.open_run(monitor.run, store=tmp_path) as run:
        assert len(run.series("loss")) == 5000


def seeded_training(attached: bool, steps: int = 12):
    """Seeded SGD (momentum 0.9) training of the MLP: its losses and every leaf of the model's
    and the optimizer's state at the end."""
    import jax
    import optax
    from flax import nnx

    model = make_mlp(seed=3)
    optimizer = nnx.Optimizer(
        model, optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9),
        wrt=nnx.Param)
    step = jitted_step()
    sink = MemorySink()
    monitor = (ikkuna.attach(model, optimizer=optimizer, metrics="full", every=3, sinks=[sink])
               if attached else None)
    losses = []
    for x, y in batches(steps, jax.numpy.float32, seed=5):
        loss = step(model, optimizer, x, y)
        losses.append(float(loss))
        if monitor is not None:
            monitor.log(loss=loss)
    if monitor is not None:
        monitor.detach()
        assert not monitor.problems
        names = {r.metric for r in sink.records}
        assert {"gradient_norm", "global_gradient_norm", "update_norm", "weight_norm",
                "activation_std", "learning_rate"} <= names, names  # gradients handed out
        assert len(names) > 15, names
        assert {r.step for r in sink.records if r.metric == "gradient_norm"} == set(
            range(0, steps, 3))
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(nnx.state(model))]
    leaves += [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(nnx.state(optimizer))]
    return losses, leaves


def test_all_builtin_metrics_every_3_steps_leave_sgd_training_bitwise_identical(jax):
    losses, state = seeded_training(attached=False)
    monitored_losses, monitored_state = seeded_training(attached=True)
    assert len(set(losses)) > 1
    assert monitored_losses == losses
    assert len(monitored_state) == len(state)
    for plain, monitored in zip(state, monitored_state, strict=True):
        np.testing.assert_array_equal(monitored, plain)
