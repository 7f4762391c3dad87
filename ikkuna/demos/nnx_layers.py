"""Parameter-free Flax NNX modules (ReLU, Tanh, MaxPool, Flatten), so that activations and
pooling are layers in JAX as they are in torch and Keras. Flax is imported on first use."""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any


@functools.cache
def nnx_layers() -> SimpleNamespace:
    """The module classes; each is named after what it computes (``LayerInfo.activation``
    recognises ``ReLU`` and ``Tanh`` by their class names)."""
    import jax.numpy as jnp
    from flax import nnx

    class ReLU(nnx.Module):
        def __call__(self, x: Any) -> Any:
            return nnx.relu(x)

    class Tanh(nnx.Module):
        def __call__(self, x: Any) -> Any:
            return jnp.tanh(x)

    class MaxPool(nnx.Module):
        """2x2 max pooling with stride 2 on NHWC inputs."""

        def __call__(self, x: Any) -> Any:
            return nnx.max_pool(x, (2, 2), strides=(2, 2))

    class Flatten(nnx.Module):
        def __call__(self, x: Any) -> Any:
            return x.reshape(x.shape[0], -1)

    return SimpleNamespace(ReLU=ReLU, Tanh=Tanh, MaxPool=MaxPool, Flatten=Flatten)
