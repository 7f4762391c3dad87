"""Array: lazy cached read-only conversion, release of the native tensor, canonical layouts."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ikkuna.core.arrays import NO_LAYOUT, Array, Layout

TORCH_KERNEL = Layout(out_axis=0, in_axis=1)  # (out, in, kh, kw) and Linear (out, in)
KERAS_KERNEL = Layout(out_axis=-1, in_axis=-2)  # (kh, kw, in, out) and Dense (in, out)


class Native:
    """Stands in for a framework tensor: holds data, can be weakly referenced."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data


class CountingConverter:
    """A ``to_numpy`` that counts its calls and copies, as adapters must."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, native: Native) -> np.ndarray:
        self.calls += 1
        return native.data.copy()


def wrap(data: np.ndarray, layout: Layout = NO_LAYOUT) -> tuple[Array, CountingConverter]:
    converter = CountingConverter()
    array = Array(Native(data), converter, shape=data.shape, dtype=str(data.dtype), layout=layout)
    return array, converter


def kernel(out: int = 4, fan: int = 3, kh: int = 2, kw: int = 5) -> np.ndarray:
    """A torch-layout conv kernel (out, in, kh, kw) whose every entry is distinct."""
    return np.arange(out * fan * kh * kw, dtype=np.float32).reshape(out, fan, kh, kw)


# --- lazy, cached, read-only conversion -------------------------------------------------------


def test_shape_and_dtype_are_known_without_converting():
    array, converter = wrap(np.zeros((2, 3), dtype=np.float32))
    assert array.shape == (2, 3)
    assert array.ndim == 2
    assert array.dtype == "float32"
    assert converter.calls == 0


def test_numpy_converts_once_and_returns_the_cached_array_afterwards():
    data = np.arange(6.0).reshape(2, 3)
    array, converter = wrap(data)
    first = array.numpy()
    second = array.numpy()
    assert converter.calls == 1
    assert first is second
    np.testing.assert_array_equal(first, data)


def test_numpy_result_is_read_only():
    array, _ = wrap(np.ones(4))
    values = array.numpy()
    assert values.flags.writeable is False
    with pytest.raises(ValueError):
        values[0] = 5.0


def test_from_numpy_copies_so_later_changes_to_the_source_do_not_leak_in():
    source = np.array([1.0, 2.0, 3.0])
    array = Array.from_numpy(source)
    source[0] = 100.0
    np.testing.assert_array_equal(array.numpy(), [1.0, 2.0, 3.0])
    assert array.numpy().flags.writeable is False
    assert source.flags.writeable is True  # the caller's array is left alone


def test_native_tensor_is_released_after_conversion():
    native = Native(np.arange(3.0))
    converter = CountingConverter()
    array = Array(native, converter, shape=(3,), dtype="float64")
    alive = weakref.ref(native)
    del native
    array.numpy()
    gc.collect()
    assert alive() is None
    np.testing.assert_array_equal(array.numpy(), [0.0, 1.0, 2.0])  # the copy stays usable


def test_release_drops_the_native_tensor_without_converting():
    native = Native(np.arange(3.0))
    converter = CountingConverter()
    array = Array(native, converter, shape=(3,), dtype="float64")
    alive = weakref.ref(native)
    del native
    array.release()
    gc.collect()
    assert alive() is None
    assert converter.calls == 0


# --- as_matrix ---------------------------------------------------------------------------------


def test_as_matrix_of_torch_conv_kernel_is_out_by_fan_in():
    torch_kernel = kernel()
    array, _ = wrap(torch_kernel, TORCH_KERNEL)
    matrix = array.as_matrix()
    assert matrix.shape == (4, 3 * 2 * 5)
    np.testing.assert_array_equal(matrix, torch_kernel.reshape(4, -1))


def test_as_matrix_of_keras_conv_kernel_is_out_by_fan_in():
    keras_kernel = np.transpose(kernel(), (2, 3, 1, 0))  # (kh, kw, in, out)
    array, _ = wrap(keras_kernel, KERAS_KERNEL)
    assert array.as_matrix().shape == (4, 3 * 2 * 5)


def test_as_matrix_of_a_weight_with_no_output_unit_or_no_input_is_empty_not_an_error():
    assert Array.from_numpy(np.zeros((0, 3)), TORCH_KERNEL).as_matrix().shape == (0, 3)
    assert Array.from_numpy(np.zeros((2, 2, 3, 0)), KERAS_KERNEL).as_matrix().shape == (0, 12)
    assert Array.from_numpy(np.zeros((3, 0, 2, 2)), TORCH_KERNEL).as_matrix().shape == (3, 0)


def test_as_matrix_gives_identical_matrices_for_torch_and_keras_layouts_of_one_kernel():
    torch_kernel = kernel()
    keras_kernel = np.transpose(torch_kernel, (2, 3, 1, 0))
    torch_matrix = wrap(torch_kernel, TORCH_KERNEL)[0].as_matrix()
    keras_matrix = wrap(keras_kernel, KERAS_KERNEL)[0].as_matrix()
    assert torch_matrix.shape == keras_matrix.shape
    np.testing.assert_array_equal(torch_matrix, keras_matrix)


def test_as_matrix_gives_identical_matrices_for_dense_out_in_and_in_out():
    torch_weight = np.arange(12.0).reshape(4, 3)  # (out, in)
    keras_weight = torch_weight.T.copy()  # (in, out)
    torch_matrix = wrap(torch_weight, TORCH_KERNEL)[0].as_matrix()
    keras_matrix = wrap(keras_weight, Layout(out_axis=1, in_axis=0))[0].as_matrix()
    np.testing.assert_array_equal(torch_matrix, torch_weight)
    np.testing.assert_array_equal(keras_matrix, torch_weight)


def test_as_matrix_of_bias_is_a_column_of_out_units():
    bias = np.array([1.0, 2.0, 3.0])
    matrix = wrap(bias, Layout(out_axis=0))[0].as_matrix()
    assert matrix.shape == (3, 1)
    np.testing.assert_array_equal(matrix[:, 0], bias)


def test_as_matrix_of_scalar_is_one_by_one():
    matrix = wrap(np.array(7.0))[0].as_matrix()
    assert matrix.shape == (1, 1)
    assert matrix[0, 0] == 7.0


@st.composite
def kernels_in_some_layout(draw):
    """A canonical (out, in, *spatial) kernel and the same kernel stored with its out and in
    axes moved to random positions (spatial axes keep their relative order), plus a layout
    that describes the stored array, with axes written positive or negative."""
    ndim = draw(st.integers(min_value=2, max_value=5))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    canonical = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    out_position, in_position = draw(
        st.lists(st.integers(0, ndim - 1), min_size=2, max_size=2, unique=True)
    )
    spatial = iter(range(2, ndim))
    perm = [
        0 if position == out_position else 1 if position == in_position else next(spatial)
        for position in range(ndim)
    ]
    stored = np.transpose(canonical, perm)
    negative_out, negative_in = draw(st.booleans()), draw(st.booleans())
    layout = Layout(
        out_axis=out_position - ndim if negative_out else out_position,
        in_axis=in_position - ndim if negative_in else in_position,
    )
    return canonical, stored, layout


@settings(max_examples=150, deadline=None)
@given(kernels_in_some_layout())
def test_as_matrix_is_independent_of_where_out_and_in_axes_are_stored(example):
    canonical, stored, layout = example
    matrix = Array.from_numpy(stored, layout).as_matrix()
    expected = canonical.reshape(canonical.shape[0], -1)
    assert matrix.shape == expected.shape
    np.testing.assert_array_equal(matrix, expected)


# --- as_channels_last --------------------------------------------------------------------------


def test_as_channels_last_gives_identical_arrays_for_nchw_and_nhwc():
    nhwc = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)
    nchw = np.transpose(nhwc, (0, 3, 1, 2)).copy()
    from_torch = wrap(nchw, Layout(batch_axis=0, channel_axis=1))[0].as_channels_last()
    from_keras = wrap(nhwc, Layout(batch_axis=0, channel_axis=-1))[0].as_channels_last()
    assert from_torch.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(from_torch, nhwc)
    np.testing.assert_array_equal(from_keras, nhwc)


def test_as_channels_last_leaves_dense_outputs_as_batch_by_channels():
    dense = np.arange(6.0).reshape(2, 3)
    result = wrap(dense, Layout(batch_axis=0, channel_axis=1))[0].as_channels_last()
    np.testing.assert_array_equal(result, dense)


def test_as_channels_last_without_channel_axis_returns_values_unchanged():
    values = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(wrap(values)[0].as_channels_last(), values)


def test_layout_helpers_do_not_convert_twice():
    array, converter = wrap(kernel(), TORCH_KERNEL)
    array.as_matrix()
    array.as_channels_last()
    array.numpy()
    assert converter.calls == 1
