"""The Keras 3 (TensorFlow) adapter: the three ways people train, layers and layouts, detach,
XLA, the fit callback, eval passes, errors and failing metrics.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ikkuna
from ikkuna.core import kinds as K
from ikkuna.metrics import BUILTIN_METRICS
from tests.adapters.keras_models import (
    BATCH,
    CLASSES,
    IMAGE,
    LEARNING_RATE,
    compiled,
    embedding_model,
    image_batch,
    layer_at,
    loss_function,
    mlp,
    nested_functional,
    nested_subclassed,
    small_cnn,
    tape_step,
    token_batch,
    twin,
    variables_by_role,
    vector_batch,
)
from tests.adapters.recording import (
    ALL_METRIC_NAMES,
    ARRAY_KINDS,
    EXPECTED_METRIC_NAMES,
    recorder,
    recorders,
    spy_on_emit,
)

STEPS = 3
#: Instance attributes the adapter may replace while attached.
PATCHED_NAMES = ("call", "compute_loss", "apply", "make_train_function")


@pytest.fixture
def tf(keras):
    import tensorflow

    return tensorflow


def fit_data(batch=image_batch, steps=STEPS):
    """``steps`` batches of ``BATCH`` as one array pair, in the order an unshuffled fit sees."""
    parts = [batch(seed=step) for step in range(steps)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def close(actual, wanted, message=""):
    np.testing.assert_allclose(actual, wanted, rtol=1e-5, atol=1e-6, err_msg=message)


# -- the three training styles -----------------------------------------------------------------


def reference_steps(keras, tf, model, monitor, batches):
    """Train an unmonitored twin of ``small_cnn`` ``model`` on ``batches`` with GradientTape.

    Per step: every layer's output and d loss / d output (a probe model exposes each layer's
    output), every parameter's gradient, the loss and the logits.
    """
    copy = twin(keras, small_cnn, model)
    names = [layer.name for layer in monitor.layers]
    assert names[-1] == "head"
    probe = keras.Model(copy.input, [copy.get_layer(name).output for name in names])
    variables = variables_by_role(copy, monitor)
    optimizer = keras.optimizers.SGD(LEARNING_RATE)
    loss_of = loss_function(keras)
    expected = []
    for inputs, labels in batches:
        with tf.GradientTape() as tape:
            outputs = probe(inputs, training=True)
            loss = loss_of(labels, outputs[-1])
        gradients = tape.gradient(loss, list(outputs) + list(variables.values()))
        parameter_gradients = gradients[len(outputs):]
        optimizer.apply_gradients(zip(parameter_gradients, variables.values()))
        expected.append({
            K.ACTIVATIONS: {n: o.numpy() for n, o in zip(names, outputs)},
            K.OUTPUT_GRADIENTS: {n: g.numpy() for n, g in zip(names, gradients)},
            K.GRADIENTS: {key: np.asarray(tf.convert_to_tensor(g))
                          for key, g in zip(variables, parameter_gradients)},
            K.LOSS: float(loss), K.OUTPUTS: outputs[-1].numpy(),
        })
    return expected


def check_every_kind(seen, emitted, expected, weights_after, initial, batches):
    """Compare what the recorders saw, step by step, with the reference and the weights."""
    markers = [(kind, step) for kind, step in emitted if kind in K.MARKER_KINDS]
    assert markers == [(kind, step) for step in range(STEPS)
                       for kind in (K.STEP_STARTED, K.STEP_FINISHED)]
    for kind in (*ARRAY_KINDS, K.LOSS):
        assert sorted({s.step for s in seen[kind].seen}) == list(range(STEPS)), kind
    before = initial
    for step, wanted in enumerate(expected):
        for name in wanted[K.ACTIVATIONS]:
            for kind in (K.ACTIVATIONS, K.OUTPUT_GRADIENTS):
                close(seen[kind].at(step, name).values, wanted[kind][name],
                      f"{kind} of {name} at step {step}")
        after = weights_after[step]
        for key, gradient in wanted[K.GRADIENTS].items():
            close(seen[K.GRADIENTS].at(step, *key).values, gradient, f"gradient {key} @{step}")
            np.testing.assert_array_equal(seen[K.WEIGHTS].at(step, *key).values, after[key])
            np.testing.assert_array_equal(seen[K.UPDATES].at(step, *key).values,
                                          after[key] - before[key])
        before = after
        inputs, labels = batches[step]
        np.testing.assert_array_equal(seen[K.INPUTS].at(step).values, inputs)
        np.testing.assert_array_equal(seen[K.LABELS].at(step).values, labels)
        close(seen[K.OUTPUTS].at(step).values, wanted[K.OUTPUTS])
        assert seen[K.LOSS].at(step).value == pytest.approx(wanted[K.LOSS], rel=1e-5)


def snapshot(variables):
    return {key: variable.numpy().copy() for key, variable in variables.items()}


def test_fit_with_default_compile_produces_every_event_kind_with_tensorflows_values(keras, tf):
    model = compiled(keras, small_cnn(keras))
    batches = [image_batch(seed=step) for step in range(STEPS)]
    seen = recorders(*ARRAY_KINDS, K.LOSS)
    monitor = ikkuna.attach(model, metrics=list(seen.values()), sinks=[])
    emitted = spy_on_emit(monitor)
    expected = reference_steps(keras, tf, model, monitor, batches)
    variables = variables_by_role(model, monitor)
    initial = snapshot(variables)
    weights_after = []
    keep_weights = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: weights_after.append(snapshot(variables)))
    inputs, labels = fit_data()
    model.fit(inputs, labels, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[keep_weights])
    assert int(model.optimizer.iterations.numpy()) == STEPS
    assert monitor.step == STEPS - 1
    monitor.detach()
    check_every_kind(seen, emitted, expected, weights_after, initial, batches)


def run_tape_loop(keras, tf, traced: bool):
    """The GradientTape loop on ``small_cnn``, eager or in tf.function, checked kind by kind."""
    model = small_cnn(keras)
    optimizer = keras.optimizers.SGD(LEARNING_RATE)
    batches = [image_batch(seed=step) for step in range(STEPS)]
    seen = recorders(*ARRAY_KINDS, K.LOSS)
    monitor = ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[])
    emitted = spy_on_emit(monitor)
    expected = reference_steps(keras, tf, model, monitor, batches)
    variables = variables_by_role(model, monitor)
    initial = snapshot(variables)
    step = tf.function(tape_step(tf, keras)) if traced else tape_step(tf, keras)
    weights_after = []
    for inputs, labels in batches:
        loss, _ = step(model, optimizer, tf.constant(inputs), tf.constant(labels))
        weights_after.append(snapshot(variables))
        monitor.log(labels=labels, loss=float(loss))
    assert int(optimizer.iterations.numpy()) == STEPS
    assert monitor.step == STEPS - 1
    monitor.detach()
    check_every_kind(seen, emitted, expected, weights_after, initial, batches)


def test_eager_gradient_tape_loop_produces_every_event_kind_with_tensorflows_values(keras, tf):
    run_tape_loop(keras, tf, traced=False)


def test_tf_function_gradient_tape_loop_produces_every_event_kind_with_tensorflows_values(
        keras, tf):
    run_tape_loop(keras, tf, traced=True)


@pytest.mark.parametrize("build", [mlp, nested_functional], ids=["sequential", "functional"])
def test_eager_loop_on_numpy_batches_records_the_inputs(keras, tf, build):
    model = build(keras)
    optimizer = keras.optimizers.SGD(LEARNING_RATE)
    seen = recorders(K.INPUTS, K.ACTIVATIONS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[]):
        for step in range(2):
            inputs, labels = vector_batch(seed=step)
            tape_step(tf, keras)(model, optimizer, inputs, labels)  # numpy, as Keras allows
    np.testing.assert_array_equal(seen[K.INPUTS].at(1).values, vector_batch(seed=1)[0])
    assert seen[K.ACTIVATIONS].steps("head") == [0, 1]


def test_log_accepts_a_tensorflow_scalar_loss(keras, tf):
    model = mlp(keras)
    optimizer = keras.optimizers.SGD(LEARNING_RATE)
    seen = recorder(K.LOSS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[seen], sinks=[]) as monitor:
        inputs, labels = vector_batch(seed=0)
        loss, _ = tape_step(tf, keras)(model, optimizer, inputs, labels)
        monitor.log(loss=loss)  # a scalar tf.Tensor, as a GradientTape loop has it
    assert seen.at(0).value == pytest.approx(float(loss))


# -- layers and layouts --------------------------------------------------------------------------


def train_fit(keras, model, batch, steps=2, **options):
    inputs, labels = fit_data(batch, steps)
    return model.fit(inputs, labels, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                     **options)


def test_cnn_layers_have_kinds_roles_and_channels_last_layouts(keras):
    model = compiled(keras, small_cnn(keras))
    seen = recorders(K.ACTIVATIONS, K.WEIGHTS, K.GRADIENTS, K.UPDATES)
    with ikkuna.attach(model, metrics=list(seen.values()), sinks=[]) as monitor:
        train_fit(keras, model, image_batch, steps=1)
        layers = {layer.name: layer for layer in monitor.layers}
    assert {name: layer.kind for name, layer in layers.items()} == {
        "conv": "conv2d", "norm": "norm", "relu": "other", "flatten": "other", "head": "dense",
    }
    assert dict(layers["conv"].params) == {"kernel": "weight", "bias": "bias"}
    assert dict(layers["norm"].params) == {"gamma": "weight", "beta": "bias"}
    assert dict(layers["head"].params) == {"kernel": "weight", "bias": "bias"}
    assert all(layer.framework == "keras" for layer in layers.values())

    for name in layers:
        activation = seen[K.ACTIVATIONS].at(0, name)
        assert activation.layout.channel_axis == -1 and activation.layout.batch_axis == 0, name
    assert seen[K.ACTIVATIONS].at(0, "conv").values.shape == (BATCH, 5, 5, 4)

    kernel = model.get_layer("conv").kernel.numpy()  # (kh, kw, in, out)
    weight = seen[K.WEIGHTS].at(0, "conv", "weight")
    assert (weight.layout.out_axis, weight.layout.in_axis) == (3, 2)
    np.testing.assert_array_equal(weight.matrix, kernel.transpose(3, 2, 0, 1).reshape(4, -1))
    dense = model.get_layer("head").kernel.numpy()  # (in, out)
    for kind in (K.WEIGHTS, K.GRADIENTS, K.UPDATES):
        head = seen[kind].at(0, "head", "weight")
        assert (head.layout.out_axis, head.layout.in_axis) == (1, 0), kind
        np.testing.assert_array_equal(head.matrix, head.values.T)
    np.testing.assert_array_equal(seen[K.WEIGHTS].at(0, "head", "weight").matrix, dense.T)
    bias = seen[K.WEIGHTS].at(0, "head", "bias")
    assert bias.layout.out_axis == 0 and bias.matrix.shape == (CLASSES, 1)
    gamma = seen[K.WEIGHTS].at(0, "norm", "weight")
    np.testing.assert_array_equal(gamma.values, model.get_layer("norm").gamma.numpy())


def test_embedding_layer_is_kind_embedding_with_its_table_as_weight(keras):
    model = compiled(keras, embedding_model(keras))
    seen = recorders(K.ACTIVATIONS, K.WEIGHTS, K.GRADIENTS)
    with ikkuna.attach(model, metrics=list(seen.values()), sinks=[]) as monitor:
        train_fit(keras, model, token_batch)
        layers = {layer.name: layer for layer in monitor.layers}
    assert {name: layer.kind for name, layer in layers.items()} == {
        "embed": "embedding", "flatten": "other", "head": "dense"}
    assert dict(layers["embed"].params) == {"embeddings": "weight"}
    table = model.get_layer("embed").embeddings.numpy()  # (vocabulary, units)
    weight = seen[K.WEIGHTS].at(1, "embed", "weight")
    np.testing.assert_array_equal(weight.values, table)
    np.testing.assert_array_equal(weight.matrix, table.T)
    gradient = seen[K.GRADIENTS].at(1, "embed", "weight")  # IndexedSlices, delivered dense
    assert gradient.values.shape == table.shape
    assert seen[K.ACTIVATIONS].at(0, "embed").layout.channel_axis == -1


@pytest.mark.parametrize("build", [nested_functional, nested_subclassed],
                         ids=["functional", "subclassed"])
def test_nested_model_layers_are_dotted_paths_of_keras_layer_names(keras, build):
    model = compiled(keras, build(keras))
    seen = recorders(K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.WEIGHTS)
    with ikkuna.attach(model, metrics=list(seen.values()), sinks=[]) as monitor:
        train_fit(keras, model, vector_batch)
        kinds = {layer.name: layer.kind for layer in monitor.layers}
    assert kinds == {"encoder.dense": "dense", "encoder.norm": "norm", "head": "dense"}
    for kind in (K.ACTIVATIONS, K.OUTPUT_GRADIENTS):
        assert seen[kind].seen_layers() == set(kinds), kind
        assert seen[kind].steps("encoder.dense") == [0, 1], kind
    np.testing.assert_array_equal(seen[K.WEIGHTS].at(1, "encoder.dense", "weight").values,
                                  layer_at(model, "encoder.dense").kernel.numpy())
    np.testing.assert_array_equal(seen[K.WEIGHTS].at(1, "encoder.norm", "bias").values,
                                  layer_at(model, "encoder.norm").beta.numpy())


@pytest.mark.parametrize("build", [nested_functional, nested_subclassed],
                         ids=["functional", "subclassed"])
def test_fit_records_every_step_of_functional_and_subclassed_models(keras, build):
    model = compiled(keras, build(keras))
    seen = recorders(K.ACTIVATIONS, K.GRADIENTS, K.INPUTS, K.OUTPUTS, K.LABELS, K.LOSS)
    steps = 4
    with ikkuna.attach(model, metrics=list(seen.values()), sinks=[]) as monitor:
        history = train_fit(keras, model, vector_batch, steps=steps)
        assert monitor.step == steps - 1
    assert seen[K.ACTIVATIONS].steps("head") == list(range(steps))
    assert seen[K.GRADIENTS].steps("encoder.dense", "weight") == list(range(steps))
    for kind in (K.INPUTS, K.OUTPUTS, K.LABELS, K.LOSS):
        assert seen[kind].steps() == list(range(steps)), kind
    assert seen[K.OUTPUTS].at(0).values.shape == (BATCH, CLASSES)
    np.testing.assert_array_equal(seen[K.INPUTS].at(2).values, vector_batch(seed=2)[0])
    assert np.isfinite(history.history["loss"][0])


# -- non-interference ------------------------------------------------------------------------------


def seeded_cnn_fit(keras, attached: bool, metrics=ALL_METRIC_NAMES, build=None, every=None):
    """Seeded fit of a CNN (SGD momentum, 3 epochs, shuffled): its losses and final weights."""
    keras.utils.set_random_seed(1)
    model = compiled(keras, (build or small_cnn)(keras), momentum=0.9)
    inputs, labels = fit_data(steps=4)
    monitor = ikkuna.attach(model, metrics=metrics, every=every) if attached else None
    history = model.fit(inputs, labels, batch_size=BATCH, epochs=3, shuffle=True, verbose=0)
    if monitor is not None:
        assert monitor.step == 11
        monitor.detach()
        assert set(metrics) & EXPECTED_METRIC_NAMES <= set(ikkuna.open_run(monitor.run).metrics())
    return history.history["loss"], [w.copy() for w in model.get_weights()]


def cnn_without_batchnorm(keras):
    layers = keras.layers
    inputs = keras.Input(IMAGE, name="images")
    hidden = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    hidden = layers.ReLU(name="relu")(layers.Flatten(name="flatten")(hidden))
    return keras.Model(inputs, layers.Dense(CLASSES, name="head")(hidden), name="plain_cnn")


GRADIENT_FREE_METRICS = [m.name for m in BUILTIN_METRICS
                         if m.name in ALL_METRIC_NAMES and "gradients" not in m.needs]


@pytest.mark.parametrize(
    ("build", "metrics"),
    [(cnn_without_batchnorm, ALL_METRIC_NAMES), (small_cnn, GRADIENT_FREE_METRICS)],
    ids=["no-batchnorm-all-metrics", "batchnorm-gradient-free-metrics"],
)
def test_seeded_fit_gives_the_same_losses_and_weights_with_and_without_ikkuna(keras, build,
                                                                              metrics):
    losses, weights = seeded_cnn_fit(keras, attached=False, build=build)
    monitored_losses, monitored_weights = seeded_cnn_fit(keras, attached=True, metrics=metrics,
                                                         build=build)
    assert monitored_losses == losses
    assert len(monitored_weights) == len(weights)
    for plain, monitored in zip(weights, monitored_weights):
        np.testing.assert_array_equal(monitored, plain)


@pytest.mark.parametrize("every", [None, 2, lambda step: step % 3 == 0],
                         ids=["every-step", "every-2", "callable-schedule"])
def test_recording_gradients_in_fit_with_batchnorm_leaves_training_bitwise_identical(keras,
                                                                                     every):
    """With BatchNormalization, TensorFlow's graph optimizer reorders SGD's ``lr * (a * b)``
    on gamma's gradient to ``(lr * a) * b`` only while the gradient has one reader; the
    adapter hands the callback a copy of the gradient so that the rewrite stays as without
    ikkuna (it took 1e-7 off the weights before)."""
    losses, weights = seeded_cnn_fit(keras, attached=False)
    monitored_losses, monitored_weights = seeded_cnn_fit(keras, attached=True, every=every)
    np.testing.assert_array_equal(monitored_losses, losses)
    assert len(monitored_weights) == len(weights)
    for plain, monitored in zip(weights, monitored_weights):
        np.testing.assert_array_equal(monitored, plain)


def seeded_tape_loop(keras, tf, attached: bool):
    keras.utils.set_random_seed(1)
    model = small_cnn(keras)
    optimizer = keras.optimizers.SGD(LEARNING_RATE, momentum=0.9)
    monitor = (ikkuna.attach(model, optimizer=optimizer, metrics=ALL_METRIC_NAMES)
               if attached else None)
    step = tf.function(tape_step(tf, keras))
    losses = []
    for index in range(4):
        inputs, labels = image_batch(seed=index)
        loss, _ = step(model, optimizer, inputs, labels)
        losses.append(float(loss))
        if monitor is not None:
            monitor.log(labels=labels, loss=float(loss))
    if monitor is not None:
        assert monitor.step == 3
        monitor.detach()
    return losses, [w.copy() for w in model.get_weights()]


def test_seeded_tf_function_loop_gives_the_same_losses_and_weights_with_and_without_ikkuna(
        keras, tf):
    losses, weights = seeded_tape_loop(keras, tf, attached=False)
    monitored_losses, monitored_weights = seeded_tape_loop(keras, tf, attached=True)
    assert monitored_losses == losses
    for plain, monitored in zip(weights, monitored_weights):
        np.testing.assert_array_equal(monitored, plain)


# -- detach ----------------------------------------------------------------------------------------


def instance_state(model, optimizer):
    """For the model, each of its layers and the optimizer: instance attribute names, and the
    instance values of the names the adapter patches."""
    state = {}
    for owner in [model, optimizer, *model._flatten_layers(include_self=False, recursive=True)]:
        attributes = vars(owner)
        state[id(owner)] = (
            set(attributes),
            {name: attributes[name] for name in PATCHED_NAMES if name in attributes},
        )
    return state


def test_detach_restores_model_and_optimizer_and_records_nothing_afterwards(keras):
    model = compiled(keras, nested_functional(keras), momentum=0.9)
    train_fit(keras, model, vector_batch, steps=1)  # builds the optimizer and train function
    jit_compile = model.jit_compile
    before = instance_state(model, model.optimizer)
    seen = recorders(K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.GRADIENTS, K.WEIGHTS, K.UPDATES,
                     K.INPUTS, K.OUTPUTS, K.LABELS, K.LOSS)
    monitor = ikkuna.attach(model, metrics=list(seen.values()), sinks=[])
    assert any("call" in vars(layer) for layer in model._flatten_layers(include_self=False))
    assert "apply" in vars(model.optimizer)
    train_fit(keras, model, vector_batch)
    weights = [w.copy() for w in model.get_weights()]
    monitor.detach()
    assert instance_state(model, model.optimizer) == before
    assert model.jit_compile == jit_compile
    for saved, now in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(now, saved)

    calls = {kind: len(metric.seen) for kind, metric in seen.items()}
    assert calls[K.ACTIVATIONS] > 0
    emitted = spy_on_emit(monitor)
    train_fit(keras, model, vector_batch)
    assert emitted == []
    assert {kind: len(metric.seen) for kind, metric in seen.items()} == calls
    assert monitor.step == 1
    monitor.detach()  # idempotent


def test_detach_after_a_tf_function_loop_leaves_no_patch(keras, tf):
    model = nested_subclassed(keras)
    optimizer = keras.optimizers.SGD(LEARNING_RATE)
    step = tf.function(tape_step(tf, keras))
    step(model, optimizer, *vector_batch(seed=0))
    before = instance_state(model, optimizer)
    with ikkuna.attach(model, optimizer=optimizer, sinks=[]):
        step = tf.function(tape_step(tf, keras))
        step(model, optimizer, *vector_batch(seed=1))
    assert instance_state(model, optimizer) == before


# -- XLA -------------------------------------------------------------------------------------------


def test_jit_compiled_fit_runs_without_xla_with_one_warning_and_detach_restores_it(keras):
    model = compiled(keras, mlp(keras), jit_compile=True)
    assert model.jit_compile is True
    seen = recorders(K.ACTIVATIONS, K.WEIGHTS, K.LOSS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor = ikkuna.attach(model, metrics=list(seen.values()), sinks=[])
        history = model.fit(*fit_data(vector_batch, steps=3), batch_size=BATCH, epochs=2,
                            verbose=0)
        assert monitor.step == 5
        monitor.detach()
    runtime_warnings = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime_warnings) == 1, [str(w.message) for w in runtime_warnings]
    message = str(runtime_warnings[0].message)
    assert "jit_compile" in message and "XLA" in message
    assert len(history.history["loss"]) == 2
    assert seen[K.ACTIVATIONS].steps("hidden") == list(range(6))
    assert seen[K.WEIGHTS].steps("head", "weight") == list(range(6))
    assert seen[K.LOSS].steps() == list(range(6))
    assert model.jit_compile is True


# -- ikkuna.keras.Callback -----------------------------------------------------------------------


def test_callback_with_a_monitor_marks_epochs_and_stores_keras_logs(keras):
    from ikkuna.keras import Callback

    model = compiled(keras, mlp(keras), metrics=["accuracy"])
    monitor = ikkuna.attach(model, metrics=["weight_norm"])
    emitted = spy_on_emit(monitor)
    model.fit(*vector_batch(seed=0, size=64), batch_size=16, epochs=2, shuffle=False,
              verbose=0, callbacks=[Callback(monitor)])
    monitor.detach()
    assert [kind for kind, _ in emitted if kind in (K.EPOCH_STARTED, K.EPOCH_FINISHED)] == [
        K.EPOCH_STARTED, K.EPOCH_FINISHED, K.EPOCH_STARTED, K.EPOCH_FINISHED]
    with ikkuna.open_run(monitor.run) as run:
        loss = run.series("loss")
        np.testing.assert_array_equal(loss.steps, range(8))
        np.testing.assert_array_equal(loss.epochs, [0, 0, 0, 0, 1, 1, 1, 1])
        np.testing.assert_array_equal(run.series("weight_norm", "head", "weight").epochs,
                                      [0, 0, 0, 0, 1, 1, 1, 1])
        accuracy = run.series("accuracy")
        np.testing.assert_array_equal(accuracy.steps, range(8))
        for name in ("epoch_loss", "epoch_accuracy"):
            series = run.series(name)
            np.testing.assert_array_equal(series.epochs, [0, 1])
            np.testing.assert_array_equal(series.steps, [3, 7])


def test_callback_with_attach_options_attaches_for_the_fit_only(keras):
    from ikkuna.keras import Callback

    model = compiled(keras, mlp(keras))
    model.fit(*fit_data(vector_batch, steps=1), batch_size=BATCH, verbose=0)
    before = instance_state(model, model.optimizer)
    model.fit(*fit_data(vector_batch, steps=4), batch_size=BATCH, epochs=2, verbose=0,
              callbacks=[Callback(metrics=["weight_norm", "activation_mean"], run="fit-run")])
    assert instance_state(model, model.optimizer) == before
    with ikkuna.open_run("fit-run") as run:
        series = run.series("activation_mean", "hidden")
        np.testing.assert_array_equal(series.steps, range(8))
        np.testing.assert_array_equal(series.epochs, [0, 0, 0, 0, 1, 1, 1, 1])
        assert len(run.series("epoch_loss")) == 2


def test_callback_with_a_monitor_and_attach_options_is_a_type_error(keras):
    from ikkuna.keras import Callback

    model = compiled(keras, mlp(keras))
    with ikkuna.attach(model, sinks=[]) as monitor, pytest.raises(
            TypeError, match="monitor or attach options"):
        Callback(monitor, metrics=["weight_norm"])


# -- eval passes -----------------------------------------------------------------------------------


def test_evaluate_predict_and_inference_calls_record_nothing_and_keep_the_step(keras):
    model = compiled(keras, small_cnn(keras))
    seen = recorders(K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.INPUTS, K.OUTPUTS, K.LABELS, K.LOSS)
    monitor = ikkuna.attach(model, metrics=list(seen.values()), sinks=[])
    emitted = spy_on_emit(monitor)
    evaluation = image_batch(seed=99, size=7)
    inputs, labels = fit_data(steps=2)
    between_steps = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: model(evaluation[0], training=False))
    model.fit(inputs, labels, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
              validation_data=evaluation, callbacks=[between_steps])
    assert monitor.step == 3
    emitted.clear()
    model.evaluate(*evaluation, verbose=0)
    model.predict(evaluation[0], verbose=0)
    model(evaluation[0], training=False)
    model(evaluation[0])
    assert emitted == []
    assert monitor.step == 3
    model.fit(inputs, labels, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    monitor.detach()
    for kind, metric in seen.items():
        assert sorted({s.step for s in metric.seen}) == list(range(6)), kind
        if kind != K.LOSS:
            assert all(s.values.shape[0] == BATCH for s in metric.seen), kind
    assert seen[K.ACTIVATIONS].steps("conv") == list(range(6))


# -- errors ----------------------------------------------------------------------------------------


def test_attach_to_an_unbuilt_model_says_it_is_not_built(keras):
    model = keras.Sequential([keras.layers.Dense(CLASSES)])
    with pytest.raises(ValueError, match="not built"):
        ikkuna.attach(model, sinks=[])


def test_attach_without_compile_or_optimizer_asks_for_one_and_patches_nothing(keras):
    model = mlp(keras)
    before = {id(layer): set(vars(layer)) for layer in model._flatten_layers()}
    with pytest.raises(ValueError, match="compile") as error:
        ikkuna.attach(model, sinks=[])
    assert "optimizer" in str(error.value)
    assert {id(layer): set(vars(layer)) for layer in model._flatten_layers()} == before


@pytest.mark.parametrize("wrong", ["sgd", object()], ids=["str", "object"])
def test_optimizer_of_the_wrong_type_names_keras_optimizers_optimizer(keras, wrong):
    model = mlp(keras)
    with pytest.raises(TypeError, match=r"keras\.optimizers\.Optimizer"):
        ikkuna.attach(model, optimizer=wrong, sinks=[])


# -- a failing metric --------------------------------------------------------------------------


class ExplodingMetric(ikkuna.Metric):
    """Raises on its first call."""

    name = "exploding_metric"
    needs = ("weights",)

    def compute(self, group):
        raise ValueError("boom in the metric")


def test_a_metric_that_raises_in_fit_is_disabled_with_one_warning_and_fit_completes(keras):
    model = compiled(keras, mlp(keras))
    steps = 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor = ikkuna.attach(model, metrics=[ExplodingMetric(), "weight_norm"])
        history = model.fit(*fit_data(vector_batch, steps=2), batch_size=BATCH, epochs=2,
                            verbose=0)
        monitor.detach()
    runtime_warnings = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime_warnings) == 1, [str(w.message) for w in runtime_warnings]
    assert "exploding_metric" in str(runtime_warnings[0].message)
    assert len(history.history["loss"]) == 2
    assert monitor.step == steps - 1
    assert [p.source for p in monitor.problems] == ["metric:exploding_metric"]
    with ikkuna.open_run(monitor.run) as run:
        assert "exploding_metric" not in run.metrics()
        np.testing.assert_array_equal(run.series("weight_norm", "hidden", "weight").steps,
                                      range(steps))


def test_a_layer_returning_a_tuple_records_its_first_output(keras):
    class Split(keras.layers.Layer):
        def call(self, x):
            return x * 2.0, x * 3.0

    inputs = keras.Input((4,))
    doubled, tripled = Split(name="split")(inputs)
    outputs = keras.layers.Dense(2, name="head")(keras.layers.Concatenate(name="join")([doubled, tripled]))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    seen = recorder(K.ACTIVATIONS)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    with ikkuna.attach(model, metrics=[seen], sinks=[]):
        model.fit(x, np.zeros((2, 2), np.float32), batch_size=2, epochs=1, verbose=0)
    np.testing.assert_array_equal(seen.at(0, "split").values, x * 2.0)


@pytest.mark.parametrize("style", ["fit", "tf.function", "eager"])
def test_every_records_only_scheduled_steps_but_the_loss_of_every_step(keras, style):
    import tensorflow as tf

    model = compiled(keras, mlp(keras))
    seen = recorders(K.ACTIVATIONS, K.WEIGHTS)
    inputs, labels = vector_batch(seed=0, size=BATCH * 5)
    with ikkuna.attach(model, metrics=list(seen.values()), every=2) as monitor:
        if style == "fit":
            model.fit(inputs, labels, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        else:
            step = tape_step(tf, keras)
            step = tf.function(step) if style == "tf.function" else step
            for index in range(5):
                batch = slice(index * BATCH, (index + 1) * BATCH)
                loss, _ = step(model, model.optimizer, inputs[batch], labels[batch])
                monitor.log(loss=float(loss))
    assert monitor.step == 4
    assert sorted({s.step for s in seen[K.ACTIVATIONS].seen}) == [0, 2, 4]
    assert sorted({s.step for s in seen[K.WEIGHTS].seen}) == [0, 2, 4]
    np.testing.assert_array_equal(monitor.series("loss").steps, [0, 1, 2, 3, 4])


def _train_step_op_types(tf, model, inputs, labels) -> list[str]:
    """The op types of Keras' own train step traced as ``fit`` traces it."""
    data = (tf.constant(inputs), tf.constant(labels))
    return [op.type for op in tf.function(model.train_step).get_concrete_function(data)
            .graph.get_operations()]


