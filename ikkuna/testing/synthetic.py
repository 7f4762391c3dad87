"""Synthetic training steps: the events a small network gives, in each framework's layouts.

The values are drawn once, in canonical layout (activations channels last, parameters
``(out, in, ...)``), and then laid out as each framework hands them to metrics: torch
activations NCHW and kernels ``(out, in, kh, kw)``, Keras and Flax activations NHWC and
kernels ``(kh, kw, in, out)``. A metric that reads layouts through ``Array.layout``,
``as_matrix()`` and ``as_channels_last()`` gives the same values in every layout.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ikkuna.core import kinds as K
from ikkuna.core.arrays import CHANNELS_LAST, Array, Layout, outputs_last_layout
from ikkuna.core.events import Event
from ikkuna.core.layers import LayerInfo

#: The frameworks whose layouts the synthetic steps come in.
LAYOUTS = ("torch", "keras", "jax")
#: The kinds synthetic steps hold (every measurable kind but the probe kinds).
SYNTHETIC_KINDS = frozenset({
    K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.GRADIENTS, K.WEIGHTS, K.UPDATES, K.LOSS,
    K.LEARNING_RATE, K.INPUTS, K.OUTPUTS, K.LABELS,
})
LEARNING_RATE = 0.1
_BATCH_FIRST = Layout(batch_axis=0)
_IMAGE = (5, 5)  # height, width of every image activation
_CLASSES = 3


@dataclass(frozen=True)
class SyntheticLayer:
    """One layer of the synthetic network: its type, output channels, kernel shape (torch
    layout, None for a layer without parameters), the activation it applies last and whether
    its outputs are images."""

    name: str
    kind: str
    channels: int
    kernel: tuple[int, ...] | None = None
    activation: str | None = None
    image: bool = False


#: conv (3 -> 4 channels, 3x3) -> relu -> dense (100 -> 6, tanh) -> dense (6 -> 3).
NETWORK = (
    SyntheticLayer("conv1", "conv2d", 4, (4, 3, 3, 3), image=True),
    SyntheticLayer("relu1", "other", 4, activation="relu", image=True),
    SyntheticLayer("dense1", "dense", 6, (6, 4 * _IMAGE[0] * _IMAGE[1]), activation="tanh"),
    SyntheticLayer("head", "dense", _CLASSES, (_CLASSES, 6)),
)


def synthetic_steps(framework: str = "torch", *, steps: int = 3, batch: int = 8, seed: int = 0,
                    dtype: str = "float32") -> list[list[Event]]:
    """Events of ``steps`` training steps of a small conv net, as ``framework`` lays them out.

    Each step holds, in the order adapters emit them: ``inputs``, each layer's
    ``activations``, ``outputs``, ``output_gradients`` (last layer first), each parameter's
    ``gradients``, then ``weights`` and ``updates`` after an SGD step, then ``labels``,
    ``loss`` and ``learning_rate``. The same ``seed`` gives the same values in every
    framework's layout. Arrays are fresh on every call (the bus releases them once used).

    The values are independent random draws, not a real forward and backward pass:
    activations are not the weights applied to the inputs, and gradients are not the loss's
    (only updates are the weights' change, and ReLU/tanh outputs their functions' ranges).
    A metric relating two kinds is checked for layouts here, for meaning by
    :func:`ikkuna.testing.check_parity`.
    """
    if framework not in LAYOUTS:
        raise ValueError(f"unknown framework layout {framework!r}; known: {', '.join(LAYOUTS)}")
    if not isinstance(steps, int) or steps < 1 or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"steps and batch must be ints >= 1, got steps={steps!r}, batch={batch!r}")
    accepted = ("float16", "float32", "float64")
    if str(dtype) not in accepted:
        raise ValueError(f"dtype must be one of {', '.join(accepted)}, got {dtype!r}")
    values = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    layers = {layer.name: _layer_info(layer, framework) for layer in NETWORK}
    weights = {
        layer.name: {
            "weight": _draw(rng, layer.kernel, 1 / np.sqrt(np.prod(layer.kernel[1:])), values),
            "bias": _draw(rng, (layer.channels,), 0.1, values),
        }
        for layer in NETWORK if layer.kernel is not None
    }
    return [list(_step(step, rng, framework, layers, weights, batch, values))
            for step in range(steps)]


def layers(framework: str = "torch") -> list[LayerInfo]:
    """The synthetic network's layers as ``framework``'s adapter describes them."""
    return [_layer_info(layer, framework) for layer in NETWORK]


def _step(step: int, rng: np.random.Generator, framework: str, infos: dict[str, LayerInfo],
          weights: dict[str, dict[str, np.ndarray]], batch: int,
          dtype: np.dtype) -> Iterator[Event]:
    def event(kind: str, info: LayerInfo | None = None, param: str | None = None,
              array: Array | None = None, value: float | None = None) -> Event:
        return Event(kind, step, 0, info, param, array, value)

    inputs = _draw(rng, (batch, *_IMAGE, 3), 1.0, dtype)
    yield event(K.INPUTS, array=_activation(inputs, framework))
    outputs: dict[str, np.ndarray] = {}
    for layer in NETWORK:
        shape = (batch, *_IMAGE, layer.channels) if layer.image else (batch, layer.channels)
        canonical = _draw(rng, shape, 1.0 + step, dtype)
        if layer.activation == "relu":
            canonical = np.maximum(outputs["conv1"], 0)  # some units always zero: dead units
            canonical[..., 0] = 0
        elif layer.activation == "tanh":
            canonical = np.tanh(canonical * 2).astype(dtype)  # some saturation
        outputs[layer.name] = canonical
        yield event(K.ACTIVATIONS, infos[layer.name], array=_activation(canonical, framework))
    yield event(K.OUTPUTS, array=_activation(outputs["head"], framework))
    for layer in reversed(NETWORK):
        gradient = _draw(rng, outputs[layer.name].shape, 0.01, dtype)
        yield event(K.OUTPUT_GRADIENTS, infos[layer.name], array=_activation(gradient, framework))
    gradients = {name: {role: _draw(rng, value.shape, 0.01, dtype) for role, value in params.items()}
                 for name, params in weights.items()}
    for name, params in gradients.items():
        for role, gradient in params.items():
            yield event(K.GRADIENTS, infos[name], role, _parameter(gradient, framework))
    for name, params in weights.items():
        for role, before in params.items():
            after = (before - dtype.type(LEARNING_RATE) * gradients[name][role]).astype(dtype)
            params[role] = after
            yield event(K.WEIGHTS, infos[name], role, _parameter(after, framework))
            yield event(K.UPDATES, infos[name], role, _parameter(after - before, framework))
    labels = rng.integers(0, _CLASSES, batch).astype(np.int64)
    yield event(K.LABELS, array=Array.from_host(labels, _BATCH_FIRST))
    yield event(K.LOSS, value=float(2.0 / (1 + step)))
    yield event(K.LEARNING_RATE, value=LEARNING_RATE)


def _draw(rng: np.random.Generator, shape: tuple[int, ...], scale: float, dtype: np.dtype) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _layer_info(layer: SyntheticLayer, framework: str) -> LayerInfo:
    if layer.kernel is None:
        params: dict[str, str] = {}
    else:
        params = {"weight" if framework == "torch" else "kernel": "weight", "bias": "bias"}
    return LayerInfo(layer.name, layer.kind, framework, params, activation=layer.activation)


def _activation(canonical: np.ndarray, framework: str) -> Array:
    """Channels-last values as ``framework`` gives them (torch: channels second)."""
    if framework != "torch":
        return Array.from_host(canonical, CHANNELS_LAST)
    if canonical.ndim <= 2:  # dense outputs: (batch, features), features last as in Keras
        return Array.from_host(canonical, Layout(batch_axis=0, channel_axis=-1))
    native = np.ascontiguousarray(np.moveaxis(canonical, -1, 1))
    return Array.from_host(native, Layout(batch_axis=0, channel_axis=1))


def _parameter(canonical: np.ndarray, framework: str) -> Array:
    """A parameter in torch layout ``(out, in, *kernel)``, as ``framework`` stores it."""
    if framework == "torch":
        if canonical.ndim == 1:
            return Array.from_host(canonical, Layout(out_axis=0))
        return Array.from_host(canonical, Layout(out_axis=0, in_axis=1))
    native = canonical if canonical.ndim == 1 else np.ascontiguousarray(
        np.transpose(canonical, (*range(2, canonical.ndim), 1, 0)))
    return Array.from_host(native, outputs_last_layout(native.ndim))
