"""The JAX adapter (Flax NNX + optax): jitted and eager steps, compiling once, layers and
layouts, non-interference, detach, eval passes, schedules and layer filters, errors and
failing metrics.

jax, flax and optax are imported inside the tests (after the ``jax`` fixture), never here.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ikkuna
from ikkuna.core import kinds as K
from ikkuna.testing.parity.jax_models import cross_entropy_step
from tests.adapters.jax_models import (
    BATCH,
    CLASSES,
    CONV_CHANNELS,
    EMBEDDING,
    HIDDEN,
    IMAGE,
    SEQUENCE,
    all_leaves,
    by_role,
    embedding_model,
    host_callbacks_in_parts_of,
    image_batch,
    loss_of,
    mlp,
    module_at,
    nested,
    params_by_role,
    reference_step,
    sgd,
    small_cnn,
    token_batch,
    train_step,
    vector_batch,
)
from tests.adapters.recording import (
    ALL_METRIC_NAMES,
    ARRAY_KINDS,
    EXPECTED_METRIC_NAMES,
    assert_same_records,
    recorder,
    recorders,
    spy_on_emit,
    spy_on_emitted_events,
)

STEPS = 3
STYLES = pytest.mark.parametrize("jitted", [True, False], ids=["jit", "eager"])


def close(actual, wanted, message=""):
    np.testing.assert_allclose(actual, wanted, rtol=1e-5, atol=1e-6, err_msg=message)


def train(model, optimizer, step, batch, steps, monitor=None, first_seed=0):
    """Run ``steps`` steps on batches ``batch(seed)``; log loss and labels if monitored."""
    import jax.numpy as jnp

    losses = []
    for seed in range(first_seed, first_seed + steps):
        inputs, labels = batch(seed)
        loss, _ = step(model, optimizer, jnp.asarray(inputs), jnp.asarray(labels))
        losses.append(float(loss))
        if monitor is not None:
            monitor.log(loss=float(loss), labels=labels)
    return losses


# -- 1. every kind, jitted and not -------------------------------------------------------------


@STYLES
def test_training_step_produces_every_event_kind_with_independently_computed_values(jax, jitted):
    import jax.numpy as jnp
    from flax import nnx

    model = small_cnn(seed=0)
    twin = small_cnn(seed=1)  # unmonitored; given the monitored model's state before each step
    optimizer = sgd(model)
    seen = recorders(*ARRAY_KINDS, K.LOSS)
    monitor = ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[])
    emitted = spy_on_emit(monitor)
    layers = monitor.layers
    assert [layer.name for layer in layers] == ["conv", "norm", "head"]  # assignment order
    step = train_step(jitted)
    expected, before, after, batches, logits_seen = [], [], [], [], []
    for index in range(STEPS):
        inputs, labels = image_batch(seed=index)
        batches.append((inputs, labels))
        nnx.update(twin, nnx.state(model))
        expected.append(reference_step(twin, inputs, labels))
        before.append(params_by_role(model, layers))
        loss, logits = step(model, optimizer, jnp.asarray(inputs), jnp.asarray(labels))
        after.append(params_by_role(model, layers))
        logits_seen.append(np.asarray(logits))
        monitor.log(loss=float(loss), labels=labels)
    assert monitor.step == STEPS - 1
    monitor.detach()

    markers = [(kind, step) for kind, step in emitted if kind in K.MARKER_KINDS]
    assert markers == [(kind, step) for step in range(STEPS)
                       for kind in (K.STEP_STARTED, K.STEP_FINISHED)]
    for kind in (*ARRAY_KINDS, K.LOSS):
        assert sorted({s.step for s in seen[kind].seen}) == list(range(STEPS)), kind
    for kind in (K.ACTIVATIONS, K.OUTPUT_GRADIENTS):
        assert seen[kind].seen_layers() == {"conv", "norm", "head"}, kind
    for index, wanted in enumerate(expected):
        for name in ("conv", "norm", "head"):
            for kind in (K.ACTIVATIONS, K.OUTPUT_GRADIENTS):
                close(seen[kind].at(index, name).values, wanted[kind][name],
                      f"{kind} of {name} at step {index}")
        gradients = by_role(wanted[K.GRADIENTS], layers)
        assert set(gradients) == set(after[index]) == {
            ("conv", "weight"), ("conv", "bias"), ("norm", "weight"), ("norm", "bias"),
            ("head", "weight"), ("head", "bias")}
        for key, gradient in gradients.items():
            close(seen[K.GRADIENTS].at(index, *key).values, gradient,
                  f"gradient of {key} at step {index}")
            np.testing.assert_array_equal(seen[K.WEIGHTS].at(index, *key).values,
                                          after[index][key], f"weights of {key} @{index}")
            np.testing.assert_array_equal(seen[K.UPDATES].at(index, *key).values,
                                          after[index][key] - before[index][key],
                                          f"update of {key} at step {index}")
            assert np.any(seen[K.UPDATES].at(index, *key).values != 0), key
        inputs, labels = batches[index]
        np.testing.assert_array_equal(seen[K.INPUTS].at(index).values, inputs)
        np.testing.assert_array_equal(seen[K.LABELS].at(index).values, labels)
        np.testing.assert_array_equal(seen[K.OUTPUTS].at(index).values, logits_seen[index])
        close(seen[K.OUTPUTS].at(index).values, wanted[K.OUTPUTS])
        assert seen[K.LOSS].at(index).value == pytest.approx(wanted[K.LOSS], rel=1e-5)


#: The events of one recorded step of ``small_cnn``, in the order one callback gave them: the
#: captured values, the output gradients buffered during the backward pass, each parameter
#: kind over the parameters (sorted by path), then the step's end.
ONE_STEP = [
    K.STEP_STARTED, K.LEARNING_RATE, K.INPUTS, K.OUTPUTS, *[K.ACTIVATIONS] * 3,
    *[K.OUTPUT_GRADIENTS] * 3, *[K.GRADIENTS] * 6, *[K.WEIGHTS] * 6, *[K.UPDATES] * 6,
    K.STEP_FINISHED,
]


@STYLES
@pytest.mark.parametrize("every", [None, 2], ids=["every-step", "every-2"])
def test_a_step_handed_to_the_host_value_by_value_gives_the_events_of_one_callback(
        jax, jitted, every, monkeypatch):
    """Large steps reach the host in parts (``jax_host.PART_BYTES``): the events, their order
    and their values are those of one callback per step, on recorded and skipped steps."""
    kinds = (*ARRAY_KINDS, K.LEARNING_RATE)

    def record(part_bytes):
        callbacks = host_callbacks_in_parts_of(monkeypatch, part_bytes)
        model = small_cnn(seed=0)
        optimizer = sgd(model)
        seen = recorders(*kinds)
        with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()),
                           sinks=[], every=every) as monitor:
            order = spy_on_emitted_events(monitor)
            train(model, optimizer, train_step(jitted), image_batch, steps=3, monitor=monitor)
        return len(callbacks), order, seen

    one_callback, order, seen = record(1 << 40)
    value_by_value, parts_order, parts_seen = record(1)
    # per traced update: a callback per value (3 kinds of 6 parameters, 3 activations, the
    # model's inputs and outputs), not one
    assert value_by_value >= one_callback + 3 * 6 + 3 + 2 - 1
    assert parts_order == order
    recorded = [0, 1, 2] if every is None else [0, 2]
    for step in range(3):
        kinds_of_step = [kind for kind, at, *_ in order if at == step and kind not in
                         (K.LOSS, K.LABELS)]
        assert kinds_of_step == (ONE_STEP if step in recorded
                                 else [K.STEP_STARTED, K.STEP_FINISHED]), step
    assert_same_records(parts_seen, seen, kinds)


def test_parts_of_a_step_that_was_not_opened_emit_nothing(jax):
    """A part after a detach (or after a first part that raised) does not finish a step that
    never started."""
    model = mlp()
    with ikkuna.attach(model, optimizer=sgd(model), metrics=list(recorders(K.WEIGHTS).values()),
                       sinks=[]) as monitor:
        emitted = spy_on_emitted_events(monitor)
        monitor.adapter._deliver_part([], False, True, [], [])
        assert emitted == []
        monitor.adapter._deliver_part([], True, True, [], [])
        assert [kind for kind, *_ in emitted] == [K.STEP_STARTED, K.STEP_FINISHED]


# -- 2. compiling once -------------------------------------------------------------------------


@pytest.mark.parametrize("every", [None, 2], ids=["every-step", "every-2"])
def test_jitted_step_with_monitoring_is_traced_once_over_five_steps(jax, every):
    model = mlp()
    optimizer = sgd(model)
    traces = []
    step = train_step(jitted=True, on_trace=lambda: traces.append(1))
    seen = recorders(*ARRAY_KINDS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[],
                       every=every) as monitor:
        train(model, optimizer, step, vector_batch, steps=5, monitor=monitor)
        assert monitor.step == 4
    assert len(traces) == 1
    recorded = list(range(5)) if every is None else [0, 2, 4]
    assert seen[K.ACTIVATIONS].steps("dense1") == recorded
    assert seen[K.WEIGHTS].steps("head", "weight") == recorded


# -- 3. layers and layouts ---------------------------------------------------------------------


def one_step_recorded(model, batch, kinds, jitted=True, steps=1):
    optimizer = sgd(model)
    seen = recorders(*kinds)
    with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()),
                       sinks=[]) as monitor:
        train(model, optimizer, train_step(jitted), batch, steps=steps, monitor=monitor)
        layers = {layer.name: layer for layer in monitor.layers}
    return seen, layers


def test_linear_conv_and_batchnorm_have_kinds_roles_and_flax_layouts(jax):
    from flax import nnx

    model = small_cnn()
    seen, layers = one_step_recorded(
        model, image_batch, (K.ACTIVATIONS, K.WEIGHTS, K.GRADIENTS, K.UPDATES))
    assert {name: layer.kind for name, layer in layers.items()} == {
        "conv": "conv2d", "norm": "norm", "head": "dense"}
    assert dict(layers["conv"].params) == {"kernel": "weight", "bias": "bias"}
    assert dict(layers["head"].params) == {"kernel": "weight", "bias": "bias"}
    assert dict(layers["norm"].params) == {"scale": "weight", "bias": "bias"}  # no mean, var
    assert all(layer.framework == "jax" for layer in layers.values())
    # BatchNorm's running statistics are batch statistics, not parameters, and not recorded
    assert set(nnx.state(model.norm, nnx.BatchStat)) == {"mean", "var"}
    for kind in (K.WEIGHTS, K.GRADIENTS, K.UPDATES):
        assert {s.param for s in seen[kind].seen if s.layer == "norm"} == {"weight", "bias"}
        assert {(s.layer, s.param) for s in seen[kind].seen} == {
            (name, role) for name in layers for role in ("weight", "bias")}, kind

    for name in layers:
        activation = seen[K.ACTIVATIONS].at(0, name)
        assert (activation.layout.channel_axis, activation.layout.batch_axis) == (-1, 0), name
    assert seen[K.ACTIVATIONS].at(0, "conv").values.shape == (BATCH, *IMAGE[:2], CONV_CHANNELS)

    kernel = np.asarray(model.conv.kernel[...])  # (kh, kw, in, out)
    assert kernel.shape == (3, 3, IMAGE[2], CONV_CHANNELS)
    for kind in (K.WEIGHTS, K.GRADIENTS, K.UPDATES):
        conv = seen[kind].at(0, "conv", "weight")
        assert (conv.layout.out_axis, conv.layout.in_axis) == (3, 2), kind
        np.testing.assert_array_equal(
            conv.matrix, conv.values.transpose(3, 2, 0, 1).reshape(CONV_CHANNELS, -1))
    np.testing.assert_array_equal(seen[K.WEIGHTS].at(0, "conv", "weight").matrix,
                                  kernel.transpose(3, 2, 0, 1).reshape(CONV_CHANNELS, -1))

    dense = np.asarray(model.head.kernel[...])  # (in, out)
    assert dense.shape == (IMAGE[0] * IMAGE[1] * CONV_CHANNELS, CLASSES)
    for kind in (K.WEIGHTS, K.GRADIENTS, K.UPDATES):
        head = seen[kind].at(0, "head", "weight")
        assert (head.layout.out_axis, head.layout.in_axis) == (1, 0), kind
        np.testing.assert_array_equal(head.matrix, head.values.T)
    np.testing.assert_array_equal(seen[K.WEIGHTS].at(0, "head", "weight").matrix, dense.T)
    bias = seen[K.WEIGHTS].at(0, "head", "bias")
    assert bias.layout.out_axis == 0 and bias.matrix.shape == (CLASSES, 1)
    np.testing.assert_array_equal(seen[K.WEIGHTS].at(0, "norm", "weight").values,
                                  np.asarray(model.norm.scale[...]))


def test_embed_is_kind_embedding_with_its_table_as_weight(jax):
    model = embedding_model()
    seen, layers = one_step_recorded(model, token_batch,
                                     (K.ACTIVATIONS, K.WEIGHTS, K.GRADIENTS), steps=2)
    assert {name: layer.kind for name, layer in layers.items()} == {
        "embed": "embedding", "head": "dense"}
    assert dict(layers["embed"].params) == {"embedding": "weight"}
    table = np.asarray(model.embed.embedding[...])
    weight = seen[K.WEIGHTS].at(1, "embed", "weight")
    np.testing.assert_array_equal(weight.values, table)
    assert (weight.layout.out_axis, weight.layout.in_axis) == (1, 0)
    np.testing.assert_array_equal(weight.matrix, table.T)
    gradient = seen[K.GRADIENTS].at(1, "embed", "weight")
    assert gradient.values.shape == table.shape
    tokens, _ = token_batch(seed=1)
    unused = np.setdiff1d(np.arange(table.shape[0]), tokens)
    assert unused.size and np.all(gradient.values[unused] == 0)  # rows not looked up
    assert np.any(gradient.values[tokens[0]] != 0)
    activation = seen[K.ACTIVATIONS].at(0, "embed")
    assert activation.layout.channel_axis == -1
    assert activation.values.shape == (BATCH, SEQUENCE, EMBEDDING)


@STYLES
def test_nested_modules_and_sequential_layers_are_dotted_attribute_paths(jax, jitted):
    model = nested()
    kinds = (K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.WEIGHTS, K.GRADIENTS)
    seen, layers = one_step_recorded(model, vector_batch, kinds, jitted=jitted, steps=2)
    assert {name: layer.kind for name, layer in layers.items()} == {
        "encoder.dense": "dense", "encoder.norm": "norm",
        "block.layers.0": "dense", "block.layers.2": "dense"}
    assert dict(layers["encoder.norm"].params) == {"scale": "weight", "bias": "bias"}
    assert dict(layers["block.layers.0"].params) == {"kernel": "weight", "bias": "bias"}
    for kind in (K.ACTIVATIONS, K.OUTPUT_GRADIENTS):
        assert seen[kind].seen_layers() == set(layers), kind
        assert seen[kind].steps("block.layers.0") == [0, 1], kind
    assert seen[K.ACTIVATIONS].at(1, "block.layers.0").values.shape == (BATCH, HIDDEN)
    for name in layers:
        for role in ("weight", "bias"):
            native = "kernel" if role == "weight" and "norm" not in name else (
                "scale" if role == "weight" else "bias")
            np.testing.assert_array_equal(seen[K.WEIGHTS].at(1, name, role).values,
                                          np.asarray(getattr(module_at(model, name),
                                                             native)[...]), f"{name} {role}")
            assert seen[K.GRADIENTS].steps(name, role) == [0, 1]


def test_layers_are_listed_in_the_order_they_were_assigned_not_by_name(jax):
    """As torch lists modules: attribute assignment order, list items by index (10 after 9)."""
    import optax
    from flax import nnx

    class ReLU(nnx.Module):
        def __call__(self, x):
            return nnx.relu(x)

    class Network(nnx.Module):
        def __init__(self, rngs):
            self.zeta = nnx.Linear(2, 2, rngs=rngs)
            self.alpha = ReLU()
            self.blocks = nnx.List([nnx.Linear(2, 2, rngs=rngs) for _ in range(11)])
            self.mid = nnx.Sequential(nnx.Linear(2, 2, rngs=rngs), ReLU())

    model = Network(nnx.Rngs(0))
    with ikkuna.attach(model, optimizer=nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param),
                       metrics=[], sinks=[]) as monitor:
        names = [layer.name for layer in monitor.layers]
    assert names == ["zeta", "alpha", *(f"blocks.{i}" for i in range(11)),
                     "mid.layers.0", "mid.layers.1"]


# -- 4. non-interference -----------------------------------------------------------------------


def seeded_cnn_training(jitted: bool, attached: bool, steps: int = 10):
    """Seeded training of the BatchNorm CNN (SGD momentum 0.9) in train mode: its losses and
    every leaf of the model's and the optimizer's state at the end."""
    model = small_cnn(seed=3)
    optimizer = sgd(model, momentum=0.9)
    monitor = (ikkuna.attach(model, optimizer=optimizer, metrics=ALL_METRIC_NAMES)
               if attached else None)
    losses = train(model, optimizer, train_step(jitted), image_batch, steps, monitor)
    if monitor is not None:
        assert monitor.step == steps - 1
        monitor.detach()
        with ikkuna.open_run(monitor.run) as run:
            assert EXPECTED_METRIC_NAMES <= set(run.metrics())
            np.testing.assert_array_equal(run.series("gradient_norm", "conv", "weight").steps,
                                          range(steps))
    return losses, all_leaves(model), all_leaves(optimizer)


@STYLES
def test_seeded_training_gives_identical_losses_and_state_with_and_without_ikkuna(jax, jitted):
    losses, model_state, optimizer_state = seeded_cnn_training(jitted, attached=False)
    monitored_losses, monitored_model, monitored_optimizer = seeded_cnn_training(
        jitted, attached=True)
    assert monitored_losses == losses
    assert len(set(losses)) > 1
    assert set(monitored_model) == set(model_state)
    assert any("mean" in path for path in model_state)  # batch statistics compared too
    for path, value in model_state.items():
        np.testing.assert_array_equal(monitored_model[path], value, f"model state {path}")
    assert set(monitored_optimizer) == set(optimizer_state)
    for path, value in optimizer_state.items():
        np.testing.assert_array_equal(monitored_optimizer[path], value, f"optimizer {path}")


# -- 5. detach ---------------------------------------------------------------------------------


def module_classes(model):
    from flax import nnx

    return {path: type(module) for path, module in nnx.iter_modules(model)}


def module_attributes(model):
    """For every module (by path): its instance attribute names."""
    from flax import nnx

    return {path: set(vars(module)) for path, module in nnx.iter_modules(model)}


def test_detach_restores_classes_keeps_params_and_records_nothing_afterwards(jax):
    import jax.numpy as jnp
    from flax import nnx

    model = nested()
    optimizer = sgd(model, momentum=0.9)
    classes = module_classes(model)
    attributes = module_attributes(model)
    optimizer_class = type(optimizer)
    seen = recorders(*ARRAY_KINDS, K.LOSS)
    monitor = ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[])
    assert type(optimizer) is not optimizer_class
    assert any(cls is not classes[path] for path, cls in module_classes(model).items())
    jitted = train_step(jitted=True)
    train(model, optimizer, jitted, vector_batch, steps=2, monitor=monitor)
    params = all_leaves(model)
    monitor.detach()

    current = module_classes(model)
    assert set(current) == set(classes)
    for path, cls in classes.items():
        assert current[path] is cls, path
    assert type(optimizer) is optimizer_class
    assert module_attributes(model) == attributes
    assert set(all_leaves(model)) == set(params)
    for path, value in all_leaves(model).items():
        np.testing.assert_array_equal(value, params[path], path)

    calls = {kind: len(metric.seen) for kind, metric in seen.items()}
    assert calls[K.ACTIVATIONS] > 0
    emitted = spy_on_emit(monitor)
    eager = train(model, optimizer, train_step(jitted=False), vector_batch, steps=1,
                  first_seed=2)
    stale = train(model, optimizer, jitted, vector_batch, steps=2, first_seed=3)
    assert np.all(np.isfinite(eager + stale))
    assert emitted == []
    assert {kind: len(metric.seen) for kind, metric in seen.items()} == calls
    assert monitor.step == 1
    monitor.detach()  # idempotent

    # the detached model trains exactly like a never-monitored one from the same state
    plain = nested(seed=7)
    plain_optimizer = sgd(plain, momentum=0.9)
    nnx.update(plain, nnx.state(model))
    nnx.update(plain_optimizer, nnx.state(optimizer))
    inputs, labels = vector_batch(seed=5)
    loss, _ = jitted(model, optimizer, jnp.asarray(inputs), jnp.asarray(labels))
    plain_loss, _ = train_step(jitted=True)(plain, plain_optimizer,
                                            jnp.asarray(inputs), jnp.asarray(labels))
    assert float(loss) == float(plain_loss)
    plain_leaves = all_leaves(plain)
    for path, value in all_leaves(model).items():
        np.testing.assert_array_equal(value, plain_leaves[path], path)


@STYLES
def test_detach_after_a_gradient_pass_without_an_update_leaves_the_model_as_it_was(jax, jitted):
    """A training pass whose update never comes (the loop stopped, a gradient probe) must not
    leave anything of ikkuna's on the modules once detached."""
    import jax.numpy as jnp
    from flax import nnx

    model = nested()
    optimizer = sgd(model)
    attributes = module_attributes(model)
    seen = recorders(K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.INPUTS, K.OUTPUTS, K.GRADIENTS)
    monitor = ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[])
    train(model, optimizer, train_step(jitted), vector_batch, steps=2, monitor=monitor)
    leaves = all_leaves(model)
    inputs, labels = (jnp.asarray(a) for a in vector_batch(seed=2))

    def gradients(model):
        return nnx.value_and_grad(lambda model: loss_of(model(inputs), labels))(model)

    (nnx.jit(gradients) if jitted else gradients)(model)
    monitor.detach()
    assert module_attributes(model) == attributes
    assert set(all_leaves(model)) == set(leaves)
    assert seen[K.ACTIVATIONS].steps("encoder.dense") == [0, 1]
    train(model, optimizer, train_step(jitted), vector_batch, steps=1, first_seed=3)
    assert module_attributes(model) == attributes


