"""The probe in Keras 3 (TensorFlow): values against independent computations, where it runs
(fit, eager steps, steps_per_execution, a user tf.function), non-interference, detach."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ikkuna
from ikkuna.core.probe import ProbeSession
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

SAMPLES, FEATURES, HIDDEN, CLASSES, BATCH = 16, 4, 6, 3, 8


def mlp(keras, *, dropout: float = 0.0, norm: bool = False, lr: float = 0.1):
    """Dense(tanh) [BatchNorm] [Dropout] Dense, compiled with SGD and logits cross-entropy."""
    layers = keras.layers
    inputs = keras.Input((FEATURES,))
    hidden = layers.Dense(HIDDEN, name="d1")(inputs)
    if norm:
        hidden = layers.BatchNormalization(name="norm")(hidden)
    hidden = layers.Activation("tanh", name="act")(hidden)
    if dropout:
        hidden = layers.Dropout(dropout, name="drop")(hidden)
    model = keras.Model(inputs, layers.Dense(CLASSES, name="head")(hidden))
    model.compile(optimizer=keras.optimizers.SGD(lr, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def cross_entropy(outputs, targets):
    import tensorflow as tf

    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, outputs))


def probe_batch():
    rng = np.random.default_rng(7)
    return ikkuna.Probe(rng.standard_normal((SAMPLES, FEATURES)).astype(np.float32),
                        rng.integers(0, CLASSES, SAMPLES).astype(np.int32), cross_entropy)


def fit_data(steps: int):
    rng = np.random.default_rng(1)
    return (rng.standard_normal((steps * BATCH, FEATURES)).astype(np.float32),
            rng.integers(0, CLASSES, steps * BATCH).astype(np.int32))


def train(keras, model, steps: int, monitor_options: dict | None = None, **fit_options):
    """fit over ``steps`` batches (1 epoch, not shuffled); (per-batch logged losses, monitor)."""
    monitor = None
    if monitor_options is not None:
        monitor = ikkuna.attach(model, **monitor_options)
    losses = []

    class Losses(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(logs["loss"]))

    inputs, labels = fit_data(steps)
    fit_options.setdefault("shuffle", False)
    model.fit(inputs, labels, batch_size=BATCH, epochs=1, verbose=0, callbacks=[Losses()],
              **fit_options)
    return losses, monitor


def manual_loss(tf, model, probe):
    """The probe loss of the tanh MLP (no BatchNorm, no Dropout) as a float64 function of the
    flat parameter vector, written without Keras; and that vector at the model's weights."""
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    sizes = [int(np.prod(s)) for s in shapes]
    flat = np.concatenate([v.numpy().reshape(-1) for v in model.trainable_variables])
    inputs = tf.constant(probe.inputs, tf.float64)

    def loss_of(vector, x=inputs, y=probe.targets):
        w1, b1, w2, b2 = (tf.reshape(p, s) for p, s in zip(tf.split(vector, sizes), shapes))
        logits = tf.tanh(x @ w1 + b1) @ w2 + b2
        return tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)  # per sample

    return loss_of, tf.constant(flat.astype(np.float64))


def exact_hessian(tf, model, probe) -> np.ndarray:
    """The Hessian of the mean probe loss by a double GradientTape jacobian, float64."""
    loss_of, flat = manual_loss(tf, model, probe)
    with tf.GradientTape() as outer:
        outer.watch(flat)
        with tf.GradientTape() as inner:
            inner.watch(flat)
            loss = tf.reduce_mean(loss_of(flat))
        gradient = inner.gradient(loss, flat)
    return outer.jacobian(gradient, flat).numpy()


def per_sample_gradients(tf, model, probe) -> np.ndarray:
    """(samples, size) gradients of each sample's loss, float64 (a jacobian of the losses)."""
    loss_of, flat = manual_loss(tf, model, probe)
    with tf.GradientTape() as tape:
        tape.watch(flat)
        losses = loss_of(flat)
    return tape.jacobian(losses, flat).numpy()


