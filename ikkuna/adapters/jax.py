"""JAX adapter (Flax NNX + optax): patched module and optimizer classes to events.

JAX has no hooks and compiles training steps. The patch swaps the class of each monitored
instance for a subclass that wraps ``__call__``/``update`` (Python looks ``__call__`` up on
the type), so neither the model nor the step is rewritten, and ``detach()`` swaps them back.
A layer's output computed under differentiation (a training pass inside ``nnx.grad`` /
``nnx.value_and_grad``) is kept on the module in a private variable, which NNX carries out of
the gradient transform; ``optimizer.update`` takes those variables off again and sends them,
with the gradients, the weights after the update and the updates, to the host in ordered IO
callbacks (:func:`ikkuna.adapters.jax_host.to_host`) of at most ``PART_BYTES`` each, only
on the steps the monitor's ``every=`` selects (other steps send an empty marker that counts
them). Output gradients, which exist only in the backward pass, each leave through an
identity with a custom VJP. A jitted step compiles once; one traced while attached keeps its
(idle) callbacks after detach until it is traced again. In a step jitted over data sharded
across devices (``jax.sharding``) each callback runs once per step with the global arrays,
not once per device; ``detach()`` waits for
the callbacks of the steps already dispatched.

JAX and Flax are imported on first use, never when ikkuna is imported.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ikkuna.adapters.base import Adapter, claim, release
from ikkuna.adapters.jax_host import to_host, to_host_in_parts, wait_for_host
from ikkuna.adapters.jax_probe import PROBE_CAPABILITIES, JaxProbe
from ikkuna.core import kinds as K
from ikkuna.core.arrays import CHANNELS_LAST, Array, Layout, outputs_last_layout
from ikkuna.core.layers import LayerInfo, activation_name
from ikkuna.core.schedule import Every

ROLES = {"kernel": "weight", "embedding": "weight", "scale": "weight", "bias": "bias"}
#: Attributes under which a training pass's outputs wait on their module for the update.
CAPTURED_PREFIX = "_ikkuna_output_"
CAPTURED_INPUTS, CAPTURED_OUTPUTS = "_ikkuna_inputs_", "_ikkuna_outputs_"
ROOT_LAYER_NAME = "model"  # the name of a model that is itself a layer (as in torch)
_AUTODIFF_TRACERS = ("JVPTracer", "LinearizeTracer")
#: A step's host buffer is dropped beyond this many arrays (forwards under grad, no update).
_MAX_BUFFERED = 10_000


def _nnx() -> Any:
    try:
        from flax import nnx
    except ImportError as error:  # pragma: no cover - only without flax
        raise ImportError("the JAX adapter needs jax, flax and optax: "
                          "pip install 'ikkuna[jax]'") from error
    return nnx


def _definition_order(root: Any, path: tuple[Any, ...]) -> tuple[tuple[int, str], ...]:
    """A sort key for a module path: at each level, where the attribute was first assigned in
    its parent (``vars`` keeps assignment order; list items go by index), then the name."""
    key, node = [], root
    for part in path:
        if isinstance(part, int):
            key.append((part, ""))
        else:
            names = list(node) if isinstance(node, dict) else list(getattr(node, "__dict__", ()))
            key.append((names.index(part) if part in names else len(names), str(part)))
        try:
            node = node[part] if isinstance(part, int) or isinstance(node, dict) else getattr(node, part)
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return tuple(key)


def _jax() -> Any:
    import jax

    return jax


def layer_kind(module: Any) -> str:
    nnx = _nnx()
    if isinstance(module, nnx.Linear):
        return "dense"
    if isinstance(module, nnx.Conv) and len(module.kernel_size) == 2:
        return "conv2d"
    if isinstance(module, (nnx.BatchNorm, nnx.LayerNorm, nnx.RMSNorm, nnx.GroupNorm)):
        return "norm"
    if isinstance(module, nnx.Embed):
        return "embedding"
    return "other"


_captured_class: type | None = None


def _captured_type() -> type:
    """The Variable type that holds captured outputs (made once, when Flax is loaded)."""
    global _captured_class
    if _captured_class is None:
        _captured_class = type("IkkunaCaptured", (_nnx().Variable,), {
            "__doc__": "A value a training pass left for ikkuna's optimizer patch.",
            "__module__": __name__,
        })
    return _captured_class


#: Passes a module keeps outputs of until the next update (gradient accumulation); more
#: passes without an update (gradient probes) are not kept.
MAX_KEPT_PASSES = 16


def _keep(module: Any, prefix: str, value: Any) -> bool:
    """Leave ``value`` on ``module`` under the first free ``prefix<i>`` attribute.

    False where that cannot be done: the module is not part of the current trace (a gradient
    of a function that closes over the model), or it already holds MAX_KEPT_PASSES values.
    """
    index = 0
    while hasattr(module, f"{prefix}{index}"):
        index += 1
    if index >= MAX_KEPT_PASSES:
        return False
    from flax.errors import TraceContextError

    try:
        setattr(module, f"{prefix}{index}", _captured_type()(value))
    except TraceContextError:
        return False
    return True


def _is_training_value(value: Any) -> bool:
    """A value computed under differentiation (grad/value_and_grad): a training pass."""
    return any(c.__name__ in _AUTODIFF_TRACERS for c in type(value).__mro__)


@dataclass(frozen=True)
class _Delivery:
    """What one value handed to the host is: its kind, layer and parameter role."""

    kind: str
    layer: LayerInfo | None
    role: str | None  # None: not a parameter
    layout: Layout


@dataclass(frozen=True)
class _Param:
    layer: LayerInfo
    role: str
    layout: Layout


class _ClassSwaps:
    """Instances whose class was swapped for a patched subclass, and their own classes."""

    def __init__(self) -> None:
        self._swapped: list[tuple[Any, type]] = []

    def swap(self, instance: Any, methods: dict[str, Callable[..., Any]]) -> None:
        original = type(instance)
        patched = type(original.__name__, (original,),
                       {**methods, "__module__": original.__module__,
                        "__qualname__": original.__qualname__})
        object.__setattr__(instance, "__class__", patched)
        self._swapped.append((instance, original))

    def restore(self) -> None:
        for instance, original in reversed(self._swapped):
            object.__setattr__(instance, "__class__", original)
        self._swapped.clear()


class JaxAdapter(JaxProbe, Adapter):
    """Monitors a Flax NNX module trained with an ``nnx.Optimizer``."""

    framework = "jax"
    accepted = "flax.nnx.Module (trained with an nnx.Optimizer)"
    #: ``learning_rate``: from an optax transformation made with ``optax.inject_hyperparams``.
    capabilities = frozenset({"learning_rate"}) | PROBE_CAPABILITIES  # probe: see jax_probe

    def __init__(self, model: Any, optimizer: Any = None) -> None:
        super().__init__(model, optimizer)
        nnx = _nnx()
        if not isinstance(optimizer, nnx.Optimizer):
            raise TypeError(
                "a Flax NNX model needs optimizer=<the nnx.Optimizer that trains it>, got "
                f"{type(optimizer).__module__}.{type(optimizer).__qualname__}"
            )
        self._modules: dict[str, Any] = {}
        self._params: dict[tuple[Any, ...], _Param] = {}
        self._layers_by_path: dict[tuple[Any, ...], LayerInfo] = {}
        self._swaps = _ClassSwaps()
        self._buffer: list[tuple[str, LayerInfo | None, Any]] = []
        self._lock = threading.Lock()
        self._step_buffered: list[tuple[str, LayerInfo | None, Any]] | None = None  # open step
        self._attached = False
        self._claimed = False

    @classmethod
    def accepts(cls, model: Any) -> bool:
        if "flax" not in sys.modules:
            return False
        return isinstance(model, _nnx().Module)

    def versions(self) -> dict[str, str]:
        import flax
        import optax

        return {"jax": _jax().__version__, "flax": flax.__version__, "optax": optax.__version__}

    def as_array(self, value: Any, layout: Layout) -> Array:
        return Array.from_numpy(value, layout)

    def drain(self) -> None:
        wait_for_host()

    # -- layers -------------------------------------------------------------------------------

    def layers(self) -> list[LayerInfo]:
        nnx = _nnx()
        found = []
        # in the order the modules were assigned (as torch lists them), which is usually the
        # forward order; nnx itself lists them sorted by path
        modules = sorted(nnx.iter_modules(self.model),
                         key=lambda item: _definition_order(self.model, item[0]))
        root_name = ROOT_LAYER_NAME
        while any(len(path) == 1 and str(path[0]) == root_name for path, _ in modules):
            root_name += "_"  # a child is called "model": the root's own name must differ
        for path, module in modules:
            children = list(nnx.iter_children(module))
            own = {str(k): v for k, v in children if isinstance(v, nnx.Param)}
            has_submodules = any(isinstance(v, nnx.Module) for _, v in children)
            if (not path and not own) or (has_submodules and not own):
                continue
            name = ".".join(str(part) for part in path) or root_name
            info = LayerInfo(name, layer_kind(module), self.framework,
                             {key: ROLES.get(key, key) for key in own},
                             activation=activation_name(type(module).__name__))
            found.append(info)
            self._modules[name] = module
            self._layers_by_path[tuple(path)] = info
            for key, variable in own.items():
                self._params[(*path, key)] = _Param(info, info.params[key],
                                                    outputs_last_layout(np.ndim(variable[...])))
        return found

    # -- installing ---------------------------------------------------------------------------

    def install(self, monitor: Any, layers: list[LayerInfo], kinds: frozenset[str]) -> None:
        self.monitor = monitor
        self._kinds = kinds
        self._selected = {layer.name for layer in layers}
        if kinds & K.PROBE_KINDS:
            self._probe_install()  # before any class is swapped
        if K.ACTIVATIONS in kinds or K.OUTPUT_GRADIENTS in kinds:
            for layer in layers:
                module = self._modules[layer.name]
                self._swaps.swap(module, {"__call__": self._layer_call(layer, type(module).__call__)})
        if K.INPUTS in kinds or K.OUTPUTS in kinds:
            self._swaps.swap(self.model, {"__call__": self._model_call(type(self.model).__call__)})
        claim(self.model, self.optimizer)
        self._claimed = True
        self._swaps.swap(self.optimizer, {"update": self._update(type(self.optimizer).update)})
        self._first_optimizer_step = int(np.asarray(self.optimizer.step[...]))
        if K.LEARNING_RATE in kinds and _learning_rate(self.optimizer.opt_state) is None:
            warnings.warn(
                "ikkuna: the learning rate of this optax transformation cannot be read, so "
                "learning_rate records nothing; make it readable with optax.inject_hyperparams, "
                "e.g. optax.inject_hyperparams(optax.adam)(learning_rate=1e-3), or pass it with "
                "monitor.log(learning_rate=...) at each step",
                RuntimeWarning, stacklevel=4,
            )
        self._attached = True

    def remove(self) -> None:
        self._attached = False
        self._swaps.restore()
        if self._claimed:
            release(self.model, self.optimizer)
            self._claimed = False
        _nnx().pop(self.model, _captured_type())  # outputs of passes no update took
        with self._lock:
            self._buffer.clear()
        self._step_buffered = None  # a step detached between its parts is not finished

    # -- patched methods (run eagerly, or while a step is traced) -----------------------------

    def _layer_call(self, layer: LayerInfo, original: Callable[..., Any]) -> Callable[..., Any]:
        adapter = self

        def __call__(module: Any, *args: Any, **kwargs: Any) -> Any:
            output = original(module, *args, **kwargs)
            if not _is_training_value(output) or not hasattr(output, "shape"):
                return output
            if K.ACTIVATIONS in adapter._kinds and not _keep(module, CAPTURED_PREFIX, output):
                adapter._send(K.ACTIVATIONS, layer, output)  # reaches the host at once instead
            if K.OUTPUT_GRADIENTS in adapter._kinds:
                output = adapter._watch_gradient(layer, output)
            return output

        return __call__

    def _model_call(self, original: Callable[..., Any]) -> Callable[..., Any]:
        adapter = self

        def __call__(model: Any, *args: Any, **kwargs: Any) -> Any:
            output = original(model, *args, **kwargs)
            if _is_training_value(output) and hasattr(output, "shape"):
                if args and hasattr(args[0], "shape") and K.INPUTS in adapter._kinds:
                    if not _keep(model, CAPTURED_INPUTS, args[0]):
                        adapter._send(K.INPUTS, None, args[0])
                if K.OUTPUTS in adapter._kinds and not _keep(model, CAPTURED_OUTPUTS, output):
                    adapter._send(K.OUTPUTS, None, output)
            return output

        return __call__

    def _update(self, original: Callable[..., Any]) -> Callable[..., Any]:
        adapter = self

        def update(optimizer: Any, *args: Any, **kwargs: Any) -> Any:
            nnx, jax = _nnx(), _jax()
            # nnx.Optimizer.update(model, grads); nnx.ModelAndOptimizer.update(grads)
            model, grads = args if len(args) == 2 else (optimizer.model, args[0])
            step = optimizer.step[...]
            # values (immutable arrays) before the update: the state holds live Variables
            before = ({path: v[...] for path, v in nnx.to_flat_state(nnx.state(model, optimizer.wrt))}
                      if K.UPDATES in adapter._kinds else {})
            result = original(optimizer, *args, **kwargs)
            captured = nnx.to_flat_state(nnx.pop(model, _captured_type()))
            outputs = [(adapter._captured_kind(path), v[...]) for path, v in captured]
            adapter._probe_hand_out_state(model, optimizer, step)
            # only what metrics need: every array handed out may change how XLA fuses the step
            grad_leaves = dict(nnx.to_flat_state(grads)) if K.GRADIENTS in adapter._kinds else {}
            deliveries = [(_Delivery(kind, layer, None, CHANNELS_LAST), value)
                          for (kind, layer), value in outputs]
            params = [(path, adapter._params[path], variable)
                      for path, variable in nnx.to_flat_state(nnx.state(model, optimizer.wrt))
                      if path in adapter._params
                      and adapter._params[path].layer.name in adapter._selected]
            value_of = {
                K.GRADIENTS: lambda path, _: (grad_leaves[path][...] if path in grad_leaves
                                              else None),
                K.WEIGHTS: lambda _, variable: variable[...],
                K.UPDATES: lambda path, variable: variable[...] - before[path],
            }
            for kind, value in value_of.items():
                if kind not in adapter._kinds:
                    continue
                deliveries.extend((_Delivery(kind, param.layer, param.role, param.layout), found)
                                  for path, param, variable in params
                                  if (found := value(path, variable)) is not None)
            # the rate this update used (inject_hyperparams stores it with the new state)
            rate = (_learning_rate(optimizer.opt_state)
                    if K.LEARNING_RATE in adapter._kinds else None)
            rates = [] if rate is None else [rate[...]]

            def send() -> None:
                to_host_in_parts(adapter._deliver_part, deliveries, first_extra=(rates,))

            def count() -> None:
                to_host(adapter._deliver_marker)

            scheduled = adapter._scheduled_in_graph(step)
            if scheduled is None:
                send()
            else:
                jax.lax.cond(scheduled, send, count)
            return result

        return update

    def _captured_kind(self, path: tuple[Any, ...]) -> tuple[str, LayerInfo | None]:
        name = str(path[-1])
        if name.startswith(CAPTURED_INPUTS):
            return K.INPUTS, None
        if name.startswith(CAPTURED_OUTPUTS):
            return K.OUTPUTS, None
        return K.ACTIVATIONS, self._layers_by_path.get(tuple(path[:-1]))

    def _scheduled_in_graph(self, step: Any) -> Any:
        """Whether the monitor's ``every=`` records this step, as a traced bool (None: the
        schedule is a Python callable, so every step is sent and the host decides)."""
        every = self.monitor.schedule
        if not isinstance(every, Every):
            return None
        index = step - self._first_optimizer_step
        return (index >= every.start) & ((index - every.start) % every.n == 0)

    def _send(self, kind: str, layer: LayerInfo | None, value: Any) -> None:
        to_host(lambda v: self._buffer_value(kind, layer, v), value)

    def _watch_gradient(self, layer: LayerInfo, output: Any) -> Any:
        jax = _jax()
        adapter = self

        @jax.custom_vjp
        def identity(x: Any) -> Any:
            return x

        def forward(x: Any) -> tuple[Any, None]:
            return x, None

        def backward(_: None, gradient: Any) -> tuple[Any]:
            adapter._send(K.OUTPUT_GRADIENTS, layer, gradient)
            return (gradient,)

        identity.defvjp(forward, backward)
        return identity(output)

    # -- host side ----------------------------------------------------------------------------

    def _buffer_value(self, kind: str, layer: LayerInfo | None, value: Any) -> None:
        with self._lock:
            if self._attached and len(self._buffer) < _MAX_BUFFERED:
                self._buffer.append((kind, layer, np.array(value, copy=True)))

    def _deliver_marker(self) -> None:
        """An unscheduled step: count it, send nothing."""
        self._deliver_part([], True, True, [])

    def _deliver_part(self, deliveries: list[_Delivery], first: bool, last: bool,
                      values: list[Any], rates: list[Any] = ()) -> None:
        """One part of a step's values (:func:`to_host_in_parts`): the first opens the step
        with the values buffered during its passes, the last closes it. The captured values come
        first, then the buffered ones (output gradients; inputs, outputs and activations that
        could not wait on their module), then the parameters."""
        monitor = self.monitor
        if first:
            with self._lock:
                buffered, self._buffer = self._buffer, []
            if not self._attached:
                return
            self._step_buffered = None  # until the step is open: a doctor may raise first
            monitor.training_pass_started()
            monitor.optimizer_step_started()
            monitor.emit(K.STEP_STARTED)
            self._step_buffered = buffered
            if rates and monitor.recording(K.LEARNING_RATE):
                monitor.emit(K.LEARNING_RATE, value=float(np.asarray(rates[0])))
        elif not self._attached or self._step_buffered is None:
            return  # detached mid-step, or the step was never opened
        for delivery, value in zip(deliveries, values):
            if delivery.role is not None:
                self._emit_buffered()
            if monitor.recording(delivery.kind):
                monitor.emit(delivery.kind, layer=delivery.layer, param=delivery.role,
                             array=Array.from_host(value, delivery.layout))
        if last:
            self._emit_buffered()
            self._step_buffered = None
            monitor.emit(K.STEP_FINISHED)
            monitor.optimizer_step_finished()

    def _emit_buffered(self) -> None:
        """The values buffered during the open step's passes, once."""
        buffered, self._step_buffered = self._step_buffered, []
        monitor = self.monitor
        for kind, layer, value in buffered or ():
            if monitor.recording(kind) and (layer is None or layer.name in self._selected):
                monitor.emit(kind, layer=layer, array=Array.from_host(value, CHANNELS_LAST))