def test_gradient_of_a_closed_over_model_with_respect_to_its_input_works_while_attached(jax):
    """``jax.grad`` of a function closing over the model (a saliency map) is plain JAX that
    works unmonitored; attached, it must give the same values and not fail, every time."""
    import jax.numpy as jnp

    model = mlp()
    optimizer = sgd(model)
    twin = mlp()  # the same seed: the same initial weights
    twin_optimizer = sgd(twin)
    probe = jnp.asarray(vector_batch(seed=9, size=7)[0])
    step = train_step(jitted=True)
    plain_step = train_step(jitted=True)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[recorder(K.ACTIVATIONS)],
                       sinks=[]) as monitor:
        for index in range(3):
            inputs, labels = (jnp.asarray(a) for a in vector_batch(seed=index))
            step(model, optimizer, inputs, labels)
            plain_step(twin, twin_optimizer, inputs, labels)
            saliency = jax.grad(lambda x: model(x).sum())(probe)
            wanted = jax.grad(lambda x: twin(x).sum())(probe)
            np.testing.assert_array_equal(np.asarray(saliency), np.asarray(wanted))
            assert monitor.step == index
    np.testing.assert_array_equal(np.asarray(model.head.kernel[...]),
                                  np.asarray(twin.head.kernel[...]))


