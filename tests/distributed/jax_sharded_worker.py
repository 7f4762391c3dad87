"""A Flax NNX training step jitted over a batch sharded on 2 devices (run by test_jax_sharding.py).

Usage: XLA_FLAGS=--xla_force_host_platform_device_count=2 \
       python -m tests.distributed.jax_sharded_worker STORE

XLA_FLAGS must be set before jax is imported, so this runs in a process of its own. It trains
the same MLP from the same initial weights on the same full batch five times:

- run ``sharded``: the batch split over a 2-device mesh (``PartitionSpec("data")``), the
  weights and optimizer state replicated, under ``nnx.jit``, with ``ikkuna.attach``;
- without ikkuna, sharded the same way: its losses must equal the attached run's exactly
  (monitoring never changes training);
- run ``single``: everything on one device, with ``ikkuna.attach``: the reference the test
  compares the sharded runs' records with;
- run ``pytree``: pure JAX (a params dict of the same weights, ``jax.jit``, optax) sharded
  the same way, reporting its steps with ``ikkuna.jax.record_step``;
- run ``unlogged``: sharded and attached, with no step waited for before ``detach()``.

It prints ``devices 2``, one ``losses <run> ...`` line per training and ``done``.
"""

from __future__ import annotations

import sys
import time

import numpy as np

STEPS = 4
BATCH = 16  # the global batch; each device holds half of it
FEATURES, HIDDEN, CLASSES = 6, 8, 3
LEARNING_RATE = 0.1
RUNS = ("sharded", "single", "pytree", "unlogged")
LAYERS = ("dense1", "dense2", "head")


def full_batch() -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(1)
    inputs = generator.normal(size=(BATCH, FEATURES)).astype(np.float32)
    return inputs, generator.integers(0, CLASSES, size=BATCH).astype(np.int32)


def build() -> tuple[object, object]:
    """The model (the same weights every time) and its optimizer."""
    import optax
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.dense1 = nnx.Linear(FEATURES, HIDDEN, rngs=rngs)
            self.dense2 = nnx.Linear(HIDDEN, HIDDEN, rngs=rngs)
            self.head = nnx.Linear(HIDDEN, CLASSES, rngs=rngs)

        def __call__(self, x):
            return self.head(nnx.tanh(self.dense2(nnx.relu(self.dense1(x)))))

    model = MLP(nnx.Rngs(0))
    transformation = optax.inject_hyperparams(optax.sgd)(learning_rate=LEARNING_RATE)
    return model, nnx.Optimizer(model, transformation, wrt=nnx.Param)


def make_step():
    from flax import nnx

    from ikkuna.testing.parity.jax_models import cross_entropy_step

    return nnx.jit(cross_entropy_step())


def place(model, optimizer, x, y, batch_sharding, replicated):
    """Put the batch on ``batch_sharding`` and the model's and optimizer's state on
    ``replicated``."""
    import jax
    from flax import nnx

    for owner in (model, optimizer):
        nnx.update(owner, jax.device_put(nnx.state(owner), replicated))
    return jax.device_put(x, batch_sharding), jax.device_put(y, batch_sharding)


def train(store: str | None, run: str | None, batch_sharding, replicated) -> list[float]:
    import ikkuna

    model, optimizer = build()
    x, y = place(model, optimizer, *full_batch(), batch_sharding, replicated)
    step = make_step()
    losses = []
    monitor = (ikkuna.attach(model, optimizer=optimizer, store=store, run=run)
               if run is not None else None)
    try:
        for _ in range(STEPS):
            loss = step(model, optimizer, x, y)
            if monitor is not None:
                monitor.log(loss=loss)
            losses.append(loss)
        devices = {len(loss.sharding.device_set)} | {
            len(leaf.sharding.device_set) for leaf in _leaves(model)}
    finally:
        if monitor is not None:
            monitor.detach()
    values = [float(np.asarray(loss)) for loss in losses]
    print(f"losses {run or 'unmonitored'} devices {sorted(devices)} "
          + " ".join(repr(v) for v in values), flush=True)
    return values


