"""dead_unit_fraction and saturated_fraction against loops over units and values."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ikkuna.core.layers import LayerInfo, activation_name
from ikkuna.metrics.activation_health import DeadUnitFraction, SaturatedFraction
from tests.metrics.events import CHANNELS_FIRST, CHANNELS_LAST, FC, group

CONV = LayerInfo("conv", "other", "numpy", activation="relu")


def dead_fraction_by_loops(steps: list[np.ndarray]) -> float:
    """Channels-last batches of one window: the share of channels that never left zero."""
    channels = steps[0].shape[-1]
    dead = 0
    for channel in range(channels):
        if all(not np.any(batch[..., channel] != 0) for batch in steps):
            dead += 1
    return dead / channels


def relu_batches(seed: int, steps: int, shape=(8, 5, 5, 6), dead=(1, 4)) -> list[np.ndarray]:
    """ReLU outputs (channels last) where channels ``dead`` never fire and the others do."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(steps):
        values = np.maximum(rng.standard_normal(shape), 0).astype(np.float32)
        values[..., list(dead)] = 0.0
        batches.append(values)
    return batches


# --- dead_unit_fraction ------------------------------------------------------------------------


def test_dead_unit_fraction_is_recorded_once_per_window_of_steps():
    metric = DeadUnitFraction(window=3)
    batches = relu_batches(0, 6)
    results = [metric.compute(group(step=s, layer=CONV, layout=CHANNELS_LAST, activations=b))
               for s, b in enumerate(batches)]
    assert results[:2] == [None, None] and results[3:5] == [None, None]
    assert results[2] == dead_fraction_by_loops(batches[:3]) == 2 / 6
    assert results[5] == dead_fraction_by_loops(batches[3:]) == 2 / 6


def test_a_unit_that_fires_once_in_the_window_is_alive():
    metric = DeadUnitFraction(window=2)
    first, second = relu_batches(1, 2, dead=(0, 1, 2))
    second[3, 2, 2, 1] = 0.5  # channel 1 fires for one sample at one position
    metric.compute(group(layer=CONV, layout=CHANNELS_LAST, activations=first))
    result = metric.compute(group(layer=CONV, layout=CHANNELS_LAST, activations=second))
    assert result == dead_fraction_by_loops([first, second]) == 2 / 6


def test_each_window_starts_afresh():
    metric = DeadUnitFraction(window=1)
    alive, dead = relu_batches(2, 1, dead=())[0], np.zeros((8, 5, 5, 6), np.float32)
    assert metric.compute(group(layer=CONV, layout=CHANNELS_LAST, activations=alive)) == 0.0
    assert metric.compute(group(layer=CONV, layout=CHANNELS_LAST, activations=dead)) == 1.0


def test_dead_units_are_channels_in_either_layout():
    batches = relu_batches(3, 2)
    last, first = DeadUnitFraction(window=2), DeadUnitFraction(window=2)
    for batch in batches:
        result_last = last.compute(group(layer=CONV, layout=CHANNELS_LAST, activations=batch))
        nchw = np.moveaxis(batch, -1, 1)
        result_first = first.compute(group(layer=CONV, layout=CHANNELS_FIRST, activations=nchw))
    assert result_last == result_first == 2 / 6


def test_negative_outputs_are_not_dead_only_exact_zeros_are():
    values = np.array([[0.0, -1.0, -0.0, 1e-30], [0.0, -2.0, 0.0, 0.0]], np.float32)
    result = DeadUnitFraction(window=1).compute(group(layout=CHANNELS_LAST, activations=values))
    assert result == 0.5  # units 0 and 2 (0.0 and -0.0); -1 and 1e-30 are not zero


def test_layers_keep_their_own_windows():
    metric = DeadUnitFraction(window=2)
    zeros = np.zeros((2, 4), np.float32)
    ones = np.ones((2, 4), np.float32)
    assert metric.compute(group(layer=FC, layout=CHANNELS_LAST, activations=zeros)) is None
    assert metric.compute(group(layer=CONV, layout=CHANNELS_LAST, activations=ones)) is None
    assert metric.compute(group(layer=FC, layout=CHANNELS_LAST, activations=zeros)) == 1.0
    assert metric.compute(group(layer=CONV, layout=CHANNELS_LAST, activations=ones)) == 0.0