def test_a_step_jitted_over_split_state_while_attached_records_nothing_after_detach(jax):
    """``jax.jit`` over split state keeps the graphdef (and so the patched classes) it was
    made with: called after detach, its callbacks must do nothing and it must not fail."""
    import jax.numpy as jnp
    from flax import nnx

    model = mlp()
    optimizer = sgd(model)
    seen = recorders(K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.GRADIENTS, K.WEIGHTS, K.INPUTS)
    monitor = ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[])
    graphdef, state = nnx.split((model, optimizer))
    eager_step = train_step(jitted=False)

    @jax.jit
    def pure_step(state, inputs, labels):
        model, optimizer = nnx.merge(graphdef, state)
        loss, _ = eager_step(model, optimizer, inputs, labels)
        return loss, nnx.state((model, optimizer))

    for seed in range(2):
        inputs, labels = vector_batch(seed)
        loss, state = pure_step(state, jnp.asarray(inputs), jnp.asarray(labels))
    assert monitor.step == 1
    monitor.detach()  # delivers the last step
    assert seen[K.ACTIVATIONS].steps("dense1") == [0, 1]
    assert seen[K.GRADIENTS].steps("head", "weight") == [0, 1]
    calls = {kind: len(metric.seen) for kind, metric in seen.items()}
    emitted = spy_on_emit(monitor)
    before = state
    for seed in range(2, 4):
        inputs, labels = vector_batch(seed)
        loss, state = pure_step(state, jnp.asarray(inputs), jnp.asarray(labels))
    assert np.isfinite(float(loss))
    assert emitted == []
    assert {kind: len(metric.seen) for kind, metric in seen.items()} == calls
    assert monitor.step == 1
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                           nnx.state(nnx.merge(graphdef, before)[0], nnx.Param),
                           nnx.state(nnx.merge(graphdef, state)[0], nnx.Param))
    assert any(jax.tree.leaves(changed))  # the stale step still trains


