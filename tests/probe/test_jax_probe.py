"""The probe in JAX (Flax NNX, jitted steps): values against independent computations,
non-interference, detach."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import ikkuna
from ikkuna.metrics.probing import (
    GradientNoiseScale,
    GradientSignalToNoise,
    HessianTopEigenvalue,
    HessianTrace,
    SvccaSimilarity,
    svcca,
)
from tests.adapters.recording import recorder
from tests.probe.expectations import assert_noise_metrics_match

SAMPLES, FEATURES, HIDDEN, CLASSES = 16, 4, 6, 3


def model_and_optimizer(dropout: float = 0.0):
    import optax
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.dense1 = nnx.Linear(FEATURES, HIDDEN, rngs=rngs)
            self.norm = nnx.BatchNorm(HIDDEN, rngs=rngs)
            self.drop = nnx.Dropout(dropout, rngs=rngs)
            self.head = nnx.Linear(HIDDEN, CLASSES, rngs=rngs)

        def __call__(self, x):
            return self.head(self.drop(nnx.tanh(self.norm(self.dense1(x)))))

    model = MLP(nnx.Rngs(0))
    return model, nnx.Optimizer(model, optax.sgd(0.1, momentum=0.9), wrt=nnx.Param)


def cross_entropy(logits, labels):
    import optax

    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def probe_batch():
    rng = np.random.default_rng(7)
    return ikkuna.Probe(rng.standard_normal((SAMPLES, FEATURES)).astype(np.float32),
                        rng.integers(0, CLASSES, SAMPLES), cross_entropy)


def train(model, optimizer, steps: int, monitor_options: dict | None = None):
    from flax import nnx

    @nnx.jit
    def step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(lambda m: cross_entropy(m(x), y))(model)
        optimizer.update(model, grads)
        return loss

    monitor = None
    if monitor_options is not None:
        monitor = ikkuna.attach(model, optimizer=optimizer, **monitor_options)
    rng = np.random.default_rng(1)
    losses = [step(model, optimizer, rng.standard_normal((8, FEATURES)).astype(np.float32),
                   rng.integers(0, CLASSES, 8)) for _ in range(steps)]
    return [float(loss) for loss in losses], monitor


def flat_loss(model, probe):
    """The probe loss as a function of the flat parameters, eval mode (independent of ikkuna)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    leaves, tree = jax.tree_util.tree_flatten(params)
    shapes = [leaf.shape for leaf in leaves]
    sizes = [int(np.prod(s)) for s in shapes]

    def loss(flat, x, y):
        pieces = jnp.split(flat, np.cumsum(sizes)[:-1])
        copy = nnx.merge(graphdef, jax.tree_util.tree_unflatten(
            tree, [p.reshape(s) for p, s in zip(pieces, shapes)]), rest)
        copy.eval()
        return cross_entropy(copy(x), y)

    flat = jnp.concatenate([jnp.ravel(leaf) for leaf in leaves])
    return loss, flat


def test_curvature_and_hessian_vector_products_agree_with_jax_hessian(jax):
    model, optimizer = model_and_optimizer()
    probe = probe_batch()
    products = []

    class Capture(ikkuna.Metric):
        name, needs, requires = "capture_products", ("probe",), frozenset({"hessian_vector_product"})

        def compute(self, group):
            vectors = np.random.default_rng(0).standard_normal((2, group.probe.size))
            products.append((vectors, group.probe.hessian_vector_product(vectors)))

    metrics = [Capture(), HessianTopEigenvalue(every=1, iterations=200, tolerance=1e-7),
               HessianTrace(every=1, samples=4, seed=5)]
    _, monitor = train(model, optimizer, 2, {"metrics": metrics, "probe": probe})
    monitor.detach()
    loss, flat = flat_loss(model, probe)
    hessian = np.asarray(jax.hessian(loss)(flat, probe.inputs, probe.targets), np.float64)
    vectors, found = products[-1]
    np.testing.assert_allclose(found, vectors @ hessian.T, rtol=1e-3, atol=1e-5)
    eigenvalues = np.linalg.eigvalsh(hessian)
    top = eigenvalues[np.argmax(np.abs(eigenvalues))]
    assert list(monitor.series("hessian_top_eigenvalue").steps) == [0, 1]
    assert monitor.series("hessian_top_eigenvalue").values[-1] == pytest.approx(top, rel=1e-3)
    signs = np.random.default_rng(5).integers(0, 2, size=(4, hessian.shape[0])) * 2.0 - 1.0
    expected = np.mean(np.einsum("ij,jk,ik->i", signs, hessian, signs))
    assert monitor.series("hessian_trace").values[-1] == pytest.approx(expected, rel=1e-3)