def _learning_rate(state: Any) -> Any:
    """The ``learning_rate`` hyperparameter (an NNX variable) of the first transformation
    made with ``optax.inject_hyperparams`` in an optax state (chains and wrappers are looked
    through), or None."""
    hyperparams = getattr(state, "hyperparams", None)
    if isinstance(hyperparams, dict) and "learning_rate" in hyperparams:
        return hyperparams["learning_rate"]
    children = state.values() if isinstance(state, dict) else state
    if isinstance(children, (tuple, list)) or isinstance(state, dict):
        for child in children:
            found = _learning_rate(child)
            if found is not None:
                return found
    return None


class JaxPytreeAdapter(Adapter):
    """Monitors pure JAX training: a params pytree (nested dicts of arrays, e.g. Flax linen's
    ``variables["params"]``) whose steps report themselves with :func:`record_step`.

    A layer is a dict whose values include arrays: ``{"dense1": {"kernel": k, "bias": b}}``
    has the layer ``dense1``; a top-level ``"params"`` key is looked through.
    """

    framework = "jax-pytree"
    accepted = "a JAX params pytree (nested dicts of jax.Array), stepped with ikkuna.jax.record_step"

    def __init__(self, model: Any, optimizer: Any = None) -> None:
        super().__init__(model, optimizer)
        self._params: dict[tuple[str, ...], _Param] = {}
        self._attached = False
        self._step_open = False  # between the first and the last part of a step

    @classmethod
    def accepts(cls, model: Any) -> bool:
        jax = sys.modules.get("jax")
        if jax is None or not isinstance(model, dict) or not model:
            return False
        leaves = jax.tree_util.tree_leaves(model)
        return bool(leaves) and all(isinstance(leaf, jax.Array) for leaf in leaves)

    def versions(self) -> dict[str, str]:
        return {"jax": _jax().__version__}

    def as_array(self, value: Any, layout: Layout) -> Array:
        return Array.from_numpy(value, layout)

    def drain(self) -> None:
        wait_for_host()

    def layers(self) -> list[LayerInfo]:
        found: list[LayerInfo] = []
        self._walk(_look_through_params(self.model), (), found)
        return found

    def _walk(self, tree: dict[str, Any], path: tuple[str, ...], found: list[LayerInfo]) -> None:
        arrays = {str(k): v for k, v in tree.items() if not isinstance(v, dict)}
        if arrays and path:
            info = LayerInfo(".".join(path), "other", self.framework,
                             {key: ROLES.get(key, key) for key in arrays})
            found.append(info)
            for key, value in arrays.items():
                self._params[(*path, key)] = _Param(info, info.params[key],
                                                    outputs_last_layout(np.ndim(value)))
        for key, value in tree.items():
            if isinstance(value, dict):
                self._walk(value, (*path, str(key)), found)

    def install(self, monitor: Any, layers: list[LayerInfo], kinds: frozenset[str]) -> None:
        self.monitor = monitor
        self._selected = {layer.name for layer in layers}
        self._layers = {layer.name: layer for layer in layers}
        self._attached = True

    def remove(self) -> None:
        self._attached = False
        self._step_open = False

    def flatten(self, tree: Any) -> dict[tuple[str, ...], Any]:
        """The leaves of a params-shaped pytree (grads, updates, params) by their path."""
        flat: dict[tuple[str, ...], Any] = {}

        def walk(node: Any, path: tuple[str, ...]) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    walk(value, (*path, str(key)))
            elif (*path,) in self._params:
                flat[path] = node

        walk(_look_through_params(tree) if isinstance(tree, dict) else tree, ())
        return flat

    def deliver_part(self, keys: list[tuple[str, Any]], first: bool, last: bool,
                     values: list[Any], loss: Any = None) -> None:
        """Host side of :func:`record_step`: one part (:func:`to_host_in_parts`) of a step's
        values, keyed ``(kind, layer name or parameter path)``; the first part opens the step,
        the last closes it and logs the loss."""
        if not self._attached:
            return
        monitor = self.monitor
        if first:
            self._step_open = False  # until the opening calls returned (a doctor may raise)
            monitor.training_pass_started()
            monitor.optimizer_step_started()
            monitor.emit(K.STEP_STARTED)
            self._step_open = True
        elif not self._step_open:
            return  # the step was never opened, or detached between its parts
        for (kind, key), value in zip(keys, values):
            if not monitor.recording(kind):
                continue
            if kind == K.ACTIVATIONS:
                layer = self._layers.get(key)
                if layer is not None:
                    monitor.emit(kind, layer=layer, array=Array.from_host(value, CHANNELS_LAST))
                continue
            param = self._params[key]
            if param.layer.name in self._selected:
                monitor.emit(kind, layer=param.layer, param=param.role,
                             array=Array.from_host(value, param.layout))
        if last:
            self._step_open = False
            monitor.emit(K.STEP_FINISHED)
            monitor.optimizer_step_finished()
            if loss is not None:
                monitor.log(loss=float(np.asarray(loss)))