# -- 6. eval passes ----------------------------------------------------------------------------


@STYLES
def test_eval_passes_between_steps_record_nothing_and_keep_the_step(jax, jitted):
    import jax.numpy as jnp
    from flax import nnx

    model = small_cnn()
    optimizer = sgd(model)
    seen = recorders(K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.INPUTS, K.OUTPUTS, K.GRADIENTS)
    monitor = ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[])
    emitted = spy_on_emit(monitor)
    step = train_step(jitted)
    evaluate = nnx.jit(lambda model, x: model(x))
    evaluation = jnp.asarray(image_batch(seed=99, size=7)[0])
    for index in range(3):
        train(model, optimizer, step, image_batch, steps=1, monitor=monitor, first_seed=index)
        assert monitor.step == index
        emitted.clear()
        model(evaluation)  # outside grad, still in train mode
        evaluate(model, evaluation)
        model.eval()
        model(evaluation)
        evaluate(model, evaluation)
        model.train()
        assert emitted == [], index
        assert monitor.step == index
    monitor.detach()
    for kind, metric in seen.items():
        assert sorted({s.step for s in metric.seen}) == [0, 1, 2], kind
        if kind != K.GRADIENTS:
            assert all(s.values.shape[0] == BATCH for s in metric.seen), kind
    assert seen[K.ACTIVATIONS].steps("conv") == [0, 1, 2]