def test_gradient_noise_scale_and_snr_agree_with_per_sample_gradients(jax):
    model, optimizer = model_and_optimizer()
    probe = probe_batch()
    metrics = [GradientNoiseScale(every=1, microbatches=4), GradientSignalToNoise(every=1)]
    _, monitor = train(model, optimizer, 2, {"metrics": metrics, "probe": probe})
    monitor.detach()
    loss, flat = flat_loss(model, probe)
    per_sample = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(
        flat, probe.inputs[:, None], probe.targets[:, None])
    assert_noise_metrics_match(monitor, np.asarray(per_sample, np.float64), 4)


def test_svcca_compares_probe_outputs_of_the_layer_after_consecutive_probed_steps(jax):
    from flax import nnx

    model, optimizer = model_and_optimizer()
    probe = probe_batch()
    monitor = ikkuna.attach(model, optimizer=optimizer, probe=probe,
                            metrics=[SvccaSimilarity(every=1, layers="dense1", positions="samples")])
    seen = []

    @nnx.jit
    def step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(lambda m: cross_entropy(m(x), y))(model)
        optimizer.update(model, grads)
        return loss

    rng = np.random.default_rng(1)
    for _ in range(3):
        step(model, optimizer, rng.standard_normal((8, FEATURES)).astype(np.float32) * 3,
             rng.integers(0, CLASSES, 8))
        seen.append(np.asarray(model.dense1(probe.inputs)))  # dense1 needs no eval mode
    monitor.detach()
    series = monitor.series("svcca_similarity", "dense1")
    assert list(series.steps) == [1, 2]
    np.testing.assert_allclose(series.values, [svcca(seen[0], seen[1]), svcca(seen[1], seen[2])],
                               rtol=1e-5)


def test_the_probe_does_not_change_training_bitwise(jax):
    from flax import nnx

    every_metric = [SvccaSimilarity(every=1), GradientNoiseScale(every=2, microbatches=2),
                    GradientSignalToNoise(every=1), HessianTopEigenvalue(every=2, iterations=2),
                    HessianTrace(every=1, samples=2)]
    plain, plain_optimizer = model_and_optimizer(dropout=0.3)
    probed, probed_optimizer = model_and_optimizer(dropout=0.3)
    plain_losses, _ = train(plain, plain_optimizer, 4)
    probed_losses, monitor = train(probed, probed_optimizer, 4,
                                   {"metrics": every_metric, "probe": probe_batch()})
    monitor.detach()
    assert monitor.problems == []
    assert probed_losses == plain_losses
    for (path, a), (_, b) in zip(nnx.to_flat_state(nnx.state(plain)),
                                 nnx.to_flat_state(nnx.state(probed))):
        value_a, value_b = a[...], b[...]
        if jax.dtypes.issubdtype(value_a.dtype, jax.dtypes.prng_key):
            value_a, value_b = jax.random.key_data(value_a), jax.random.key_data(value_b)
        np.testing.assert_array_equal(np.asarray(value_a), np.asarray(value_b), err_msg=str(path))
    assert len(monitor.series("hessian_trace").steps) == 4


def test_probe_passes_are_not_recorded_as_training_passes(jax):
    model, optimizer = model_and_optimizer()
    activations = recorder("activations")
    _, monitor = train(model, optimizer, 3, {"metrics": [activations, SvccaSimilarity(every=1)],
                                             "probe": probe_batch()})
    monitor.detach()
    assert activations.steps("dense1") == [0, 1, 2]
    assert all(s.values.shape[0] == 8 for s in activations.seen)


def test_detach_waits_for_the_probe_and_leaves_no_worker_or_patched_class(jax):
    from flax import nnx

    model, optimizer = model_and_optimizer()
    classes = {name: type(getattr(model, name)) for name in ("dense1", "norm", "head")}
    _, monitor = train(model, optimizer, 3, {"metrics": [HessianTrace(every=1, samples=2)],
                                             "probe": probe_batch()})
    monitor.detach()
    assert list(monitor.series("hessian_trace").steps) == [0, 1, 2]
    assert not [t for t in threading.enumerate() if t.name == "ikkuna-probe"]
    assert {name: type(getattr(model, name)) for name in classes} == classes
    assert type(optimizer) is nnx.Optimizer
