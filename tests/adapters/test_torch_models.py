"""The torch adapter on small real models: every event kind, its values, layouts and dtypes."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import ikkuna
from ikkuna.core import kinds as K
from tests.adapters.recording import (
    ALL_METRIC_NAMES,
    ARRAY_KINDS,
    EXPECTED_METRIC_NAMES,
    recorder,
    recorders,
)
from tests.adapters.torch_models import (
    BATCH,
    deeper_cnn,
    embedding_model,
    image_batch,
    shared_linear_model,
    small_cnn,
    token_batch,
    train_step,
    vector_batch,
)

STEPS = 3
MODELS = pytest.mark.parametrize(
    "build, batch", [(small_cnn, image_batch), (embedding_model, token_batch)],
    ids=["cnn", "embedding"],
)


def parameters_by_role(model, monitor) -> dict[tuple[str, str], object]:
    """(layer name, role) -> the torch parameter, from the monitor's LayerInfos."""
    modules = dict(model.named_modules())
    found = {}
    for layer in monitor.layers:
        module = modules["" if layer.name == "model" else layer.name]
        for native, role in layer.params.items():
            found[(layer.name, role)] = getattr(module, native)
    return found


def numpy_of(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().copy()


def reference_step(torch, reference, optimizer, layer_names, inputs, labels):
    """A step of an unmonitored copy: each layer's output and d loss / d output by autograd."""
    modules = dict(reference.named_modules())
    outputs = {}
    handles = [
        modules[name].register_forward_hook(
            lambda module, args, output, name=name: outputs.__setitem__(name, output))
        for name in layer_names
    ]
    try:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(reference(inputs), labels)
        values = {name: numpy_of(outputs[name]) for name in layer_names}
        gradients = torch.autograd.grad(loss, [outputs[n] for n in layer_names], retain_graph=True)
        loss.backward()
        optimizer.step()
    finally:
        for handle in handles:
            handle.remove()
    return values, {name: numpy_of(g) for name, g in zip(layer_names, gradients)}


@MODELS
def test_every_event_kind_carries_the_value_torch_computed(torch, build, batch):
    model = build(torch)
    reference = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    reference_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    seen = recorders(*ARRAY_KINDS, K.LOSS)
    monitor = ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[])
    layer_names = [layer.name for layer in monitor.layers]
    parameters = parameters_by_role(model, monitor)
    expected = []
    for step in range(STEPS):
        inputs, labels = batch(torch, seed=step)
        activations, output_gradients = reference_step(
            torch, reference, reference_optimizer, layer_names, inputs, labels)
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = torch.nn.functional.cross_entropy(outputs, labels)
        loss.backward()
        gradients = {key: numpy_of(p.grad) for key, p in parameters.items()}
        before = {key: numpy_of(p) for key, p in parameters.items()}
        optimizer.step()
        after = {key: numpy_of(p) for key, p in parameters.items()}
        monitor.log(labels=labels, loss=loss)
        expected.append({
            K.ACTIVATIONS: activations, K.OUTPUT_GRADIENTS: output_gradients,
            K.GRADIENTS: gradients, K.WEIGHTS: after,
            K.UPDATES: {key: after[key] - before[key] for key in after},
            K.INPUTS: numpy_of(inputs), K.OUTPUTS: numpy_of(outputs),
            K.LABELS: numpy_of(labels), K.LOSS: loss.item(),
        })
    monitor.detach()

    for step, wanted in enumerate(expected):
        for name in layer_names:
            for kind in (K.ACTIVATIONS, K.OUTPUT_GRADIENTS):
                np.testing.assert_array_equal(
                    seen[kind].at(step, name).values, wanted[kind][name],
                    err_msg=f"{kind} of {name} at step {step}")
        for (name, role) in parameters:
            for kind in (K.GRADIENTS, K.WEIGHTS, K.UPDATES):
                np.testing.assert_array_equal(
                    seen[kind].at(step, name, role).values, wanted[kind][(name, role)],
                    err_msg=f"{kind} of {name}.{role} at step {step}")
        for kind in (K.INPUTS, K.OUTPUTS, K.LABELS):
            np.testing.assert_array_equal(seen[kind].at(step).values, wanted[kind])
        assert seen[K.LOSS].at(step).value == wanted[K.LOSS]
    for kind, metric in seen.items():
        assert sorted({s.step for s in metric.seen}) == list(range(STEPS)), kind


