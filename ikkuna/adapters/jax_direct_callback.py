"""An ordered host callback that hands the callback jaxlib's numpy copies directly.

``jax.experimental.io_callback`` receives each operand as a numpy array that jaxlib copied
out of XLA's buffer, then copies it again with ``device_put`` (numpy's buffers usually lack
the 64-byte alignment that would let it alias them) to hand the callback JAX arrays. ikkuna
reads the values with numpy, so the second copy only costs: a CNN step with the default
metrics, which hands 46 MB to the host, took 144 ms with it and 132 without (20-40 MiB less
peak memory); an MLP step with about 20 small values, 6.0 ms with it and 4.1 without (1.2
without ikkuna). This primitive is ``io_callback``'s ordered lowering without that copy: the
callback gets jaxlib's numpy arrays, read-only, which stay valid after it returns. Unlike
``io_callback`` it does not make the CPU JAX's default device around the callback, so the
callback must not run JAX operations (ikkuna's use numpy only). It shares ``io_callback``'s ordered effect, so it keeps
its order with every ordered IO callback of a program, across steps, inside control flow
and under ``jit`` over sharded data (a MAXIMAL sharding: once a step, with the global
arrays); ``jax.effects_barrier()`` waits for it.

Building it needs a few of JAX's internals (the effect, the callbacks' sharding and eager
dispatch), and :func:`ordered_host_call` lowers one call before handing it out. Where this
JAX lacks what it needs, or that lowering fails, it gives None and the caller uses
``io_callback``. JAX is imported on first use.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

_log = logging.getLogger(__name__)

#: What :func:`ordered_host_call` gives: ``call(callback, args)`` runs ``callback(*args)``
#: on the host, each array leaf of the pytree ``args`` as a numpy array.
HostCall = Callable[[Callable[..., None], Sequence[Any]], None]


@functools.cache
def ordered_host_call() -> HostCall | None:
    """The ordered host call without ``device_put``'s copy; None where this JAX's internals
    differ from what it was built for (the caller then uses ``io_callback``)."""
    try:
        return _build()
    except Exception as error:  # noqa: BLE001 - whatever fails, io_callback still works
        _log.debug("ikkuna uses jax.experimental.io_callback: %r", error)
        return None


class _FlatHostCallback:
    """``callback`` called with the pytree ``tree`` rebuilt from flat host arrays (the
    primitive's parameter: hashable, equal only to itself)."""

    __slots__ = ("__weakref__", "callback", "tree")

    def __init__(self, callback: Callable[..., None], tree: Any) -> None:
        self.callback, self.tree = callback, tree

    def __call__(self, *flat: Any) -> tuple[()]:
        self.callback(*self.tree.unflatten(flat))
        return ()


def _build() -> HostCall:
    import jax
    from jax._src import callback as jax_callback
    from jax._src import dispatch
    from jax.extend.core import Primitive
    from jax.interpreters import ad, batching, mlir

    effect = jax_callback._OrderedIOEffect
    op_sharding = jax_callback._callback_op_sharding
    emit = mlir.emit_python_callback

    primitive = Primitive("ikkuna_ordered_host_call")
    primitive.multiple_results = True
    primitive.def_impl(functools.partial(dispatch.apply_primitive, primitive))
    primitive.def_effectful_abstract_eval(lambda *avals, callback: ([], {effect}))
    dispatch.prim_requires_devices_during_lowering.add(primitive)

    def lowering(ctx: Any, *operands: Any, callback: _FlatHostCallback) -> Sequence[Any]:
        sharding = op_sharding(ctx.module_context.axis_context, None, ctx.avals_out)
        results, token, _ = emit(
            ctx, callback, ctx.tokens_in.get(effect), list(operands), ctx.avals_in,
            ctx.avals_out, has_side_effect=True, returns_token=True, sharding=sharding)
        ctx.set_tokens_out(ctx.tokens_in.update_tokens(mlir.TokenSet({effect: token})))
        return results

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("ikkuna's host calls cannot be differentiated or vmapped (like an "
                         "ordered jax.experimental.io_callback); its values leave through "
                         "jax.lax.stop_gradient outside vmap")

    mlir.register_lowering(primitive, lowering, cacheable=False)
    ad.primitive_jvps[primitive] = refuse
    batching.primitive_batchers[primitive] = refuse

    def call(callback: Callable[..., None], args: Sequence[Any]) -> None:
        flat, tree = jax.tree_util.tree_flatten(tuple(args))
        primitive.bind(*flat, callback=_FlatHostCallback(callback, tree))

    # the lowering calls the rest of JAX's internals (the callback's emitter and sharding, its
    # tokens): a JAX where they differ fails here, not in a user's step
    jax.jit(lambda value: (call(_ignore, [value]), value)[1]).lower(np.float32(0))
    return call


def _ignore(*values: Any) -> None:
    """A host callback that does nothing (the trial lowering's)."""
