"""The parity networks: the same layers, weights and batches in torch, Keras and JAX.

``FRAMEWORKS`` maps each framework to its trainer module (imported, with its framework, on
use) and the training styles it knows; :func:`train` runs one of them under ``ikkuna.attach``.
"""

from __future__ import annotations

import importlib
from typing import Any

import ikkuna
from ikkuna.testing.parity.specs import ARCHITECTURES, BATCH, CLASSES, CNN, MLP, STEPS, Architecture

#: framework -> (trainer module, its training styles; the first is the default).
FRAMEWORKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "torch": ("ikkuna.testing.parity.torch_models", ("loop",)),
    "keras": ("ikkuna.testing.parity.keras_models", ("fit", "eager", "tf.function")),
    "jax": ("ikkuna.testing.parity.jax_models", ("jit", "eager")),
}
#: What each framework needs importable to run its parity network.
REQUIRED_MODULES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "keras": ("tensorflow", "keras"),
    "jax": ("jax", "flax", "optax"),
}


def architecture(name: str | Architecture) -> Architecture:
    """A parity architecture by name (``"mlp"``, ``"cnn"``) or as given."""
    if isinstance(name, Architecture):
        return name
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(
            f"unknown parity architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        ) from None


def styles(framework: str) -> tuple[str, ...]:
    """The training styles of ``framework``'s parity trainer (the first is the default)."""
    return _entry(framework)[1]


def train(framework: str, network: str | Architecture = "mlp", style: str | None = None,
          **attach_options: Any) -> ikkuna.Monitor:
    """Train a parity network in ``framework`` with ``ikkuna.attach(model, **attach_options)``
    for ``STEPS`` steps of ``BATCH`` samples; return the (detached) monitor."""
    module_name, known = _entry(framework)
    style = known[0] if style is None else style
    if style not in known:
        raise ValueError(f"{framework} parity style {style!r} is not one of {', '.join(known)}")
    module = importlib.import_module(module_name)
    return module.train(architecture(network), style, **attach_options)


def _entry(framework: str) -> tuple[str, tuple[str, ...]]:
    try:
        return FRAMEWORKS[framework]
    except KeyError:
        raise ValueError(
            f"unknown framework {framework!r}; parity networks exist for {', '.join(FRAMEWORKS)}"
        ) from None


__all__ = ["ARCHITECTURES", "BATCH", "CLASSES", "CNN", "FRAMEWORKS", "MLP", "REQUIRED_MODULES",
           "STEPS", "Architecture", "architecture", "styles", "train"]
