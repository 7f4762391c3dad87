"""Small Flax NNX models, batches and training steps for the JAX adapter tests.

Nothing here imports jax, flax or optax at import time: the model classes are made on first
use (after the test's ``jax`` fixture has imported them or skipped), so the test modules
collect (and skip) where JAX is not installed.

Every model has ``LAYERS`` (the dotted names of its layers with parameters, in forward order)
and ``forward(x, taps=None, collect=None)``: ``taps`` maps a layer name to an array added to
that layer's output (the gradient of the loss with respect to a zero tap is the gradient with
respect to the layer's output), ``collect`` receives every layer's output. ``__call__(x)`` is
``forward(x)``, which is what the monitored training steps call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

CLASSES = 3
BATCH = 4
IMAGE = (5, 5, 3)  # height, width, channels (NHWC)
CONV_CHANNELS = 4
FEATURES = 4
HIDDEN = 8
SEQUENCE = 3
VOCABULARY = 10
EMBEDDING = 4
LEARNING_RATE = 0.1


# -- models ------------------------------------------------------------------------------------


@functools.cache
def _classes() -> SimpleNamespace:
    from flax import nnx

    def tap(name: str, value: Any, taps: dict | None, collect: dict | None) -> Any:
        if taps is not None:
            value = value + taps[name]
        if collect is not None:
            collect[name] = value
        return value

    class Model(nnx.Module):
        LAYERS: tuple[str, ...] = ()

        def __call__(self, x: Any) -> Any:
            return self.forward(x)

    class SmallCNN(Model):
        """Conv ``conv`` (3x3, SAME) -> BatchNorm ``norm`` -> relu -> flatten -> Linear ``head``."""

        LAYERS = ("conv", "norm", "head")

        def __init__(self, rngs: Any) -> None:
            self.conv = nnx.Conv(IMAGE[2], CONV_CHANNELS, (3, 3), padding="SAME", rngs=rngs)
            self.norm = nnx.BatchNorm(CONV_CHANNELS, rngs=rngs)
            self.head = nnx.Linear(IMAGE[0] * IMAGE[1] * CONV_CHANNELS, CLASSES, rngs=rngs)

        def forward(self, x: Any, taps: dict | None = None, collect: dict | None = None) -> Any:
            x = tap("conv", self.conv(x), taps, collect)
            x = tap("norm", self.norm(x), taps, collect)
            x = nnx.relu(x).reshape(x.shape[0], -1)
            return tap("head", self.head(x), taps, collect)

    class MLP(Model):
        """Linear ``dense1`` -> relu -> Linear ``dense2`` -> relu -> Linear ``head``."""

        LAYERS = ("dense1", "dense2", "head")

        def __init__(self, rngs: Any) -> None:
            self.dense1 = nnx.Linear(FEATURES, HIDDEN, rngs=rngs)
            self.dense2 = nnx.Linear(HIDDEN, HIDDEN, rngs=rngs)
            self.head = nnx.Linear(HIDDEN, CLASSES, rngs=rngs)

        def forward(self, x: Any, taps: dict | None = None, collect: dict | None = None) -> Any:
            x = nnx.relu(tap("dense1", self.dense1(x), taps, collect))
            x = nnx.relu(tap("dense2", self.dense2(x), taps, collect))
            return tap("head", self.head(x), taps, collect)

    class EmbeddingModel(Model):
        """Embed ``embed`` -> flatten -> Linear ``head``; input: integer ids (batch, SEQUENCE)."""

        LAYERS = ("embed", "head")

        def __init__(self, rngs: Any) -> None:
            self.embed = nnx.Embed(VOCABULARY, EMBEDDING, rngs=rngs)
            self.head = nnx.Linear(SEQUENCE * EMBEDDING, CLASSES, rngs=rngs)

        def forward(self, x: Any, taps: dict | None = None, collect: dict | None = None) -> Any:
            x = tap("embed", self.embed(x), taps, collect)
            return tap("head", self.head(x.reshape(x.shape[0], -1)), taps, collect)

    class Encoder(nnx.Module):
        """Linear ``dense`` -> relu -> BatchNorm ``norm``."""

        def __init__(self, rngs: Any) -> None:
            self.dense = nnx.Linear(FEATURES, HIDDEN, rngs=rngs)
            self.norm = nnx.BatchNorm(HIDDEN, rngs=rngs)

        def __call__(self, x: Any) -> Any:
            return self.norm(nnx.relu(self.dense(x)))

    class Nested(Model):
        """An ``encoder`` (module attribute holding a module) and an nnx.Sequential ``block``
        of Linear, relu, Linear. Layers: ``encoder.dense``, ``encoder.norm``,
        ``block.layers.0``, ``block.layers.2``.
        """

        LAYERS = ("encoder.dense", "encoder.norm", "block.layers.0", "block.layers.2")

        def __init__(self, rngs: Any) -> None:
            self.encoder = Encoder(rngs)
            self.block = nnx.Sequential(
                nnx.Linear(HIDDEN, HIDDEN, rngs=rngs), nnx.relu,
                nnx.Linear(HIDDEN, CLASSES, rngs=rngs),
            )

        def forward(self, x: Any, taps: dict | None = None, collect: dict | None = None) -> Any:
            x = tap("encoder.dense", self.encoder.dense(x), taps, collect)
            x = tap("encoder.norm", self.encoder.norm(nnx.relu(x)), taps, collect)
            x = tap("block.layers.0", self.block.layers[0](x), taps, collect)
            return tap("block.layers.2", self.block.layers[2](nnx.relu(x)), taps, collect)

    return SimpleNamespace(SmallCNN=SmallCNN, MLP=MLP, EmbeddingModel=EmbeddingModel,
                           Nested=Nested)


def small_cnn(seed: int = 0) -> Any:
    from flax import nnx

    return _classes().SmallCNN(nnx.Rngs(seed))


def mlp(seed: int = 0) -> Any:
    from flax import nnx

    return _classes().MLP(nnx.Rngs(seed))


def embedding_model(seed: int = 0) -> Any:
    from flax import nnx

    return _classes().EmbeddingModel(nnx.Rngs(seed))


def nested(seed: int = 0) -> Any:
    from flax import nnx

    return _classes().Nested(nnx.Rngs(seed))


def sgd(model: Any, momentum: float | None = None) -> Any:
    """An ``nnx.Optimizer`` over the model's ``nnx.Param``s with ``optax.sgd``, its learning
    rate made readable (the ``learning_rate`` metric) by ``optax.inject_hyperparams``."""
    import optax
    from flax import nnx

    transformation = optax.inject_hyperparams(optax.sgd)(learning_rate=LEARNING_RATE,
                                                         momentum=momentum)
    return nnx.Optimizer(model, transformation, wrt=nnx.Param)


def module_at(model: Any, dotted: str) -> Any:
    """The submodule at a dotted attribute path (``block.layers.0``)."""
    module = model
    for part in dotted.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module


# -- batches -----------------------------------------------------------------------------------


def image_batch(seed: int, size: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    images = generator.standard_normal((size, *IMAGE)).astype(np.float32)
    return images, generator.integers(0, CLASSES, size).astype(np.int32)


def vector_batch(seed: int, size: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    vectors = generator.standard_normal((size, FEATURES)).astype(np.float32)
    return vectors, generator.integers(0, CLASSES, size).astype(np.int32)


def token_batch(seed: int, size: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    tokens = generator.integers(0, VOCABULARY, (size, SEQUENCE)).astype(np.int32)
    return tokens, generator.integers(0, CLASSES, size).astype(np.int32)


# -- training steps ----------------------------------------------------------------------------


def loss_of(logits: Any, labels: Any) -> Any:
    import optax

    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def train_step(jitted: bool, on_trace: Callable[[], None] | None = None) -> Callable[..., Any]:
    """``step(model, optimizer, inputs, labels) -> (loss, logits)`` as people write it:
    ``nnx.value_and_grad`` then ``optimizer.update``, under ``nnx.jit`` if ``jitted``.
    ``on_trace`` is called each time the step's Python body runs (once per trace when jitted).
    """
    from flax import nnx

    def step(model: Any, optimizer: Any, inputs: Any, labels: Any) -> tuple[Any, Any]:
        if on_trace is not None:
            on_trace()

        def loss_function(model: Any) -> tuple[Any, Any]:
            logits = model(inputs)
            return loss_of(logits, labels), logits

        (loss, logits), grads = nnx.value_and_grad(loss_function, has_aux=True)(model)
        optimizer.update(model, grads)
        return loss, logits

    return nnx.jit(step) if jitted else step


def reference_step(model: Any, inputs: Any, labels: Any) -> dict[str, Any]:
    """On an unmonitored ``model``, independently of ikkuna: every layer's output and
    d loss / d output (through zero taps), d loss / d param (``nnx.value_and_grad``), the loss
    and the logits. ``model`` is mutated only as a training forward pass mutates it.
    """
    import jax.numpy as jnp
    from flax import nnx

    shapes: dict[str, Any] = {}
    nnx.clone(model).forward(jnp.asarray(inputs), collect=shapes)  # the clone's stats change
    taps = {name: jnp.zeros_like(value) for name, value in shapes.items()}

    def loss_function(model: Any, taps: dict) -> tuple[Any, tuple[dict, Any]]:
        outputs: dict[str, Any] = {}
        logits = model.forward(jnp.asarray(inputs), taps=taps, collect=outputs)
        return loss_of(logits, jnp.asarray(labels)), (outputs, logits)

    (loss, (outputs, logits)), (grads, output_grads) = nnx.value_and_grad(
        loss_function, argnums=(0, 1), has_aux=True)(model, taps)
    return {
        "activations": {name: np.asarray(value) for name, value in outputs.items()},
        "output_gradients": {name: np.asarray(value) for name, value in output_grads.items()},
        "gradients": grads,
        "loss": float(loss),
        "outputs": np.asarray(logits),
    }


# -- parameters by layer and role --------------------------------------------------------------


def by_role(state: Any, layers: list[Any]) -> dict[tuple[str, str], np.ndarray]:
    """(layer name, role) -> a numpy copy, for each leaf of an ``nnx.State`` of Params
    (a model's params or gradients), using the monitor's LayerInfos for the roles."""
    from flax import nnx

    infos = {layer.name: layer for layer in layers}
    found = {}
    for path, variable in nnx.to_flat_state(state):
        name, native = ".".join(str(part) for part in path[:-1]), str(path[-1])
        found[(name, infos[name].params[native])] = np.array(variable[...], copy=True)
    return found


def params_by_role(model: Any, layers: list[Any]) -> dict[tuple[str, str], np.ndarray]:
    from flax import nnx

    return by_role(nnx.state(model, nnx.Param), layers)


def all_leaves(node: Any) -> dict[str, np.ndarray]:
    """Every leaf of ``nnx.state(node)`` (params, batch statistics, optimizer state...) by
    path, as numpy copies."""
    from flax import nnx

    return {"/".join(str(part) for part in path): np.array(variable[...], copy=True)
            for path, variable in nnx.to_flat_state(nnx.state(node))}


def host_callbacks_in_parts_of(monkeypatch: Any, part_bytes: int) -> list[int]:
    """Make the JAX adapters hand values to the host in parts of at most ``part_bytes``; the
    returned list grows by one for each host callback they place from now on."""
    from ikkuna.adapters import jax as jax_adapter
    from ikkuna.adapters import jax_host

    monkeypatch.setattr(jax_host, "PART_BYTES", part_bytes)
    placed: list[int] = []
    original = jax_host.to_host

    def to_host(callback: Callable[..., None], *args: Any) -> None:
        placed.append(1)
        original(callback, *args)

    monkeypatch.setattr(jax_adapter, "to_host", to_host)  # markers, values of a pass
    monkeypatch.setattr(jax_host, "to_host", to_host)  # the parts of a step
    return placed