def test_hessian_vector_products_equal_the_exact_hessian_after_the_update(keras):
    import tensorflow as tf

    model, probe = mlp(keras), probe_batch()
    sessions = []

    class Capture(ikkuna.Metric):
        name, needs, requires = "capture_session", ("probe",), frozenset({"hessian_vector_product"})

        def compute(self, group):
            size = group.probe.size
            vectors = np.random.default_rng(0).standard_normal((3, size))
            sessions.append((vectors, group.probe.hessian_vector_product(vectors),
                             group.probe.hessian_vector_product(vectors[0])))

    _, monitor = train(keras, model, 2, {"metrics": [Capture()], "probe": probe})
    monitor.detach()
    assert len(sessions) == 2
    hessian = exact_hessian(tf, model, probe)  # the weights after the last update
    vectors, products, single = sessions[-1]
    np.testing.assert_allclose(products, vectors @ hessian.T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(single, products[0])


def test_curvature_metrics_agree_with_the_exact_hessian(keras):
    import tensorflow as tf

    model, probe = mlp(keras), probe_batch()
    metrics = [HessianTopEigenvalue(every=1, iterations=200, tolerance=1e-7),
               HessianTrace(every=1, samples=5, seed=3)]
    _, monitor = train(keras, model, 3, {"metrics": metrics, "probe": probe})
    monitor.detach()
    assert monitor.problems == []
    hessian = exact_hessian(tf, model, probe)
    eigenvalues = np.linalg.eigvalsh(hessian)
    top = eigenvalues[np.argmax(np.abs(eigenvalues))]
    assert list(monitor.series("hessian_top_eigenvalue").steps) == [0, 1, 2]
    assert monitor.series("hessian_top_eigenvalue").values[-1] == pytest.approx(top, rel=1e-3)
    signs = np.random.default_rng(3).integers(0, 2, size=(5, hessian.shape[0])) * 2.0 - 1.0
    hutchinson = np.mean(np.einsum("ij,jk,ik->i", signs, hessian, signs))
    assert monitor.series("hessian_trace").values[-1] == pytest.approx(hutchinson, rel=1e-4)


def test_gradient_noise_scale_and_snr_agree_with_explicit_per_sample_gradients(keras):
    import tensorflow as tf

    model, probe = mlp(keras), probe_batch()
    metrics = [GradientNoiseScale(every=1, microbatches=4), GradientSignalToNoise(every=1)]
    _, monitor = train(keras, model, 2, {"metrics": metrics, "probe": probe})
    monitor.detach()
    gradients = per_sample_gradients(tf, model, probe)
    # layer "d1"'s kernel (in, out) comes first, flattened
    assert_noise_metrics_match(monitor, gradients, 4, first=("d1", "weight", FEATURES * HIDDEN))


def test_svcca_compares_a_layers_probe_outputs_with_its_previous_run(keras):
    model, probe = mlp(keras, lr=1.0), probe_batch()
    seen = []

    class Outputs(keras.callbacks.Callback):
        """The tanh layer's output on the probe inputs after the step, by numpy."""

        def on_train_batch_end(self, batch, logs=None):
            kernel, bias = (v.numpy() for v in model.get_layer("d1").weights)
            seen.append(np.tanh(probe.inputs @ kernel + bias))

    monitor = ikkuna.attach(model, probe=probe, metrics=[SvccaSimilarity(every=2, layers="act")])
    inputs, labels = fit_data(5)
    model.fit(inputs * 3, labels, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[Outputs()])
    monitor.detach()
    series = monitor.series("svcca_similarity", "act")
    assert list(series.steps) == [2, 4]
    expected = [svcca(seen[0], seen[2]), svcca(seen[2], seen[4])]
    np.testing.assert_allclose(series.values, expected, rtol=1e-5)


def eager_train(keras, model, steps: int, *, compiled: bool = False):
    """A custom loop: GradientTape and optimizer.apply, eagerly or in a tf.function."""
    import tensorflow as tf

    loss_function = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_function(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply(grads, model.trainable_variables)
        return loss

    if compiled:
        step = tf.function(step)
    inputs, labels = fit_data(steps)
    return [float(step(inputs[i * BATCH:(i + 1) * BATCH], labels[i * BATCH:(i + 1) * BATCH]))
            for i in range(steps)]


def test_an_eager_loop_is_probed_at_the_end_of_each_step(keras):
    model, probe = mlp(keras), probe_batch()
    monitor = ikkuna.attach(model, probe=probe,
                            metrics=[SvccaSimilarity(every=1), HessianTrace(every=2, samples=2)])
    eager_train(keras, model, 4)
    monitor.detach()
    assert monitor.problems == []
    assert list(monitor.series("svcca_similarity", "d1").steps) == [1, 2, 3]
    assert list(monitor.series("hessian_trace").steps) == [0, 2]


def test_fit_with_run_eagerly_is_probed_on_every_scheduled_step(keras):
    model, probe = mlp(keras), probe_batch()
    model.compile(optimizer=keras.optimizers.SGD(0.1), run_eagerly=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    _, monitor = train(keras, model, 3, {"metrics": [HessianTrace(every=1, samples=2)],
                                         "probe": probe})
    monitor.detach()
    assert monitor.problems == []
    assert list(monitor.series("hessian_trace").steps) == [0, 1, 2]


def test_a_user_tf_function_loop_skips_the_probe_with_one_warning(keras):
    model, probe = mlp(keras), probe_batch()
    monitor = ikkuna.attach(model, probe=probe, metrics=["weight_norm", SvccaSimilarity(every=1)])
    with pytest.warns(RuntimeWarning, match="tf.function outside Model.fit") as caught:
        losses = eager_train(keras, model, 3, compiled=True)
    monitor.detach()
    assert len([w for w in caught if "tf.function outside" in str(w.message)]) == 1
    assert len(losses) == 3 and monitor.step == 2
    assert "svcca_similarity" not in ikkuna.open_run(monitor.run).metrics()


def test_with_steps_per_execution_the_probe_runs_once_per_execution(keras):
    model, probe = mlp(keras), probe_batch()
    model.compile(optimizer=keras.optimizers.SGD(0.1), steps_per_execution=2,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    _, monitor = train(keras, model, 6, {"metrics": [HessianTrace(every=1, samples=2)],
                                         "probe": probe})
    monitor.detach()
    assert monitor.step == 5
    assert list(monitor.series("hessian_trace").steps) == [1, 3, 5]


def all_state(model):
    """Every variable of the model (weights, BatchNorm statistics, seed generator states) and
    of its optimizer."""
    return ([v.numpy().copy() for v in model.variables]
            + [v.numpy().copy() for v in model.optimizer.variables]
            + [np.asarray(g.state.numpy()).copy() for g in _seed_generators(model)])


def _seed_generators(model):
    return [g for layer in model._flatten_layers() for g in getattr(layer, "_seed_generators", [])]


@pytest.mark.parametrize("probe_every", [1, 2])
def test_the_probe_does_not_change_fit_bitwise(keras, probe_every):
    every_metric = [SvccaSimilarity(every=probe_every), GradientNoiseScale(every=probe_every),
                    GradientSignalToNoise(every=probe_every),
                    HessianTopEigenvalue(every=probe_every, iterations=3),
                    HessianTrace(every=probe_every, samples=2)]
    runs = []
    for attached in (False, True):
        keras.utils.set_random_seed(0)
        model = mlp(keras, dropout=0.3, norm=True)
        options = {"metrics": every_metric, "probe": probe_batch()} if attached else None
        losses, monitor = train(keras, model, 5, options, shuffle=True)
        if monitor is not None:
            monitor.detach()
            assert monitor.problems == []
            assert set(ikkuna.open_run(monitor.run).metrics()) >= {
                "svcca_similarity", "gradient_snr", "hessian_trace", "hessian_top_eigenvalue",
                "gradient_noise_scale.scale"}
        runs.append((losses, all_state(model)))
    (plain_losses, plain_state), (probed_losses, probed_state) = runs
    assert len(plain_losses) == 5 and _seed_generators(model)
    np.testing.assert_array_equal(probed_losses, plain_losses)
    assert len(probed_state) == len(plain_state)
    for plain, probed in zip(plain_state, probed_state):
        np.testing.assert_array_equal(probed, plain)


def test_probe_passes_are_not_recorded_as_training_passes(keras):
    model = mlp(keras)
    activations = recorder("activations")
    probe_metrics = [SvccaSimilarity(every=1), HessianTrace(every=1, samples=2)]
    _, monitor = train(keras, model, 3, {"metrics": [activations, *probe_metrics],
                                         "probe": probe_batch()})
    monitor.detach()
    assert activations.steps("d1") == [0, 1, 2]
    assert all(s.values.shape[0] == BATCH for s in activations.seen)  # training batches only


def test_detach_restores_fits_train_function_and_the_probe_stops(keras):
    model, probe = mlp(keras), probe_batch()
    _, monitor = train(keras, model, 2, {"metrics": [SvccaSimilarity(every=1)], "probe": probe})
    wrapped = model.train_function
    assert getattr(wrapped, "_ikkuna_probe_wrapped", False)
    calls = {layer.name: vars(layer).get("call") for layer in model.layers}
    monitor.detach()
    assert model.train_function is not wrapped
    assert not getattr(model.train_function, "_ikkuna_probe_wrapped", False)
    assert {layer.name: vars(layer).get("call") for layer in model.layers} == {
        name: None for name in calls}
    for name in ("call", "compute_loss", "make_train_function"):
        assert name not in vars(model)
    count = len(monitor.series("svcca_similarity", "d1").steps)
    train(keras, model, 2)
    assert len(monitor.series("svcca_similarity", "d1").steps) == count == 1


def test_probe_inputs_as_tensors_or_float64_arrays_give_the_same_values(keras):
    import tensorflow as tf

    probe = probe_batch()
    found = []
    for inputs in (tf.constant(probe.inputs), probe.inputs.astype(np.float64)):
        keras.utils.set_random_seed(0)
        model = mlp(keras)
        _, monitor = train(keras, model, 1, {"metrics": [HessianTrace(every=1, samples=2)],
                                             "probe": ikkuna.Probe(inputs, probe.targets,
                                                                   cross_entropy)})
        monitor.detach()
        assert monitor.problems == []
        found.append(monitor.series("hessian_trace").values[0])
    assert np.isfinite(found[0]) and found[0] == pytest.approx(found[1], rel=1e-6)


def test_a_failing_loss_disables_the_probe_metric_with_a_warning_and_training_goes_on(keras):
    model = mlp(keras)
    probe = ikkuna.Probe(np.zeros((4, FEATURES), np.float32), np.zeros(4, np.int32),
                         lambda o, t: 1 / 0)
    with pytest.warns(RuntimeWarning, match="ZeroDivisionError"):
        losses, monitor = train(keras, model, 3, {
            "metrics": [GradientNoiseScale(every=1, microbatches=2)], "probe": probe})
    monitor.detach()
    assert len(losses) == 3
    assert [p.source for p in monitor.problems] == ["metric:gradient_noise_scale"]


def test_session_parameters_are_the_trainable_variables_in_order(keras):
    model, probe = mlp(keras, norm=True), probe_batch()
    with warnings.catch_warnings():
        monitor = ikkuna.attach(model, metrics=[])
    session = ProbeSession(monitor.adapter, probe, 0)
    assert [(p.layer.name, p.param) for p in session.parameters()] == [
        ("d1", "weight"), ("d1", "bias"), ("norm", "weight"), ("norm", "bias"),
        ("head", "weight"), ("head", "bias")]
    assert session.size == sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert session.gradients(4) is session.gradients(4)
    assert session.flat_gradients(4).shape == (4, session.size)
    monitor.detach()


def test_ikkuna_list_shows_keras_for_every_probe_metric(keras, capsys):
    from ikkuna.cli import main
    from ikkuna.metrics.probing import PROBING_METRICS

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for metric in PROBING_METRICS:
        line = next(line for line in out.splitlines() if line.split()[:1] == [metric.name])
        assert "keras" in line, line
