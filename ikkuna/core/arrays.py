"""Arrays: a native tensor, its layout, and a lazy, cached, read-only numpy view of it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ikkuna.core.statistics import MOMENTS, STATISTICS, SUM_SQUARES, of_values


@dataclass(frozen=True)
class Layout:
    """Where the meaningful axes of an array are, so metrics never guess.

    Activations set ``batch_axis`` and ``channel_axis`` (torch NCHW: 1, Keras/Flax NHWC: -1).
    Parameters, their gradients and updates set ``out_axis`` and ``in_axis`` (torch Linear
    ``(out, in)`` is ``out_axis=0, in_axis=1``; a Keras kernel ``(in, out)`` the reverse).
    ``None`` means the array has no such axis (a bias has no ``in_axis``).
    """

    batch_axis: int | None = None
    channel_axis: int | None = None
    out_axis: int | None = None
    in_axis: int | None = None


NO_LAYOUT = Layout()
#: Activations of Keras and Flax (NHWC, or (batch, features) for dense layers).
CHANNELS_LAST = Layout(batch_axis=0, channel_axis=-1)


def outputs_last_layout(ndim: int) -> Layout:
    """The layout of a kernel stored ``(..., in, out)`` (Keras and Flax: dense ``(in, out)``,
    conv ``(*kernel, in, out)``, embedding ``(num, features)``); a bias is ``(out,)``."""
    if ndim == 0:
        return NO_LAYOUT
    if ndim == 1:
        return Layout(out_axis=0)
    return Layout(out_axis=ndim - 1, in_axis=ndim - 2)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@functools.lru_cache(maxsize=256)
def _is_bfloat16(dtype: np.dtype) -> bool:
    # cached: numpy computes a dtype's name in Python, about 3 µs each time
    return dtype.name == "bfloat16"


@functools.lru_cache(maxsize=256)
def host_dtype_name(dtype: np.dtype) -> str:
    """The name of the dtype metrics see for host data of ``dtype``: its own, but float32 for
    bfloat16 (numpy knows it only through ml_dtypes, and most numpy functions reject it)."""
    return "float32" if _is_bfloat16(dtype) else str(dtype)


def host_copy(values: Any) -> np.ndarray:
    """A numpy copy of host data; bfloat16 becomes float32 (:func:`host_dtype_name`)."""
    copied = np.array(values, copy=True)
    return copied.astype(np.float32) if _is_bfloat16(copied.dtype) else copied


def host_view(values: Any) -> np.ndarray | None:
    """``values`` as numpy without copying where it can be (None for bfloat16)."""
    view = np.asarray(values)
    return None if _is_bfloat16(view.dtype) else view


#: Computes a statistic in the framework: ``(native tensor, layout) -> statistic``.
Reducer = Callable[[Any, Layout], Any]


class Array:
    """A tensor handed to metrics: ``shape`` and ``dtype`` are free, ``numpy()`` converts once.

    ``to_numpy`` must return a numpy array that owns its memory (a copy), because native
    parameters change in place after the optimizer step. After the first conversion the native
    tensor is released, so an ``Array`` never keeps framework memory alive.

    ``statistic(name)`` (see :mod:`ikkuna.core.statistics`) summarizes the values without a
    copy where the adapter can: with one of its ``reducers`` (computed in the framework, on
    the tensor's device), else on ``view(native)``, a host view sharing the tensor's memory
    (None where there is none), else on ``numpy()``. Statistics are cached, and survive
    :meth:`release`.
    """

    __slots__ = ("_native", "_numpy", "_reducers", "_statistics", "_to_numpy", "_view",
                 "dtype", "layout", "shape")

    def __init__(
        self,
        native: Any,
        to_numpy: Callable[[Any], np.ndarray],
        *,
        shape: tuple[int, ...],
        dtype: str,
        layout: Layout = NO_LAYOUT,
        view: Callable[[Any], np.ndarray | None] | None = None,
        reducers: Mapping[str, Reducer] | None = None,
    ) -> None:
        self._native = native
        self._to_numpy = to_numpy
        self._view = view
        self._reducers = reducers
        self._numpy: np.ndarray | None = None
        self._statistics: dict[str, Any] = {}
        self.shape = tuple(int(n) for n in shape)
        self.dtype = str(dtype)
        self.layout = layout

    @classmethod
    def from_numpy(cls, values: Any, layout: Layout = NO_LAYOUT) -> Array:
        """Wrap host data (anything ``np.asarray`` accepts); the data is copied.

        bfloat16 (numpy knows it only through ml_dtypes, and most numpy functions reject it)
        becomes float32, as the adapters' own conversions do.
        """
        copied = host_copy(values)
        return cls(copied, np.asarray, shape=copied.shape, dtype=str(copied.dtype), layout=layout)

    @classmethod
    def from_host(cls, values: Any, layout: Layout = NO_LAYOUT) -> Array:
        """Wrap host data that stays unchanged while the event is published (what a framework
        hands a host callback): copied only if some metric keeps the values, and statistics
        are computed on the data itself."""
        dtype = np.dtype(getattr(values, "dtype", None) or np.asarray(values).dtype)
        return cls(values, host_copy, shape=np.shape(values), dtype=host_dtype_name(dtype),
                   layout=layout, view=host_view)

    @classmethod
    def of_statistics(cls, statistics: Mapping[str, Any], *, shape: tuple[int, ...], dtype: str,
                      layout: Layout = NO_LAYOUT) -> Array:
        """An array known only by its statistics (several arrivals' statistics combined)."""
        array = cls(None, np.asarray, shape=shape, dtype=dtype, layout=layout)
        array._statistics.update(statistics)
        return array

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def has_values(self) -> bool:
        """Whether :meth:`numpy` can still give the values (not released unconverted)."""
        return self._numpy is not None or self._native is not None

    def numpy(self) -> np.ndarray:
        """The values as a read-only numpy array (converted on first call, then cached)."""
        if self._numpy is None:
            if self._native is None:
                raise ValueError(
                    f"the values of this {self!r} were not kept: only statistics "
                    f"({', '.join(sorted(set(self._statistics) & set(STATISTICS))) or 'none'}) were, because every "
                    "metric that reads it declared a `statistic`; a metric that reads values "
                    "must leave `statistic` unset"
                )
            self._numpy = _read_only(np.asarray(self._to_numpy(self._native)))
            self._native = None
        return self._numpy

    def statistic(self, name: str) -> Any:
        """One statistic of the values (``"moments"``, ``"fired_units"``, ``"sum_squares"``),
        computed once (``"sum_squares"`` is read off moments already known)."""
        if name not in STATISTICS:
            raise ValueError(f"unknown statistic {name!r}; known: {', '.join(sorted(STATISTICS))}")
        if name in self._statistics:
            return self._statistics[name]
        if name == SUM_SQUARES and MOMENTS in self._statistics:
            return self._statistics[MOMENTS].sum_squares
        values = self._numpy
        reducer = None
        if values is None and self._native is not None:  # not converted: try not to
            reducer = (self._reducers or {}).get(name)
            if reducer is None and self._view is not None:
                values = self._view(self._native)
        if reducer is not None:
            self._statistics[name] = reducer(self._native, self.layout)
        else:
            values = self.numpy() if values is None else values
            self._statistics.update(of_values(name, values, self.layout, self._statistics))
        return self._statistics[name]

    def release(self) -> None:
        """Drop the native tensor without converting it (what was needed was taken)."""
        self._native = None

    def as_channels_last(self) -> np.ndarray:
        """Activations with channels on the last axis (NHWC, (N, C) for dense outputs)."""
        values = self.numpy()
        axis = self.layout.channel_axis
        if axis is None or values.ndim == 0:
            return values
        return np.moveaxis(values, axis, -1)

    def as_matrix(self) -> np.ndarray:
        """A parameter as a ``(out_units, fan_in)`` matrix in every framework.

        The output axis goes first, the input axis second and any other axes (a conv
        kernel's spatial axes) follow in order, then all but the first are flattened; so a
        torch ``(out, in, kh, kw)`` and a Keras ``(kh, kw, in, out)`` kernel give the same
        matrix. A vector (a bias) becomes ``(out_units, 1)``.
        """
        values = self.numpy()
        if values.ndim == 0:
            return values.reshape(1, 1)
        out_axis = self.layout.out_axis if self.layout.out_axis is not None else 0
        order = [out_axis % values.ndim]
        if self.layout.in_axis is not None:
            order.append(self.layout.in_axis % values.ndim)
        order += [axis for axis in range(values.ndim) if axis not in order]
        rows = values.shape[order[0]]
        fan_in = int(np.prod([values.shape[axis] for axis in order[1:]], dtype=np.int64))
        return np.transpose(values, order).reshape(rows, fan_in)  # explicit: rows may be 0

    def __repr__(self) -> str:
        return f"Array(shape={self.shape}, dtype={self.dtype}, layout={self.layout})"