# -- 7. schedules and layer filters ------------------------------------------------------------


@STYLES
def test_every_two_records_only_even_steps(jax, jitted):
    model = mlp()
    optimizer = sgd(model)
    seen = recorders(*ARRAY_KINDS, K.LOSS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[],
                       every=2) as monitor:
        train(model, optimizer, train_step(jitted), vector_batch, steps=5, monitor=monitor)
        assert monitor.step == 4
    for kind, metric in seen.items():
        assert sorted({s.step for s in metric.seen}) == [0, 2, 4], kind
    assert seen[K.ACTIVATIONS].steps("dense2") == [0, 2, 4]
    assert seen[K.UPDATES].steps("head", "bias") == [0, 2, 4]


@STYLES
def test_layers_glob_restricts_the_recorded_layers(jax, jitted):
    model = mlp()
    optimizer = sgd(model)
    seen = recorders(K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.GRADIENTS, K.WEIGHTS, K.UPDATES)
    with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[],
                       layers="dense*") as monitor:
        train(model, optimizer, train_step(jitted), vector_batch, steps=2, monitor=monitor)
        assert [layer.name for layer in monitor.layers] == ["dense1", "dense2"]
    for kind, metric in seen.items():
        assert metric.seen_layers() == {"dense1", "dense2"}, kind
        assert sorted({s.step for s in metric.seen}) == [0, 1], kind
    assert type(model.head).__name__ == "Linear"