def train_pytree(store: str, batch_sharding, replicated) -> list[float]:
    """The same training in pure JAX, sharded, with ``record_step`` inside the jitted step."""
    import jax
    import jax.numpy as jnp
    import optax

    import ikkuna

    model, _ = build()
    params = jax.device_put({name: {"kernel": getattr(model, name).kernel[...],
                                    "bias": getattr(model, name).bias[...]}
                             for name in LAYERS}, replicated)
    x, y = (jax.device_put(value, batch_sharding) for value in full_batch())
    transformation = optax.sgd(LEARNING_RATE)
    opt_state = transformation.init(params)
    monitor = ikkuna.attach(params, store=store, run="pytree")

    def loss_fn(params, x, y):
        outputs = {}
        hidden = x
        for name, activation in zip(LAYERS, (jax.nn.relu, jnp.tanh, None)):
            hidden = outputs[name] = hidden @ params[name]["kernel"] + params[name]["bias"]
            if activation is not None:
                hidden = activation(hidden)
        loss = optax.softmax_cross_entropy_with_integer_labels(hidden, y).mean()
        return loss, outputs

    @jax.jit
    def train_step(params, opt_state, x, y):
        (loss, outputs), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
        updates, opt_state = transformation.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        ikkuna.jax.record_step(monitor, grads=grads, params=params, updates=updates,
                               activations=outputs, loss=loss)
        return params, opt_state, loss

    pending = []
    with monitor:
        for _ in range(STEPS):
            params, opt_state, loss = train_step(params, opt_state, x, y)
            pending.append(loss)  # nothing waits for a step: detach() must (Adapter.drain)
    losses = [float(loss) for loss in pending]
    devices = {len(loss.sharding.device_set)} | {
        len(leaf.sharding.device_set) for leaf in jax.tree_util.tree_leaves(params)}
    print(f"losses pytree devices {sorted(devices)} " + " ".join(repr(v) for v in losses),
          flush=True)
    return losses


def train_unlogged(store: str, batch_sharding, replicated) -> None:
    """Run ``unlogged``: sharded and attached, but nothing waits for a step (no loss is read),
    and a slow metric keeps the host behind: ``detach()`` must wait for the last steps."""
    import ikkuna

    class Slow(ikkuna.Metric):
        name = "slow"
        needs = ("weights",)

        def compute(self, group):
            time.sleep(0.02)
            return 1.0

    model, optimizer = build()
    x, y = place(model, optimizer, *full_batch(), batch_sharding, replicated)
    step = make_step()
    with ikkuna.attach(model, optimizer=optimizer, store=store, run="unlogged",
                       metrics=["gradient_norm", Slow()]):
        for _ in range(STEPS):
            step(model, optimizer, x, y)


def _leaves(model) -> list:
    import jax
    from flax import nnx

    return jax.tree_util.tree_leaves(nnx.state(model))


def main() -> None:
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding

    store = sys.argv[1]
    devices = jax.devices()
    assert len(devices) == 2, f"expected 2 devices (XLA_FLAGS), got {devices}"
    print(f"devices {len(devices)}", flush=True)
    mesh = Mesh(np.array(devices), ("data",))
    data, replicated = NamedSharding(mesh, PartitionSpec("data")), NamedSharding(mesh, PartitionSpec())

    monitored = train(store, "sharded", data, replicated)
    unmonitored = train(None, None, data, replicated)
    assert monitored == unmonitored, (monitored, unmonitored)  # bitwise: training unchanged
    one = SingleDeviceSharding(devices[0])
    train(store, "single", one, one)
    train_pytree(store, data, replicated)
    train_unlogged(store, data, replicated)
    print("done", flush=True)


if __name__ == "__main__":
    main()