def _look_through_params(tree: dict[str, Any]) -> dict[str, Any]:
    return tree["params"] if set(tree) == {"params"} and isinstance(tree["params"], dict) else tree


def record_step(monitor: Any, *, grads: Any = None, params: Any = None, updates: Any = None,
                activations: dict[str, Any] | None = None, loss: Any = None) -> None:
    """Report one training step of pure JAX code to ``monitor``; call it inside the step,
    jitted or not, after the new params are computed.

    ``grads``, ``params`` (after the update) and ``updates`` are pytrees shaped like the
    params given to ``ikkuna.attach``; ``activations`` maps layer names to their outputs
    (for example Flax linen's ``sow``/``capture_intermediates``); ``loss`` is a scalar.
    The values leave the step in ordered host callbacks of at most ``PART_BYTES`` each (once
    per step, with the global arrays, also when the step runs sharded over several devices).
    """
    adapter = monitor.adapter
    if not isinstance(adapter, JaxPytreeAdapter):
        raise TypeError(
            "ikkuna.jax.record_step needs a monitor attached to a JAX params pytree "
            f"(ikkuna.attach(params)), got one for {adapter.framework!r}"
        )
    deliveries: list[tuple[tuple[str, Any], Any]] = [
        ((K.ACTIVATIONS, name), _one_array(name, value))
        for name, value in (activations or {}).items()]
    for kind, tree in ((K.GRADIENTS, grads), (K.WEIGHTS, params), (K.UPDATES, updates)):
        if tree is not None:
            deliveries.extend(((kind, path), value) for path, value in adapter.flatten(tree).items())
    to_host_in_parts(adapter.deliver_part, deliveries, last_extra=(loss,))


def _one_array(name: str, value: Any) -> Any:
    """A layer's output from what people pass: an array, or what Flax linen's
    ``capture_intermediates``/``sow`` leave (``{"__call__": (array,)}``, a tuple of arrays)."""
    while isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    if isinstance(value, (tuple, list)) and value:
        value = value[-1]
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise TypeError(
            f"record_step(activations=...) needs an array per layer name; {name!r} is "
            f"{type(value).__name__} (accepted: an array, a tuple of arrays, or Flax's "
            "{'__call__': (array,)})"
        )
    return value