def test_default_window_is_ten_steps():
    metric = DeadUnitFraction()
    results = [metric.compute(group(step=s, layout=CHANNELS_LAST, activations=np.zeros((2, 3))))
               for s in range(20)]
    assert [s for s, r in enumerate(results) if r is not None] == [9, 19]


@pytest.mark.parametrize("window", [0, -1, 1.5, True, "10"])
def test_dead_unit_fraction_rejects_a_window_that_is_not_a_positive_int(window):
    with pytest.raises(ValueError, match="window must be a positive int"):
        DeadUnitFraction(window=window)


# --- saturated_fraction ------------------------------------------------------------------------


def saturated_by_loop(values: np.ndarray, activation: str) -> float:
    """The documented thresholds, one value at a time."""
    def saturated(y: float) -> bool:
        if activation in ("tanh", "softsign"):
            return abs(y) > 0.99
        if activation == "sigmoid":
            return y < 0.01 or y > 0.99
        if activation == "hard_tanh":
            return abs(y) >= 1.0
        if activation == "hard_sigmoid":
            return y <= 0.0 or y >= 1.0
        raise AssertionError(activation)

    flat = values.reshape(-1)
    return sum(saturated(float(y)) for y in flat) / flat.size


def bounded_outputs(activation: str, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((16, 12)) * 4
    functions = {
        "tanh": np.tanh,
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
        "softsign": lambda v: 50 * v / (1 + np.abs(50 * v)),  # saturates only for |x| > 99
        "hard_tanh": lambda v: np.clip(v, -1, 1),
        "hard_sigmoid": lambda v: np.clip(v / 6 + 0.5, 0, 1),
    }
    return functions[activation](x).astype(np.float32)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softsign", "hard_tanh", "hard_sigmoid"])
def test_saturated_fraction_counts_outputs_at_the_bounds_of_the_layers_activation(activation):
    layer = replace(FC, activation=activation)
    values = bounded_outputs(activation)
    result = SaturatedFraction().compute(group(layer=layer, activations=values))
    assert result == saturated_by_loop(values, activation)
    assert 0.0 < result < 1.0


def test_tanh_saturation_thresholds_are_strict():
    layer = replace(FC, activation="tanh")
    values = np.array([[-1.0, -0.995, -0.98, 0.0, 0.5, 0.98, 0.995, 1.0]], np.float32)
    assert SaturatedFraction().compute(group(layer=layer, activations=values)) == 4 / 8


def test_sigmoid_saturates_near_zero_and_one():
    layer = replace(FC, activation="sigmoid")
    values = np.array([[0.0, 0.005, 0.02, 0.5, 0.98, 0.999]], np.float32)
    assert SaturatedFraction().compute(group(layer=layer, activations=values)) == 3 / 6


@pytest.mark.parametrize("activation", [None, "relu", "gelu", "softmax", "made_up"])
def test_saturated_fraction_records_nothing_for_unbounded_or_unknown_activations(activation):
    layer = replace(FC, activation=activation)
    assert SaturatedFraction().compute(group(layer=layer, activations=np.ones((2, 3)))) is None


def test_saturated_fraction_of_empty_outputs_is_none():
    layer = replace(FC, activation="tanh")
    assert SaturatedFraction().compute(group(layer=layer, activations=np.zeros((0, 3)))) is None


# --- LayerInfo.activation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [("Tanh", "tanh"), ("tanh", "tanh"), ("Hardtanh", "hard_tanh"), ("hard_tanh", "hard_tanh"),
     ("Hardsigmoid", "hard_sigmoid"), ("SiLU", "silu"), ("swish", "silu"), ("ReLU6", "relu6"),
     ("LeakyReLU", "leaky_relu"), ("Softsign", "softsign"), ("linear", None), ("Identity", None),
     ("Linear", None), ("<lambda>", None), ("", None), (None, None)],
)
def test_activation_names_of_every_framework_map_to_one_neutral_name(name, expected):
    assert activation_name(name) == expected


def test_layer_activation_does_not_change_equality_or_hash():
    tanh = replace(FC, activation="tanh")
    assert tanh == FC and hash(tanh) == hash(FC)
    assert FC.activation is None and tanh.activation == "tanh"