# -- 8. errors ---------------------------------------------------------------------------------


def test_attach_without_an_nnx_optimizer_is_a_type_error_naming_it(jax):
    import optax

    model = mlp()
    classes = module_classes(model)
    with pytest.raises(TypeError, match=r"nnx\.Optimizer"):
        ikkuna.attach(model, sinks=[])
    with pytest.raises(TypeError, match=r"nnx\.Optimizer"):
        ikkuna.attach(model, optimizer=optax.sgd(0.1), sinks=[])
    assert all(cls is classes[path] for path, cls in module_classes(model).items())


def test_a_non_model_is_refused_naming_flax_nnx_module(jax):
    from flax import nnx  # noqa: F401 - the adapter recognizes models once flax is imported

    with pytest.raises(ikkuna.UnsupportedModelError, match=r"flax\.nnx\.Module"):
        ikkuna.attach(object(), sinks=[])
    with pytest.raises(ikkuna.UnsupportedModelError, match=r"flax\.nnx\.Module"):
        ikkuna.attach(object(), framework="jax", sinks=[])


# -- 9. a failing metric -----------------------------------------------------------------------


class ExplodingMetric(ikkuna.Metric):
    """Raises on every call."""

    name = "exploding_metric"
    needs = ("weights",)

    def compute(self, group):
        raise ValueError("boom in the metric")


