"""How a step's values are grouped into host callbacks (pure Python: no JAX needed)."""

from __future__ import annotations

import numpy as np

from ikkuna.adapters import jax_host
from ikkuna.adapters.jax_host import PART_BYTES, in_parts, nbytes, to_host_in_parts


def test_values_are_grouped_in_order_into_parts_of_at_most_the_limit():
    assert in_parts([3, 3, 3, 1, 5], most=6) == [[0, 1], [2, 3], [4]]


def test_a_value_larger_than_the_limit_is_a_part_of_its_own():
    assert in_parts([1, 10, 1, 1], most=4) == [[0], [1], [2, 3]]
    assert in_parts([10, 10], most=4) == [[0], [1]]


def test_no_values_are_one_empty_part_so_the_step_still_opens_and_closes():
    assert in_parts([], most=4) == [[]]


def test_the_default_limit_keeps_small_models_in_one_callback():
    assert in_parts([4 * 307] * 20) == [list(range(20))]
    assert in_parts([PART_BYTES, 1]) == [[0], [1]]


def test_nbytes_needs_only_a_shape_and_a_dtype_as_a_traced_array_has():
    class Traced:
        shape, dtype = (64, 32, 32, 3), "float32"

    assert nbytes(Traced()) == 64 * 32 * 32 * 3 * 4
    assert nbytes(np.zeros((3, 5), np.float16)) == 30
    assert nbytes(np.float64(1.0)) == 8
    assert nbytes(1.0) == 8 and nbytes(3) == 8
    assert nbytes(object()) == 0  # no size while tracing: it shares a part with the others


def test_parts_are_delivered_in_order_with_the_extras_of_the_first_and_the_last(monkeypatch):
    placed = []
    monkeypatch.setattr(jax_host, "to_host", lambda callback, *args: placed.append((callback, args)))
    monkeypatch.setattr(jax_host, "PART_BYTES", 16)
    keyed = [("a", np.zeros(2, np.float32)), ("b", np.zeros(2, np.float32)),
             ("c", np.zeros(4, np.float32))]
    to_host_in_parts(lambda *call: call, keyed, first_extra=("rate",), last_extra=("loss",))
    calls = [callback(*args) for callback, args in placed]
    assert [(keys, first, last, len(values), extra) for keys, first, last, values, *extra
            in calls] == [(["a", "b"], True, False, 2, ["rate"]),
                          (["c"], False, True, 1, ["loss"])]
    placed.clear()
    to_host_in_parts(lambda *call: call, [], first_extra=("rate",), last_extra=("loss",))
    assert [callback(*args) for callback, args in placed] == [([], True, True, [], "rate", "loss")]
