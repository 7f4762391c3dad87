"""Property tests of the conversions from native tensors to the numpy metrics read, over random
shapes (0-d and zero-size included), dtypes (float16, bfloat16, float32, float64) and memory
layouts (contiguous, transposed, strided, reversed, broadcast with stride 0).

Every conversion gives numpy's values (bfloat16 as float32), read-only, in memory of its own:
changing the tensor afterwards changes nothing. Moments computed by torch equal numpy's, and a
weight stored in torch's layout gives the same ``as_matrix`` as the same weight stored in the
Keras (and Flax) layout.

Values are multiples of 1/8 below 32 in magnitude, plus 0, -0, NaN and +-Inf, so that every
dtype holds them exactly and the expected values do not depend on rounding.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ikkuna.core.arrays import Array, Layout, outputs_last_layout
from ikkuna.core.statistics import ROW_PARTIALS_RTOL, Moments, fired_units

DTYPES = ("float16", "bfloat16", "float32", "float64")
#: The dtypes host (numpy) data can have here: numpy has bfloat16 only through ml_dtypes
#: (installed with JAX and TensorFlow), so without it no one can hand ikkuna bfloat16 numpy
#: data. Torch tensors are bfloat16 without it.
NUMPY_DTYPES = DTYPES if importlib.util.find_spec("ml_dtypes") else tuple(
    dtype for dtype in DTYPES if dtype != "bfloat16")
LAYOUTS = ("contiguous", "transposed", "strided", "reversed", "broadcast")
SETTINGS = settings(max_examples=50, deadline=None)

values = st.one_of(st.integers(-255, 255).map(lambda k: k / 8),
                   st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf]))


@st.composite
def host_data(draw, min_dims=0, max_dims=4, dtypes=NUMPY_DTYPES):
    """(values as float64, dtype name, layout name)."""
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=4))
    data = draw(hnp.arrays(np.float64, shape, elements=values))
    layout = draw(st.sampled_from(LAYOUTS))
    if not data.ndim or (layout == "broadcast" and not data.shape[0]):
        layout = "contiguous"  # no axis to lay out (0-d), or no first row to repeat
    return data, draw(st.sampled_from(dtypes)), layout


def numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def host_dtype(name: str) -> str:
    """The dtype ikkuna hands to metrics: bfloat16 becomes float32."""
    return "float32" if name == "bfloat16" else name


def expected_values(data: np.ndarray, dtype: str) -> np.ndarray:
    return data.astype(host_dtype(dtype))


def in_layout(data: np.ndarray, layout: str, empty, flip, native=lambda values: values) -> object:
    """``data``'s values in an array of the same shape whose memory is laid out as named:
    ``empty(shape)`` makes a fresh writable array, ``flip(array)`` reverses its axes (a
    view), ``native(values)`` makes numpy values assignable to the array."""
    if layout == "contiguous":
        made = empty(data.shape)
        made[...] = native(data)
        return made
    if layout == "transposed":  # axes in memory in the reverse order
        stored = empty(data.shape[::-1])
        stored[...] = native(data.transpose())
        return flip(stored)
    if layout == "strided":  # every other row of a larger array
        stored = empty((data.shape[0] * 2, *data.shape[1:]))
        stored[...] = 0
        stored[::2] = native(data)
        return stored[::2]
    if layout == "reversed":  # numpy only: a negative stride
        stored = empty(data.shape)
        stored[...] = native(data[::-1])
        return stored[::-1]
    raise ValueError(layout)


def numpy_in_layout(data: np.ndarray, dtype: str, layout: str) -> np.ndarray:
    if layout == "broadcast":  # stride 0 along the first axis
        row = np.empty((1, *data.shape[1:]), numpy_dtype(dtype))
        row[...] = data[:1]
        return np.broadcast_to(row, data.shape)
    return in_layout(data, layout, lambda shape: np.empty(shape, numpy_dtype(dtype)),
                     lambda a: a.transpose())


def broadcast_values(data: np.ndarray, layout: str) -> np.ndarray:
    """The values an array made by ``*_in_layout`` holds (broadcast repeats the first row)."""
    if layout == "broadcast":
        return np.broadcast_to(data[:1], data.shape)
    return data


def assert_owned_copy(result: np.ndarray, source: np.ndarray | None) -> None:
    """Read-only, and no memory shared with ``source`` (the native tensor's memory)."""
    assert isinstance(result, np.ndarray)
    assert not result.flags.writeable
    if source is not None:
        assert not np.shares_memory(result, source)


def reference_moments(values: np.ndarray) -> Moments:
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        mean = flat.mean() if flat.size else 0.0
        return Moments(flat.size, float(flat.sum()), float(np.square(flat).sum()),
                       float(np.square(flat - mean).sum()) if flat.size else 0.0,
                       int(flat.size - np.count_nonzero(flat)))


def assert_moments_equal(found: Moments, expected: Moments, rtol: float = 1e-9) -> None:
    """Equal to ``rtol`` (the sum: to ``rtol`` of the norm times the count's root, a bound
    on the sum of magnitudes)."""
    assert (found.count, found.zeros) == (expected.count, expected.zeros)
    scale = expected.sum_squares if math.isfinite(expected.sum_squares) else 0.0
    magnitudes = math.sqrt(scale * expected.count)
    for name in ("total", "sum_squares", "m2"):
        atol = rtol * (magnitudes if name == "total" else scale)
        np.testing.assert_allclose(getattr(found, name), getattr(expected, name), rtol=rtol,
                                   atol=atol, equal_nan=True, err_msg=name)


def assert_sum_of_squares_equal(found: float, expected: Moments, rtol: float = 1e-9) -> None:
    """The ``sum_squares`` statistic: the moments' sum of squares, alone."""
    assert isinstance(found, float)
    np.testing.assert_allclose(found, expected.sum_squares, rtol=rtol, equal_nan=True)


# -- host arrays (what Keras' and JAX's host callbacks hand over, and monitor.log) ---------------


@SETTINGS
@given(host_data())
def test_from_numpy_gives_numpys_values_read_only_in_memory_of_its_own(example):
    data, dtype, layout = example
    source = numpy_in_layout(data, dtype, layout)
    array = Array.from_numpy(source)
    result = array.numpy()
    assert (array.shape, array.dtype) == (data.shape, host_dtype(dtype))
    assert result.dtype == host_dtype(dtype)
    np.testing.assert_array_equal(result, expected_values(broadcast_values(data, layout), dtype))
    assert_owned_copy(result, source)
    assert_moments_equal(array.statistic("moments"), reference_moments(result))


@SETTINGS
@given(host_data())
def test_from_host_statistics_read_the_data_and_its_values_are_an_owned_copy(example):
    data, dtype, layout = example
    source = numpy_in_layout(data, dtype, layout)
    array = Array.from_host(source, Layout(batch_axis=0, channel_axis=-1))
    expected = expected_values(broadcast_values(data, layout), dtype)
    assert (array.shape, array.dtype) == (data.shape, host_dtype(dtype))
    assert_moments_equal(array.statistic("moments"), reference_moments(expected))
    squares = Array.from_host(source).statistic("sum_squares")  # computed, not read off moments
    assert_sum_of_squares_equal(squares, reference_moments(expected))
    fired = array.statistic("fired_units")
    wanted = fired_units(expected, -1)
    assert (fired is None) == (wanted is None)
    if wanted is not None:
        np.testing.assert_array_equal(fired, wanted)
    result = array.numpy()
    np.testing.assert_array_equal(result, expected)
    assert result.dtype == host_dtype(dtype)
    assert_owned_copy(result, source)


@SETTINGS
@given(host_data(min_dims=1), st.integers(0, 3))
def test_as_channels_last_moves_the_channel_axis_of_any_layout_last(example, channel_axis):
    data, dtype, layout = example
    channel_axis %= data.ndim
    source = numpy_in_layout(data, dtype, layout)
    result = Array.from_numpy(source, Layout(batch_axis=0, channel_axis=channel_axis))
    expected = np.moveaxis(expected_values(broadcast_values(data, layout), dtype), channel_axis, -1)
    np.testing.assert_array_equal(result.as_channels_last(), expected)
    assert not result.as_channels_last().flags.writeable


# -- torch ----------------------------------------------------------------------------------------


def torch_in_layout(torch, data: np.ndarray, dtype: str, layout: str):
    """A torch tensor with ``data``'s values in ``dtype``, laid out as named (torch has no
    negative strides: "reversed" is a flipped copy, contiguous)."""
    torch_dtype = getattr(torch, dtype)
    if layout == "broadcast":
        row = torch.tensor(np.ascontiguousarray(data[:1])).to(torch_dtype)
        return row.expand(*data.shape)
    if layout == "reversed":
        return torch.tensor(data.copy()).to(torch_dtype).flip(*range(data.ndim))
    return in_layout(data, layout, lambda shape: torch.empty(shape, dtype=torch_dtype),
                     lambda t: t.permute(*reversed(range(t.ndim))),
                     lambda values: torch.from_numpy(np.ascontiguousarray(values)))


def reversed_values(data: np.ndarray, layout: str) -> np.ndarray:
    """What ``torch_in_layout`` holds: "reversed" flips every axis of the values."""
    if layout == "reversed":
        return data[(slice(None, None, -1),) * data.ndim]
    return broadcast_values(data, layout)


@pytest.fixture(scope="module")
def torch_module():
    from tests.conftest import require_framework

    return require_framework("torch")


@pytest.mark.framework
@SETTINGS
@given(example=host_data(dtypes=DTYPES))
def test_torch_conversions_give_numpys_values_read_only_in_memory_of_their_own(torch_module,
                                                                                example):
    from ikkuna.adapters.torch import (
        tensor_moments,
        tensor_sum_of_squares,
        tensor_to_numpy,
        tensor_view,
        wrap,
    )

    torch = torch_module
    data, dtype, layout = example
    tensor = torch_in_layout(torch, data, dtype, layout)
    expected = expected_values(reversed_values(data, layout), dtype)
    assert tuple(tensor.shape) == data.shape

    view = tensor_view(tensor)
    if dtype == "bfloat16":
        assert view is None  # numpy has no bfloat16: no view, a float32 copy instead
    else:
        np.testing.assert_array_equal(view, expected)
        assert view.size == 0 or np.shares_memory(view, tensor.numpy())  # a view, not a copy

    copied = tensor_to_numpy(tensor)
    assert copied.dtype == host_dtype(dtype)
    np.testing.assert_array_equal(copied, expected)
    # torch sums rows in float32 where numpy cannot view the tensor (bfloat16); numpy sums
    # these small CPU tensors in float64
    rtol = ROW_PARTIALS_RTOL if dtype == "bfloat16" else 1e-9
    assert_moments_equal(tensor_moments(tensor, Layout()), reference_moments(expected), rtol=rtol)
    assert_sum_of_squares_equal(tensor_sum_of_squares(tensor, Layout()), reference_moments(expected),
                                rtol=rtol)

    array = wrap(tensor, Layout(batch_axis=0, channel_axis=-1))
    assert (array.shape, array.dtype) == (data.shape, dtype)
    assert_moments_equal(array.statistic("moments"), reference_moments(expected), rtol=rtol)
    result = array.numpy()
    np.testing.assert_array_equal(result, expected)
    assert_owned_copy(result, None if dtype == "bfloat16" else tensor.numpy())
    if tensor.is_contiguous() and tensor.numel():
        with torch.no_grad():  # the tensor changes in place after the step: the copies do not
            tensor.view(-1)[:1].fill_(7.0)
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(copied, expected)


@pytest.mark.framework
@SETTINGS
@given(example=host_data(min_dims=1, max_dims=4, dtypes=DTYPES))
def test_torch_fired_units_equal_numpys_per_channel(torch_module, example):
    from ikkuna.adapters.torch import tensor_fired_units

    data, dtype, layout = example
    tensor = torch_in_layout(torch_module, data, dtype, layout)
    expected = expected_values(reversed_values(data, layout), dtype)
    for channel_axis in {1 % data.ndim, -1}:
        layout_ = Layout(batch_axis=0, channel_axis=channel_axis)
        found = tensor_fired_units(tensor, layout_)
        wanted = fired_units(expected, channel_axis)
        assert (found is None) == (wanted is None)
        if wanted is not None:
            np.testing.assert_array_equal(found, wanted)


@st.composite
def kernels(draw):
    """A weight as (out, in, *spatial) values: dense (no spatial axes) or conv (1 or 2)."""
    spatial = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    shape = (draw(st.integers(0, 4)), draw(st.integers(0, 4)), *spatial)
    return draw(hnp.arrays(np.float64, shape, elements=values)), draw(st.sampled_from(NUMPY_DTYPES))


@pytest.mark.framework
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors:UserWarning")
@SETTINGS
@given(example=kernels(), transposed=st.booleans())
def test_torch_and_keras_layouts_of_one_weight_give_the_same_matrix(torch_module, example,
                                                                    transposed):
    from ikkuna.adapters.torch import parameter_layout, wrap

    torch = torch_module
    canonical, dtype = example
    out_units, fan_in, *spatial = canonical.shape
    if spatial:
        module = (torch.nn.Conv1d if len(spatial) == 1 else torch.nn.Conv2d)(
            fan_in, out_units, tuple(spatial), bias=False)
    else:
        module = torch.nn.Linear(fan_in, out_units, bias=False)
    weight = torch.tensor(canonical).to(getattr(torch, dtype))
    if transposed:  # the same values stored with the axes reversed in memory
        weight = weight.permute(*reversed(range(weight.ndim))).contiguous().permute(
            *reversed(range(weight.ndim)))
    assert tuple(module.weight.shape) == canonical.shape
    torch_matrix = wrap(weight, parameter_layout(module, "weight", weight)).as_matrix()
    # Keras and Flax store (*spatial, in, out)
    keras_kernel = np.transpose(canonical, (*range(2, canonical.ndim), 1, 0))
    keras_kernel = keras_kernel.astype(numpy_dtype(dtype))
    keras_matrix = Array.from_host(keras_kernel, outputs_last_layout(keras_kernel.ndim)).as_matrix()
    expected = expected_values(canonical, dtype).reshape(out_units, fan_in * math.prod(spatial))
    np.testing.assert_array_equal(torch_matrix, expected)
    np.testing.assert_array_equal(keras_matrix, expected)
    assert torch_matrix.dtype == keras_matrix.dtype == host_dtype(dtype)


# -- Keras (TensorFlow) and JAX tensors ------------------------------------------------------------


@pytest.fixture(scope="module")
def tensorflow_module():
    import os

    from tests.conftest import require_framework

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return require_framework("tensorflow")


@pytest.fixture(scope="module")
def jax_module():
    from tests.conftest import require_framework

    return require_framework("jax")


@pytest.mark.framework
@SETTINGS
@given(example=host_data())
def test_tensorflow_tensors_convert_to_numpys_values_read_only_in_memory_of_their_own(
        tensorflow_module, example):
    from ikkuna.adapters.keras import host_values

    tf = tensorflow_module
    data, dtype, layout = example
    source = numpy_in_layout(data, dtype, layout)
    tensor = tf.constant(source)  # what a Keras step's host callback or monitor.log hands over
    assert tensor.dtype.name == dtype
    expected = expected_values(broadcast_values(data, layout), dtype)
    arrays = [Array.from_host(tensor.numpy()),  # what the Keras adapter's callback receives
              Array.from_numpy(host_values(tensor))]  # monitor.log(inputs=tensor)
    for array in arrays:
        assert (array.shape, array.dtype) == (data.shape, host_dtype(dtype))
        assert_moments_equal(array.statistic("moments"), reference_moments(expected))
        result = array.numpy()
        np.testing.assert_array_equal(result, expected)
        assert result.dtype == host_dtype(dtype)
        assert_owned_copy(result, tensor.numpy())


@pytest.mark.framework
@SETTINGS
@given(example=host_data())
def test_jax_arrays_convert_to_numpys_values_read_only_in_memory_of_their_own(jax_module,
                                                                              example):
    jnp = jax_module.numpy
    data, dtype, layout = example
    source = numpy_in_layout(data, dtype, layout)
    if dtype == "float64" and not jax_module.config.jax_enable_x64:
        dtype, source = "float32", source.astype(np.float32)  # JAX without x64 has no float64
    native = jnp.asarray(source)
    assert native.dtype == numpy_dtype(dtype)
    expected = expected_values(broadcast_values(data, layout), dtype)
    for array in (Array.from_numpy(native), Array.from_host(native)):
        assert (array.shape, array.dtype) == (data.shape, host_dtype(dtype))
        assert_moments_equal(array.statistic("moments"), reference_moments(expected))
        result = array.numpy()
        np.testing.assert_array_equal(result, expected)
        assert result.dtype == host_dtype(dtype)
        assert_owned_copy(result, np.asarray(native))