@STYLES
def test_a_metric_that_raises_is_disabled_with_one_warning_and_training_completes(jax, jitted):
    model = mlp()
    optimizer = sgd(model)
    steps = 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor = ikkuna.attach(model, optimizer=optimizer,
                                metrics=[ExplodingMetric(), "weight_norm"])
        losses = train(model, optimizer, train_step(jitted), vector_batch, steps, monitor)
        monitor.detach()
    runtime_warnings = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime_warnings) == 1, [str(w.message) for w in runtime_warnings]
    assert "exploding_metric" in str(runtime_warnings[0].message)
    assert len(losses) == steps and np.all(np.isfinite(losses))
    assert monitor.step == steps - 1
    assert [p.source for p in monitor.problems] == ["metric:exploding_metric"]
    with ikkuna.open_run(monitor.run) as run:
        assert "exploding_metric" not in run.metrics()
        np.testing.assert_array_equal(run.series("weight_norm", "head", "weight").steps,
                                      range(steps))


def test_adamw_with_batchnorm_is_bitwise_identical_for_every_metric_that_needs_no_gradients(jax):
    """Handing gradients out of a compiled step can change XLA's fusion of the optimizer
    (README, "Known limits"); every other kind must leave training bitwise identical."""
    import optax
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(8, 16, rngs=rngs)
            self.bn = nnx.BatchNorm(16, rngs=rngs)
            self.l2 = nnx.Linear(16, 4, rngs=rngs)

        def __call__(self, x):
            return self.l2(nnx.relu(self.bn(self.l1(x))))

    gradient_free = [name for name in ALL_METRIC_NAMES if "gradient" not in name]

    def run(attached):
        model = Net(nnx.Rngs(0))
        optimizer = nnx.Optimizer(model, optax.adamw(1e-2, weight_decay=0.1), wrt=nnx.Param)

        step = nnx.jit(cross_entropy_step())
        monitor = ikkuna.attach(model, optimizer=optimizer, metrics=gradient_free) if attached else None
        rng = np.random.default_rng(0)
        losses = []
        for _ in range(15):
            x = jax.numpy.asarray(rng.normal(size=(32, 8)), jax.numpy.float32)
            y = jax.numpy.asarray(rng.integers(0, 4, 32))
            losses.append(float(step(model, optimizer, x, y)))
        if monitor is not None:
            monitor.detach()
        return losses, [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(nnx.state(model))]

    losses, params = run(False)
    monitored_losses, monitored_params = run(True)
    assert monitored_losses == losses
    for plain, monitored in zip(params, monitored_params, strict=True):
        np.testing.assert_array_equal(monitored, plain)


def test_model_and_optimizer_updates_without_a_model_argument(jax):
    import optax
    from flax import nnx

    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    optimizer = nnx.ModelAndOptimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    seen = recorders(K.WEIGHTS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[]):
        for _ in range(2):
            grads = nnx.grad(lambda m: m(jax.numpy.ones((4, 3))).sum())(model)
            optimizer.update(grads)
    jax.effects_barrier()
    assert sorted({s.step for s in seen[K.WEIGHTS].seen}) == [0, 1]


def test_a_second_monitor_on_the_same_nnx_model_is_refused(jax):
    import optax
    from flax import nnx

    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    first = ikkuna.attach(model, optimizer=optimizer, sinks=[])
    with pytest.raises(ValueError, match="already monitored"):
        ikkuna.attach(model, optimizer=optimizer, sinks=[])
    assert first.attached
    first.detach()
    assert type(model) is nnx.Linear
    ikkuna.attach(model, optimizer=optimizer, sinks=[]).detach()
