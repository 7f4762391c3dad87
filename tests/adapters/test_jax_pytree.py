"""Pure JAX training (a params pytree) reported with ikkuna.jax.record_step."""

from __future__ import annotations

import numpy as np
import pytest

import ikkuna
from ikkuna.core import kinds as K
from tests.adapters.jax_models import host_callbacks_in_parts_of
from tests.adapters.recording import recorders, spy_on_emitted_events

STEPS = 3


def make_params(jnp):
    rng = np.random.default_rng(0)
    return {"params": {
        "dense1": {"kernel": jnp.asarray(rng.standard_normal((4, 8)), jnp.float32),
                   "bias": jnp.zeros(8, jnp.float32)},
        "dense2": {"kernel": jnp.asarray(rng.standard_normal((8, 3)), jnp.float32),
                   "bias": jnp.zeros(3, jnp.float32)},
    }}


def make_step(jax, monitor, jit: bool):
    import optax

    tx = optax.sgd(0.1)

    def apply(params, x):
        p = params["params"]
        hidden = jax.nn.relu(x @ p["dense1"]["kernel"] + p["dense1"]["bias"])
        return hidden @ p["dense2"]["kernel"] + p["dense2"]["bias"], {"dense1": hidden}

    def step(params, opt_state, x, y):
        def loss_fn(p):
            logits, intermediates = apply(p, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), intermediates

        (loss, intermediates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        if monitor is not None:
            ikkuna.jax.record_step(monitor, grads=grads, params=new_params, updates=updates,
                                   activations=intermediates, loss=loss)
        return new_params, opt_state, grads, loss

    return (jax.jit(step) if jit else step), tx


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
def test_record_step_gives_every_parameter_kind_activations_and_loss(jax, jit):
    jnp = jax.numpy
    params = make_params(jnp)
    seen = recorders(K.GRADIENTS, K.WEIGHTS, K.UPDATES, K.ACTIVATIONS)
    with ikkuna.attach(params, metrics=list(seen.values())) as monitor:
        step, tx = make_step(jax, monitor, jit)
        opt_state = tx.init(params)
        x, y = jnp.ones((2, 4)), jnp.array([0, 1])
        history = []
        for _ in range(STEPS):
            before = params
            params, opt_state, grads, loss = step(params, opt_state, x, y)
            history.append((before, params, grads, float(loss)))
    assert [layer.name for layer in monitor.layers] == ["dense1", "dense2"]
    def get(tree):
        return np.asarray(tree["params"]["dense1"]["kernel"])

    for index, (before, after, grads, _) in enumerate(history):
        np.testing.assert_array_equal(seen[K.GRADIENTS].at(index, "dense1", "weight").values, get(grads))
        np.testing.assert_array_equal(seen[K.WEIGHTS].at(index, "dense1", "weight").values, get(after))
        np.testing.assert_allclose(seen[K.UPDATES].at(index, "dense1", "weight").values,
                                   get(after) - get(before), rtol=0, atol=1e-7)
        assert seen[K.ACTIVATIONS].at(index, "dense1").values.shape == (2, 8)
    np.testing.assert_allclose(monitor.series("loss").values, [h[3] for h in history], rtol=1e-6)
    assert seen[K.WEIGHTS].at(0, "dense1", "weight").layout.out_axis == 1


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
def test_record_step_value_by_value_gives_the_events_of_one_callback(jax, jit, monkeypatch):
    """Large steps reach the host in parts (``jax_host.PART_BYTES``): the same events, in the
    same order, with the same values and the loss, as in one callback."""
    jnp = jax.numpy
    kinds = (K.GRADIENTS, K.WEIGHTS, K.UPDATES, K.ACTIVATIONS)

    def record(part_bytes):
        callbacks = host_callbacks_in_parts_of(monkeypatch, part_bytes)
        params = make_params(jnp)
        seen = recorders(*kinds)
        with ikkuna.attach(params, metrics=list(seen.values())) as monitor:
            order = spy_on_emitted_events(monitor)
            step, tx = make_step(jax, monitor, jit)
            opt_state = tx.init(params)
            x, y = jnp.ones((2, 4)), jnp.array([0, 1])
            for _ in range(STEPS):
                params, opt_state, _, _ = step(params, opt_state, x, y)
        return len(callbacks), order, seen, list(monitor.series("loss").values)

    one_callback, order, seen, losses = record(1 << 40)
    value_by_value, parts_order, parts_seen, parts_losses = record(1)
    # per traced step: one callback per value (3 kinds of 4 parameters, 1 activation), not one
    assert value_by_value >= one_callback + 3 * 4 + 1 - 1
    assert parts_order == order
    assert [kind for kind, *_ in order].count(K.STEP_STARTED) == STEPS
    assert parts_losses == losses and len(losses) == STEPS
    for kind in kinds:
        assert len(parts_seen[kind].seen) == len(seen[kind].seen) > 0, kind
        for got, wanted in zip(parts_seen[kind].seen, seen[kind].seen):
            assert (got.step, got.layer, got.param) == (wanted.step, wanted.layer, wanted.param)
            np.testing.assert_array_equal(got.values, wanted.values, kind)


def test_parts_of_a_step_that_was_not_opened_emit_nothing(jax):
    """A part after a detach (or after a first part that raised) does not finish a step that
    never started."""
    params = make_params(jax.numpy)
    seen = recorders(K.WEIGHTS)
    with ikkuna.attach(params, metrics=list(seen.values()), sinks=[]) as monitor:
        emitted = spy_on_emitted_events(monitor)
        adapter = monitor.adapter
        key = next(iter(adapter._params))
        weights = np.ones((4, 8), np.float32)
        adapter.deliver_part([(K.WEIGHTS, key)], False, True, [weights], 1.0)
        assert emitted == []
        adapter.deliver_part([], True, False, [])
        adapter.deliver_part([(K.WEIGHTS, key)], False, True, [weights])
        assert [kind for kind, *_ in emitted] == [K.STEP_STARTED, K.WEIGHTS, K.STEP_FINISHED]
        adapter.deliver_part([(K.WEIGHTS, key)], False, True, [weights])  # closed already
        assert len(emitted) == 3


def test_record_step_with_a_monitor_of_another_framework_is_a_type_error(jax):
    import optax
    from flax import nnx

    model = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
    with ikkuna.attach(model, optimizer=nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param),
                       sinks=[]) as monitor, pytest.raises(TypeError, match="params pytree"):
        ikkuna.jax.record_step(monitor, loss=1.0)


