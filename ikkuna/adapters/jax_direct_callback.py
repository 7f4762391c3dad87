"""An ordered host callback that hands the callback jaxlib's numpy copies directly.

``jax.experimental.io_callback`` receives each operand as a numpy array that jaxlib copied
out of XLA's buffer, then copies it again with ``device_put`` (numpy's buffers lack the
64-byte alignment that would let it alias them) to hand the callback JAX arrays. ikkuna
reads the values with numpy, so the second copy only costs: on a CNN step that hands 46 MB
to the host, about 12 ms of a 144 ms step and 20-40 MiB of peak memory; on a 1.2 ms MLP
step with about 20 small values, 1.9 ms (a ``device_put`` per value). This primitive is
``io_callback``'s ordered lowering without that copy: the callback gets jaxlib's arrays
(read-only, owning their memory). It shares ``io_callback``'s ordered effect, so it keeps
its order with every ordered IO callback of a program, across steps, inside control flow
and under ``jit`` over sharded data (a MAXIMAL sharding: once a step, with the global
arrays); ``jax.effects_barrier()`` waits for it.

Building it needs a few of JAX's internals (the effect, the callbacks' sharding and eager
dispatch). Where this JAX lacks them, :func:`ordered_host_call` gives None and the caller
uses ``io_callback``. JAX is imported on first use.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

_log = logging.getLogger(__name__)

#: What :func:`ordered_host_call` gives: ``call(callback, args)`` runs ``callback(*args)``
#: on the host, with numpy arrays for the traced arrays of the pytree ``args``.
HostCall = Callable[[Callable[..., None], Sequence[Any]], None]


@functools.cache
def ordered_host_call() -> HostCall | None:
    """The ordered host call without ``device_put``'s copy; None where this JAX's internals
    differ from what it was built for (the caller then uses ``io_callback``)."""
    try:
        return _build()
    except (ImportError, AttributeError, TypeError, ValueError) as error:
        _log.debug("ikkuna uses jax.experimental.io_callback: %s", error)
        return None


class _FlatHostCallback:
    """``callback`` called with the pytree ``tree`` rebuilt from flat host arrays (the
    primitive's parameter: hashable, equal only to itself)."""

    __slots__ = ("__weakref__", "callback", "tree")

    def __init__(self, callback: Callable[..., None], tree: Any) -> None:
        self.callback, self.tree = callback, tree

    def __call__(self, *flat: Any) -> tuple[()]:
        import jax

        self.callback(*jax.tree_util.tree_unflatten(self.tree, flat))
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
    _require_parameters(emit, "ctx", "callback", "token", "operands", "operand_avals",
                        "result_avals", "has_side_effect", "returns_token", "sharding")
    _require_parameters(op_sharding, "axis_context", "sharding", "avals_out")

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

    return call


def _require_parameters(function: Callable[..., Any], *names: str) -> None:
    """Refuse (TypeError) a JAX function whose parameters are not those this module calls."""
    missing = set(names) - set(inspect.signature(function).parameters)
    if missing:
        raise TypeError(f"{function.__qualname__} has no parameter {', '.join(sorted(missing))}")
