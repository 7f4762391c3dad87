"""The ordered host call without ``io_callback``'s copy: what the callback receives, its order
(with ``io_callback``'s own ordered calls too), its refusals, the fallback to ``io_callback``
and a training step recorded the same either way.

jax, flax and optax are imported inside the tests (after the ``jax`` fixture), never here.
"""

from __future__ import annotations

import numpy as np
import pytest

import ikkuna
from ikkuna.adapters import jax_direct_callback, jax_host
from ikkuna.core import kinds as K
from tests.adapters.jax_models import image_batch, sgd, small_cnn, train_step
from tests.adapters.recording import ARRAY_KINDS, assert_same_records, recorders


def test_this_jax_builds_the_direct_call(jax):
    assert jax_direct_callback.ordered_host_call() is not None


@pytest.mark.parametrize("jitted", [True, False], ids=["jit", "eager"])
def test_the_callback_gets_read_only_numpy_arrays_it_may_keep_with_each_calls_values(
        jax, jitted):
    import jax.numpy as jnp

    seen = []

    def step(x):
        jax_host.to_host(lambda *values: seen.append(values), x * 2, {"y": x + 1})
        return x - 1

    run = jax.jit(step) if jitted else step
    for start in (0.0, 10.0):
        jax.block_until_ready(run(jnp.arange(4, dtype=jnp.float32) + start))
    jax_host.wait_for_host()
    assert len(seen) == 2
    for (doubled, tree), start in zip(seen, (0.0, 10.0)):
        assert type(doubled) is np.ndarray and type(tree["y"]) is np.ndarray
        assert not doubled.flags.writeable  # the first call's values, kept past the second
        np.testing.assert_array_equal(doubled, (np.arange(4) + start) * 2)
        np.testing.assert_array_equal(tree["y"], np.arange(4) + start + 1)


def test_calls_keep_program_order_with_each_other_and_with_ordered_io_callbacks(jax):
    import jax.numpy as jnp
    from jax.experimental import io_callback

    order = []

    def step(x):
        jax_host.to_host(lambda v: order.append(("ikkuna", float(v))), x.sum())
        io_callback(lambda v: order.append(("io", float(v))), None, x.max(), ordered=True)
        jax_host.to_host(lambda v: order.append(("ikkuna", float(v))), x.min())
        return x + 1

    run = jax.jit(step)
    x = jnp.arange(3, dtype=jnp.float32)
    for _ in range(3):
        x = run(x)
    jax_host.wait_for_host()
    assert order == [entry for start in (0, 1, 2) for entry in
                     [("ikkuna", 3.0 + 3 * start), ("io", 2.0 + start), ("ikkuna", 0.0 + start)]]


def test_a_host_call_under_vmap_is_refused_as_an_ordered_io_callback_is(jax):
    import jax.numpy as jnp

    def per_row(x):
        jax_host.to_host(lambda v: None, x)
        return x

    with pytest.raises(ValueError, match="vmap"):
        jax.vmap(per_row)(jnp.ones((2, 3)))


@pytest.fixture
def built_afresh(jax, monkeypatch):
    """``ordered_host_call()`` built anew inside the test, and anew (unpatched) after it."""
    jax_direct_callback.ordered_host_call.cache_clear()
    yield
    jax_direct_callback.ordered_host_call.cache_clear()


def test_a_jax_without_the_internals_it_needs_falls_back_to_io_callback(built_afresh,
                                                                        monkeypatch):
    import jax

    def build_on_a_jax_without_them():
        raise AttributeError("module 'jax._src.callback' has no attribute '_OrderedIOEffect'")

    monkeypatch.setattr(jax_direct_callback, "_build", build_on_a_jax_without_them)
    assert jax_direct_callback.ordered_host_call() is None
    seen = []
    jax.jit(lambda x: jax_host.to_host(seen.append, x) or x)(np.ones(2, np.float32))
    jax_host.wait_for_host()
    assert isinstance(seen[0], jax.Array)  # io_callback's JAX array
    np.testing.assert_array_equal(np.asarray(seen[0]), np.ones(2))


def test_a_jax_whose_lowering_fails_falls_back_before_any_step_is_traced(built_afresh,
                                                                         monkeypatch):
    from jax.interpreters import mlir

    monkeypatch.delattr(mlir, "TokenSet")  # used only while lowering a call
    assert jax_direct_callback.ordered_host_call() is None


def test_a_jax_whose_callback_emitter_changed_falls_back_before_any_step_is_traced(
        built_afresh, monkeypatch):
    from jax.interpreters import mlir

    def emit_python_callback(ctx, callback, token, operands):  # what a later JAX might have
        raise AssertionError("called with parameters it does not have")

    monkeypatch.setattr(mlir, "emit_python_callback", emit_python_callback)
    assert jax_direct_callback.ordered_host_call() is None


def test_after_a_failed_build_a_fresh_one_on_this_jax_succeeds(built_afresh, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(jax_direct_callback, "_build", lambda: 1 / 0)
        assert jax_direct_callback.ordered_host_call() is None
    jax_direct_callback.ordered_host_call.cache_clear()
    assert jax_direct_callback.ordered_host_call() is not None


@pytest.mark.parametrize("jitted", [True, False], ids=["jit", "eager"])
def test_training_records_the_same_values_through_io_callback_and_the_direct_call(
        jax, jitted, monkeypatch):
    kinds = (*ARRAY_KINDS, K.LEARNING_RATE)

    def record():
        model = small_cnn(seed=0)
        optimizer = sgd(model)
        seen = recorders(*kinds)
        with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()),
                           sinks=[]) as monitor:
            step = train_step(jitted)
            for seed in range(2):
                inputs, labels = image_batch(seed)
                loss, _ = step(model, optimizer, inputs, labels)
                monitor.log(loss=float(loss), labels=labels)
        return seen

    direct = record()
    monkeypatch.setattr(jax_host, "ordered_host_call", lambda: None)
    through_io_callback = record()
    assert_same_records(direct, through_io_callback, kinds)