@MODELS
def test_every_layer_and_parameter_is_seen_once_per_step(torch, build, batch):
    model = build(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = recorders(*ARRAY_KINDS, K.LOSS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[]) as m:
        for step in range(STEPS):
            train_step(torch, model, optimizer, *batch(torch, seed=step), monitor=m)
        parameters = parameters_by_role(model, m)
        layer_names = [layer.name for layer in m.layers]
    steps = list(range(STEPS))
    for name in layer_names:
        assert seen[K.ACTIVATIONS].steps(name) == steps
        assert seen[K.OUTPUT_GRADIENTS].steps(name) == steps
    for name, role in parameters:
        for kind in (K.GRADIENTS, K.WEIGHTS, K.UPDATES):
            assert seen[kind].steps(name, role) == steps, (kind, name, role)
    for kind in (K.INPUTS, K.OUTPUTS, K.LABELS, K.LOSS):
        assert seen[kind].steps() == steps, kind


def test_layer_names_are_dotted_paths_of_nested_modules(torch):
    model = small_cnn(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    activations = recorder(K.ACTIVATIONS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[activations], sinks=[]) as monitor:
        train_step(torch, model, optimizer, *image_batch(torch, seed=0))
        names = [layer.name for layer in monitor.layers]
    assert names == ["encoder.0", "encoder.1", "encoder.2", "flatten", "head"]
    assert activations.seen_layers() == set(names)


def test_activation_layouts_are_channels_first_for_images_and_last_otherwise(torch):
    cnn = small_cnn(torch)
    optimizer = torch.optim.SGD(cnn.parameters(), lr=0.1)
    activations = recorder(K.ACTIVATIONS)
    with ikkuna.attach(cnn, optimizer=optimizer, metrics=[activations], sinks=[]):
        train_step(torch, cnn, optimizer, *image_batch(torch, seed=0))
    for name in ("encoder.0", "encoder.1", "encoder.2"):
        seen = activations.at(0, name)
        assert seen.values.shape == (BATCH, 4, 5, 5)
        assert (seen.layout.batch_axis, seen.layout.channel_axis) == (0, 1), name
    for name, width in (("flatten", 100), ("head", 3)):
        seen = activations.at(0, name)
        assert seen.values.shape == (BATCH, width)
        assert (seen.layout.batch_axis, seen.layout.channel_axis) == (0, -1), name

    model = embedding_model(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    activations = recorder(K.ACTIVATIONS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[activations], sinks=[]):
        train_step(torch, model, optimizer, *token_batch(torch, seed=0))
    embedded = activations.at(0, "embed")
    assert embedded.values.shape == (BATCH, 3, 4)
    assert (embedded.layout.batch_axis, embedded.layout.channel_axis) == (0, -1)


def test_activations_before_an_inplace_relu_are_the_layers_own_output(torch):
    model = small_cnn(torch, inplace=True)
    reference = small_cnn(torch, inplace=False)
    reference.load_state_dict(model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    reference_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    seen = recorders(K.ACTIVATIONS, K.OUTPUT_GRADIENTS)
    names = ["encoder.0", "encoder.1", "encoder.2", "flatten", "head"]
    with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[]):
        inputs, labels = image_batch(torch, seed=0)
        activations, output_gradients = reference_step(
            torch, reference, reference_optimizer, names, inputs, labels)
        train_step(torch, model, optimizer, inputs, labels)
    norm_output = seen[K.ACTIVATIONS].at(0, "encoder.1").values
    assert (norm_output < 0).any(), "the norm layer's output was recorded after the ReLU"
    for name in names:
        np.testing.assert_allclose(seen[K.ACTIVATIONS].at(0, name).values, activations[name],
                                   rtol=1e-6, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(seen[K.OUTPUT_GRADIENTS].at(0, name).values,
                                   output_gradients[name], rtol=1e-6, atol=1e-7, err_msg=name)


# -- layouts and layer infos -------------------------------------------------------------------


def test_linear_and_conv_weights_have_output_units_first(torch):
    model = small_cnn(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    weights = recorder(K.WEIGHTS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[weights], sinks=[]):
        train_step(torch, model, optimizer, *image_batch(torch, seed=0))
    head = weights.at(0, "head", "weight")
    assert (head.layout.out_axis, head.layout.in_axis) == (0, 1)
    np.testing.assert_array_equal(head.matrix, numpy_of(model.head.weight))
    conv = weights.at(0, "encoder.0", "weight")
    assert (conv.layout.out_axis, conv.layout.in_axis) == (0, 1)
    np.testing.assert_array_equal(conv.matrix, numpy_of(model.encoder[0].weight).reshape(4, -1))
    bias = weights.at(0, "head", "bias")
    assert (bias.layout.out_axis, bias.layout.in_axis) == (0, None)
    np.testing.assert_array_equal(bias.matrix, numpy_of(model.head.bias).reshape(3, 1))


def test_embedding_weight_has_output_units_on_axis_1(torch):
    model = embedding_model(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = recorders(K.WEIGHTS, K.GRADIENTS, K.UPDATES)
    with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[]):
        train_step(torch, model, optimizer, *token_batch(torch, seed=0))
    for kind in (K.WEIGHTS, K.GRADIENTS, K.UPDATES):
        embed = seen[kind].at(0, "embed", "weight")
        assert (embed.layout.out_axis, embed.layout.in_axis) == (1, 0), kind
        assert embed.matrix.shape == (4, 10), kind
    np.testing.assert_array_equal(seen[K.WEIGHTS].at(0, "embed", "weight").matrix,
                                  numpy_of(model.embed.weight).T)


def test_layer_infos_give_kind_and_neutral_parameter_roles(torch):
    cnn = small_cnn(torch)
    optimizer = torch.optim.SGD(cnn.parameters(), lr=0.1)
    with ikkuna.attach(cnn, optimizer=optimizer, metrics=[], sinks=[]) as monitor:
        layers = {layer.name: layer for layer in monitor.layers}
    assert {name: layer.kind for name, layer in layers.items()} == {
        "encoder.0": "conv2d", "encoder.1": "norm", "encoder.2": "other", "flatten": "other",
        "head": "dense",
    }
    for name in ("encoder.0", "encoder.1", "head"):
        assert dict(layers[name].params) == {"weight": "weight", "bias": "bias"}, name
        assert layers[name].framework == "torch"
    assert dict(layers["encoder.2"].params) == {}

    model = embedding_model(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[], sinks=[]) as monitor:
        layers = {layer.name: layer for layer in monitor.layers}
    assert {name: layer.kind for name, layer in layers.items()} == {
        "embed": "embedding", "norm": "norm", "flatten": "other", "head": "dense",
    }
    assert dict(layers["embed"].params) == {"weight": "weight"}


def test_a_model_that_is_one_layer_is_named_model(torch):
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    weights = recorder(K.WEIGHTS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[weights], sinks=[]) as monitor:
        train_step(torch, model, optimizer, *vector_batch(torch, seed=0))
        assert [(layer.name, layer.kind) for layer in monitor.layers] == [("model", "dense")]
    assert {(s.layer, s.param) for s in weights.seen} == {("model", "weight"), ("model", "bias")}


# -- a module called twice ---------------------------------------------------------------------


def test_a_layer_called_twice_gives_one_call_with_both_batches_joined(torch):
    model = shared_linear_model(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = recorders(K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.GRADIENTS)
    outputs: list[np.ndarray] = []
    model.shared.register_forward_hook(lambda module, args, out: outputs.append(numpy_of(out)))
    with ikkuna.attach(model, optimizer=optimizer, metrics=list(seen.values()), sinks=[]):
        for step in range(STEPS):
            first, labels = vector_batch(torch, seed=step)
            second, _ = vector_batch(torch, seed=100 + step)
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(first, second), labels)
            loss.backward()
            optimizer.step()
    assert len(outputs) == 2 * STEPS
    assert seen[K.ACTIVATIONS].steps("shared") == list(range(STEPS))
    assert seen[K.OUTPUT_GRADIENTS].steps("shared") == list(range(STEPS))
    assert seen[K.GRADIENTS].steps("shared", "weight") == list(range(STEPS))
    for step in range(STEPS):
        joined = seen[K.ACTIVATIONS].at(step, "shared")
        assert joined.layout.batch_axis == 0
        np.testing.assert_array_equal(
            joined.values, np.concatenate(outputs[2 * step:2 * step + 2], axis=0))
        gradients = seen[K.OUTPUT_GRADIENTS].at(step, "shared").values
        assert gradients.shape == (2 * BATCH, 3)
        # both calls get the same d loss / d output (the outputs are summed)
        np.testing.assert_array_equal(gradients[:BATCH], gradients[BATCH:])


# -- non-interference --------------------------------------------------------------------------


def train_seeded_cnn(torch, steps: int, monitored: bool):
    """Train ``deeper_cnn`` from seed 0 with SGD+momentum; optionally with every built-in metric."""
    torch.manual_seed(0)
    model = deeper_cnn(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    monitor = None
    if monitored:
        monitor = ikkuna.attach(model, optimizer=optimizer, metrics=ALL_METRIC_NAMES)
    losses = []
    for step in range(steps):
        loss = train_step(torch, model, optimizer, *image_batch(torch, seed=step), monitor=monitor)
        losses.append(loss.detach().clone())
    if monitor is not None:
        monitor.detach()
    return losses, model, optimizer, monitor


def test_monitoring_every_builtin_metric_leaves_training_bitwise_identical(torch):
    steps = 20
    plain_losses, plain, plain_optimizer, _ = train_seeded_cnn(torch, steps, monitored=False)
    losses, model, optimizer, monitor = train_seeded_cnn(torch, steps, monitored=True)

    assert [loss.item() for loss in losses] == [loss.item() for loss in plain_losses]
    assert all(torch.equal(a, b) for a, b in zip(losses, plain_losses))
    state, plain_state = model.state_dict(), plain.state_dict()
    assert state.keys() == plain_state.keys()
    for key in state:
        assert torch.equal(state[key], plain_state[key]), key
    momentum = [s["momentum_buffer"] for s in optimizer.state.values()]
    plain_momentum = [s["momentum_buffer"] for s in plain_optimizer.state.values()]
    assert len(momentum) == len(plain_momentum) == len(list(model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(momentum, plain_momentum))

    # and the monitor did watch: every built-in metric recorded, every step
    assert monitor.problems == []
    with ikkuna.open_run(monitor.run) as run:
        assert set(run.metrics()) >= EXPECTED_METRIC_NAMES
        assert list(run.series("weight_norm", "0", "weight").steps) == list(range(steps))
        assert list(run.series("activation_mean", "2").steps) == list(range(steps))
        assert len(run.histograms("gradient_histogram", "7", "weight")) == steps
        np.testing.assert_array_equal(run.series("loss").values,
                                      [loss.item() for loss in losses])


# -- dtypes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype_name, numpy_dtype", [
    ("bfloat16", np.float32), ("float16", np.float16), ("float64", np.float64),
])
def test_low_and_high_precision_models_convert_to_numpy(torch, dtype_name, numpy_dtype):
    dtype = getattr(torch, dtype_name)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
                                torch.nn.Linear(8, 3)).to(dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = recorders(K.WEIGHTS, K.GRADIENTS, K.UPDATES, K.ACTIVATIONS, K.OUTPUT_GRADIENTS)
    metrics = [*seen.values(), "weight_norm", "activation_histogram"]
    with ikkuna.attach(model, optimizer=optimizer, metrics=metrics) as monitor:
        for step in range(2):
            inputs, labels = vector_batch(torch, seed=step)
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(inputs.to(dtype)).float(), labels)
            loss.backward()
            optimizer.step()
    assert monitor.problems == []
    for kind, recorded in seen.items():
        assert recorded.seen, kind
        for call in recorded.seen:
            assert call.dtype == dtype_name, (kind, call.dtype)
            assert call.values.dtype == numpy_dtype, (kind, call.values.dtype)
            assert np.isfinite(call.values).all(), kind
    weight = seen[K.WEIGHTS].at(1, "0", "weight").values
    np.testing.assert_array_equal(weight, model[0].weight.detach().to(torch.float64).numpy())
    with ikkuna.open_run(monitor.run) as run:
        norms = run.series("weight_norm", "0", "weight")
        assert list(norms.steps) == [0, 1]
        assert np.isfinite(norms.values).all()
        assert norms.values[-1] == pytest.approx(np.linalg.norm(weight.astype(np.float64)),
                                                 rel=1e-6)


def test_sparse_embedding_gradients_arrive_as_dense_numpy(torch):
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4, sparse=True), torch.nn.Flatten(),
                                torch.nn.Linear(12, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    gradients = recorder(K.GRADIENTS)
    with ikkuna.attach(model, optimizer=optimizer, metrics=[gradients, "gradient_norm"],
                       sinks=[]) as monitor:
        tokens, labels = token_batch(torch, seed=0)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(tokens), labels).backward()
        expected = model[0].weight.grad.to_dense().numpy().copy()
        optimizer.step()
    assert monitor.problems == []
    np.testing.assert_array_equal(gradients.at(0, "0", "weight").values, expected)
