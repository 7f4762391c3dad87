"""The JAX demo: the demo CNN in Flax NNX, a jitted step with optax SGD and momentum, monitored."""

from __future__ import annotations

from typing import Any

import numpy as np

from ikkuna.core.attach import attach
from ikkuna.core.monitor import Monitor
from ikkuna.demos.digits import load
from ikkuna.demos.epochs import run_epochs
from ikkuna.demos.nnx_layers import nnx_layers
from ikkuna.demos.variants import HEALTHY, HIDDEN_BIASED, MOMENTUM, Variant


def build_model(variant: Variant = HEALTHY, seed: int = 0) -> Any:
    """The demo CNN (``variants.LAYERS``) on 8x8x1 channels-last images."""
    import jax.numpy as jnp
    from flax import nnx

    layers = nnx_layers()
    ReLU, MaxPool, Flatten = layers.ReLU, layers.MaxPool, layers.Flatten

    class DigitsCNN(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.conv1 = nnx.Conv(1, 8, (3, 3), padding="SAME", rngs=rngs)
            self.relu1 = ReLU()
            self.conv2 = nnx.Conv(8, 16, (3, 3), padding="SAME", rngs=rngs)
            self.norm = nnx.BatchNorm(16, momentum=0.9, epsilon=1e-5, rngs=rngs)
            self.relu2 = ReLU()
            self.pool = MaxPool()
            self.flatten = Flatten()
            self.hidden = nnx.Linear(16 * 4 * 4, 32, rngs=rngs)
            self.relu3 = ReLU()
            self.head = nnx.Linear(32, 10, rngs=rngs)

        def __call__(self, x: Any) -> Any:
            for name in ("conv1", "relu1", "conv2", "norm", "relu2", "pool", "flatten",
                         "hidden", "relu3", "head"):
                x = getattr(self, name)(x)
            return x

    model = DigitsCNN(nnx.Rngs(seed))
    for name in ("conv1", "conv2", "hidden", "head"):
        layer = getattr(model, name)
        layer.kernel[...] = layer.kernel[...] * variant.weight_scale
    if variant.hidden_bias is not None:
        for name in HIDDEN_BIASED:
            bias = getattr(model, name).bias
            bias[...] = jnp.full(bias[...].shape, variant.hidden_bias, dtype=bias[...].dtype)
    return model


def train(variant: Variant, *, epochs: int, seed: int = 0, **attach_options: Any) -> tuple[Monitor, float]:
    """A jitted training loop with ikkuna attached; return the monitor and the held-out accuracy."""
    import optax
    from flax import nnx

    data = load(seed=seed)
    model = build_model(variant, seed)
    # inject_hyperparams makes the learning rate readable (the learning_rate metric)
    sgd = optax.inject_hyperparams(optax.sgd)(learning_rate=variant.learning_rate, momentum=MOMENTUM)
    optimizer = nnx.Optimizer(model, sgd, wrt=nnx.Param)

    @nnx.jit
    def step(model: Any, optimizer: Any, x: Any, y: Any) -> tuple[Any, Any]:
        def loss_function(model: Any) -> tuple[Any, Any]:
            logits = model(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits

        (loss, logits), grads = nnx.value_and_grad(loss_function, has_aux=True)(model)
        optimizer.update(model, grads)
        return loss, (logits.argmax(-1) == y).mean()

    images, labels = data.train_images[..., None], data.train_labels.astype(np.int32)

    def train_batch(index: np.ndarray) -> tuple[float, float]:
        loss, accuracy = step(model, optimizer, images[index], labels[index])
        return float(loss), float(accuracy)

    with attach(model, optimizer=optimizer, **attach_options) as monitor:
        run_epochs(monitor, epochs, len(labels), np.random.default_rng(seed), train_batch)
    model.eval()
    predictions = np.asarray(model(data.test_images[..., None])).argmax(-1)
    return monitor, float((predictions == data.test_labels).mean())