def test_a_pytree_that_is_not_all_jax_arrays_is_not_accepted(jax):
    with pytest.raises(ikkuna.UnsupportedModelError, match="JAX params pytree"):
        ikkuna.attach({"dense": {"kernel": np.zeros((2, 2))}})


def test_record_step_takes_flax_captured_intermediates_and_refuses_non_arrays(jax):
    jnp = jax.numpy
    params = make_params(jnp)
    seen = recorders(K.ACTIVATIONS)
    hidden = jnp.ones((2, 8))
    with ikkuna.attach(params, metrics=list(seen.values())) as monitor:
        ikkuna.jax.record_step(monitor, params=params, activations={"dense1": {"__call__": (hidden,)}})
        with pytest.raises(TypeError, match="dense2.*str"):
            ikkuna.jax.record_step(monitor, params=params, activations={"dense2": "oops"})
    jax.effects_barrier()
    np.testing.assert_array_equal(seen[K.ACTIVATIONS].at(0, "dense1").values, np.ones((2, 8)))


def test_bfloat16_host_values_arrive_as_float32(jax):
    values = jax.numpy.asarray([1.5, -2.0], dtype=jax.numpy.bfloat16)
    array = ikkuna.Array.from_numpy(values)
    assert array.dtype == "float32"
    np.testing.assert_array_equal(array.numpy(), np.array([1.5, -2.0], dtype=np.float32))