@pytest.mark.parametrize("metrics", ["none", "loss only"])
def test_a_traced_step_that_hands_over_only_the_loss_has_no_cond_and_stores_every_loss(
        keras, metrics):
    import tensorflow as tf

    model = compiled(keras, mlp(keras))
    inputs, labels = vector_batch(seed=0, size=BATCH * 3)
    conds = ("If", "StatelessIf")
    conds_without = sum(t in conds for t in _train_step_op_types(tf, model, inputs, labels))
    chosen = [] if metrics == "none" else [recorder(K.LOSS)]
    with ikkuna.attach(model, metrics=chosen, every=2) as monitor:
        types = _train_step_op_types(tf, model, inputs, labels)
        history = model.fit(inputs, labels, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    assert sum(t in conds for t in types) == conds_without
    assert types.count("PyFunc") == 1  # the step's one host call
    stored = monitor.series("loss")
    np.testing.assert_array_equal(stored.steps, [0, 1, 2])
    np.testing.assert_allclose(np.mean(stored.values), history.history["loss"][0], rtol=1e-5)
    if chosen:
        assert [event.step for event in chosen[0].seen] == [0, 2]


def test_mixed_precision_gradients_are_recorded_unscaled(keras):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = compiled(keras, mlp(keras))
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        seen = recorders(K.GRADIENTS, K.UPDATES, K.ACTIVATIONS)
        inputs, labels = vector_batch(seed=0)
        with ikkuna.attach(model, metrics=list(seen.values()), sinks=[]):
            model.fit(inputs, labels, batch_size=BATCH, epochs=1, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert seen[K.ACTIVATIONS].seen, "layer outputs reach the step inside the loss-scale cond"
    layer, role = seen[K.GRADIENTS].seen[0].layer, seen[K.GRADIENTS].seen[0].param
    gradient = seen[K.GRADIENTS].at(0, layer, role).values
    update = seen[K.UPDATES].at(0, layer, role).values
    np.testing.assert_allclose(-update / LEARNING_RATE, gradient, rtol=1e-3, atol=1e-6)


def test_a_second_monitor_on_the_same_model_is_refused_until_the_first_detaches(keras):
    model = compiled(keras, mlp(keras))
    first = ikkuna.attach(model, sinks=[])
    with pytest.raises(ValueError, match="already monitored"):
        ikkuna.attach(model, sinks=[])
    first.detach()
    ikkuna.attach(model, sinks=[]).detach()


def test_layer_values_from_another_tf_function_warn_once_and_gradients_still_arrive(keras):
    import tensorflow as tf

    model = compiled(keras, mlp(keras))
    seen = recorders(K.ACTIVATIONS, K.GRADIENTS)
    loss_of = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def gradients_of(inputs, labels):
        with tf.GradientTape() as tape:
            loss = loss_of(labels, model(inputs, training=True))
        return tape.gradient(loss, model.trainable_variables)

    with ikkuna.attach(model, metrics=list(seen.values()), sinks=[]):
        with pytest.warns(RuntimeWarning, match="another tf.function") as caught:
            for index in range(2):
                grads = gradients_of(*vector_batch(seed=index))
                model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
    assert len([w for w in caught if "another tf.function" in str(w.message)]) == 1
    assert seen[K.ACTIVATIONS].seen == []
    assert sorted({s.step for s in seen[K.GRADIENTS].seen}) == [0, 1]
