"""The parity networks in JAX with Flax NNX and optax, jitted or not (imports JAX on use)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import ikkuna
from ikkuna.testing.parity.specs import LEARNING_RATE, Architecture

STYLES = ("jit", "eager")


def build(architecture: Architecture) -> Any:
    """The network as an ``nnx.Module`` with the architecture's weights."""
    import jax.numpy as jnp
    from flax import nnx

    class ReLU(nnx.Module):
        def __call__(self, x):
            return nnx.relu(x)

    class Tanh(nnx.Module):  # named for its activation: LayerInfo.activation is "tanh"
        def __call__(self, x):
            return jnp.tanh(x)

    class GlobalAveragePool(nnx.Module):
        def __call__(self, x):
            return jnp.mean(x, axis=(1, 2))

    class Network(nnx.Module):
        def __init__(self, rngs: Any) -> None:
            self.order = tuple(name for name, _, _ in architecture.layers)
            for name, layer_type, shape in architecture.layers:
                if layer_type == "dense":
                    layer = nnx.Linear(shape[1], shape[0], rngs=rngs)
                elif layer_type == "conv2d":
                    layer = nnx.Conv(shape[1], shape[0], (shape[2], shape[3]), padding="SAME",
                                     rngs=rngs)
                elif layer_type == "relu":
                    layer = ReLU()
                elif layer_type == "tanh":
                    layer = Tanh()
                else:
                    layer = GlobalAveragePool()
                setattr(self, name, layer)

        def __call__(self, x):
            for name in self.order:
                x = getattr(self, name)(x)
            return x

    network = Network(nnx.Rngs(0))
    for name, params in architecture.weights().items():
        kernel = params["weight"]
        kernel = kernel.T if kernel.ndim == 2 else kernel.transpose(2, 3, 1, 0)
        layer = getattr(network, name)
        layer.kernel[...] = jnp.asarray(kernel)
        layer.bias[...] = jnp.asarray(params["bias"])
    return network


def cross_entropy_step() -> Callable[[Any, Any, Any, Any], Any]:
    """A new step function ``step(model, optimizer, inputs, labels) -> loss``: softmax
    cross-entropy with integer labels, ``nnx.value_and_grad``, then ``optimizer.update``.

    A new function on every call, so that each ``nnx.jit`` of it traces anew: a step traced
    before ``ikkuna.attach`` patched the model must not be reused after it.
    """
    import optax
    from flax import nnx

    def step(model: Any, optimizer: Any, inputs: Any, labels: Any) -> Any:
        def loss_function(model: Any) -> Any:
            return optax.softmax_cross_entropy_with_integer_labels(model(inputs), labels).mean()

        loss, grads = nnx.value_and_grad(loss_function)(model)
        optimizer.update(model, grads)
        return loss

    return step


def train(architecture: Architecture, style: str = "jit", **attach_options: Any) -> ikkuna.Monitor:
    """Train ``architecture`` in ``style`` with ``ikkuna.attach(model, **attach_options)``."""
    import jax
    import optax
    from flax import nnx

    model = build(architecture)
    # inject_hyperparams makes the learning rate readable (the learning_rate metric)
    optimizer = nnx.Optimizer(model, optax.inject_hyperparams(optax.sgd)(learning_rate=LEARNING_RATE),
                              wrt=nnx.Param)

    step = cross_entropy_step()
    if style == "jit":
        step = nnx.jit(step)
    with ikkuna.attach(model, optimizer=optimizer, **attach_options) as monitor:
        for inputs, labels in architecture.batches():
            inputs = inputs.transpose(0, 2, 3, 1) if inputs.ndim == 4 else inputs
            loss = step(model, optimizer, jax.numpy.asarray(inputs), jax.numpy.asarray(labels))
            monitor.log(loss=float(loss), labels=np.asarray(labels))
    return monitor
