"""How the JAX adapters hand values from a traced step to the host: ordered IO callbacks.

``jax.debug.callback(..., ordered=True)`` cannot be compiled for more than one device (JAX
refuses its ordered effect there), so a step over data sharded with ``jax.sharding`` would
not even compile. An ordered ``jax.experimental.io_callback`` can: under ``jit`` with
automatic sharding JAX lowers it with a MAXIMAL sharding (one device), so it runs once per
execution of the step and receives the global arrays (XLA gathers the shards first), not
once per device with each device's shard. Its ordering holds across the callbacks of one step
and across steps, as ``ordered=True`` did before. ikkuna lowers it as
:mod:`ikkuna.adapters.jax_direct_callback` does, which hands the callback jaxlib's numpy
copies without ``io_callback``'s second copy, where this JAX allows (else ``io_callback``).

An IO callback has no differentiation rule, so the values leave through
``jax.lax.stop_gradient``: a value with no tangent is handed to the callback outside the
differentiation (a layer's output inside ``nnx.value_and_grad``), and the gradients of the
step do not change. :func:`wait_for_host` waits until every such call made so far has run
(JAX dispatches steps asynchronously: a step's call may still be pending when training ends).
JAX is imported on first use.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ikkuna.adapters.jax_direct_callback import ordered_host_call

#: The most bytes one callback hands to the host (a larger value goes alone). Each operand of
#: a callback is copied on the host (jaxlib copies it into a numpy array; ``io_callback``,
#: where it is used, copies that again into a JAX array), held until the callback returns,
#: and the allocator keeps the memory (XLA's threads have malloc arenas of their own). A
#: scheduled step of a CNN handed to the host in one ``io_callback`` raised peak RSS by about
#: 190 MiB on a 490 MiB run; in parts of at most 4 MiB, by about 75 MiB.
PART_BYTES = 4 << 20

_inside = threading.local()  # set while one of these callbacks runs on this thread


def to_host(callback: Callable[..., None], *args: Any) -> None:
    """Call ``callback(*args)`` on the host (each array as a numpy array) once each time
    the traced code runs, after every earlier call of this function in program
    order: through :func:`ikkuna.adapters.jax_direct_callback.ordered_host_call`, or an
    ordered ``io_callback`` (JAX arrays) where this JAX cannot build that."""
    import jax

    def call(*values: Any) -> None:
        _inside.active = True
        try:
            callback(*values)
        finally:
            _inside.active = False

    values = jax.tree_util.tree_map(jax.lax.stop_gradient, args)
    direct = ordered_host_call()
    if direct is not None:
        direct(call, values)
        return
    from jax.experimental import io_callback

    io_callback(call, None, *values, ordered=True)


def to_host_in_parts(deliver: Callable[..., None], keyed: Sequence[tuple[Any, Any]],
                     first_extra: tuple[Any, ...] = (), last_extra: tuple[Any, ...] = ()) -> None:
    """Hand ``(key, value)`` pairs to the host in ordered callbacks of at most
    :data:`PART_BYTES` each (:func:`in_parts`), one call ``deliver(keys, first, last, values,
    *extra)`` each: ``extra`` is ``first_extra`` in the first part's call and ``last_extra`` in
    the last part's (the first's, then the last's, where there is one part)."""
    parts = in_parts([nbytes(value) for _, value in keyed])
    for number, part in enumerate(parts):
        first, last = number == 0, number == len(parts) - 1
        extra = (*(first_extra if first else ()), *(last_extra if last else ()))
        to_host(functools.partial(deliver, [keyed[i][0] for i in part], first, last),
                [keyed[i][1] for i in part], *extra)


def in_parts(sizes: Sequence[int], most: int | None = None) -> list[list[int]]:
    """The indices of values of ``sizes`` bytes, in order, grouped into consecutive parts of at
    most ``most`` bytes each (default :data:`PART_BYTES`; a larger value is a part alone); one
    empty part if there are no values."""
    most = PART_BYTES if most is None else most
    parts: list[list[int]] = [[]]
    held = 0
    for index, size in enumerate(sizes):
        if parts[-1] and held + size > most:
            parts.append([])
            held = 0
        parts[-1].append(index)
        held += size
    return parts


def nbytes(value: Any) -> int:
    """The bytes of an array, a traced one (from its shape and dtype) or a Python number; 0
    where they cannot be known while tracing (a symbolic shape, a leaf that is no array),
    so that such a value shares a part with its neighbours."""
    try:
        size = 1
        for extent in np.shape(value):
            size *= int(extent)
        dtype = getattr(value, "dtype", None)
        return size * np.dtype(np.result_type(value) if dtype is None else dtype).itemsize
    except Exception:  # noqa: BLE001 - jax.export's symbolic dimensions raise their own error
        return 0


def wait_for_host() -> None:
    """Wait until the host calls of every step dispatched so far have run (``detach``: the
    last steps' values are not lost). Inside such a call it returns at once (waiting there
    would never end)."""
    if getattr(_inside, "active", False):
        return
    import jax

    jax.effects_barrier()
