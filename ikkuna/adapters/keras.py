"""Keras 3 adapter (TensorFlow backend): patched ``call``s and optimizer ``apply`` to events.

Keras has no forward hooks, and ``fit`` runs each step as a traced ``tf.function``. The
adapter wraps, on the instances only, each layer's ``call`` (its output, and through an
identity with a custom gradient the gradient of that output), the model's ``call``
(inputs, outputs) and ``compute_loss`` (labels, loss), and the optimizer's ``apply``. The
tensors one step collects leave the step in one host callback placed after the weight
update: eagerly it runs at once, in a traced step it is an op of the graph. XLA cannot run
host callbacks, so a model compiled with ``jit_compile=True`` trains without XLA while
attached, and says so once. ``detach()`` puts every patched attribute back. The probe (fixed
batch metrics) runs outside that callback: see ``keras_probe``.

Under ``tf.distribute.MirroredStrategy`` each replica runs the step in a thread of its own:
the values each replica collects are kept apart, and after the update one ``merge_call``
delivers the step once, with the global values (the replicas' batch parts concatenated, the
gradients summed as the all-reduce does): see ``_deliver_merged``.

Keras and TensorFlow are imported on first use, never when ikkuna is imported.
"""

from __future__ import annotations

import functools
import sys
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ikkuna.adapters.base import Adapter, claim, release
from ikkuna.adapters.keras_probe import PROBE_CAPABILITIES, KerasProbe
from ikkuna.core import kinds as K
from ikkuna.core.arrays import CHANNELS_LAST, Array, Layout, outputs_last_layout
from ikkuna.core.layers import LayerInfo, activation_name
from ikkuna.core.schedule import Every

ROLES = {"kernel": "weight", "embeddings": "weight", "gamma": "weight", "bias": "bias",
         "beta": "bias"}
_STEP_KINDS = (K.ACTIVATIONS, K.OUTPUT_GRADIENTS, K.INPUTS, K.OUTPUTS, K.LABELS, K.LOSS)


def _keras() -> Any:
    try:
        import keras
    except ImportError as error:  # pragma: no cover - only without keras
        raise ImportError("the Keras adapter needs keras and tensorflow: "
                          "pip install 'ikkuna[tensorflow]'") from error
    return keras


def _tf() -> Any:
    import tensorflow as tf

    return tf


def layer_kind(layer: Any) -> str:
    layers = _keras().layers
    if isinstance(layer, layers.Dense):
        return "dense"
    if isinstance(layer, layers.Conv2D) and not isinstance(layer, layers.Conv2DTranspose):
        return "conv2d"
    if isinstance(layer, (layers.BatchNormalization, layers.LayerNormalization,
                          layers.GroupNormalization, layers.UnitNormalization)):
        return "norm"
    if isinstance(layer, layers.Embedding):
        return "embedding"
    return "other"


_ACTIVATION_LAYER_MODULE = "keras.src.layers.activations."
_OWN_ACTIVATION_MODULES = ("keras.src.layers.core.", "keras.src.layers.convolutional.")


def layer_activation(layer: Any) -> str | None:
    """The neutral name of the activation a Keras layer applies last: the ``activation`` of
    ``Activation``, ``Dense``, ``EinsumDense`` and conv layers (``"linear"`` is None), or the
    activation layer itself (``ReLU`` with its defaults, ``Softmax``, ``ELU``, ...)."""
    for cls in type(layer).__mro__:
        module = cls.__module__
        if module.startswith(_ACTIVATION_LAYER_MODULE) and cls.__name__ != "Activation":
            if cls.__name__ == "ReLU":
                return _relu_name(layer)
            return activation_name(cls.__name__)
        if module.startswith(_OWN_ACTIVATION_MODULES + (_ACTIVATION_LAYER_MODULE,)):
            function = getattr(layer, "activation", None)
            return activation_name(getattr(function, "__name__", None)) if callable(function) else None
    return None


def _relu_name(layer: Any) -> str | None:
    if layer.negative_slope or layer.threshold:
        return None
    return {None: "relu", 6: "relu6"}.get(layer.max_value)


def parameter_layout(layer: Any, name: str, ndim: int) -> Layout:
    """Keras kernels are ``(in, out)``, conv kernels ``(*kernel, in, out)``; transposed conv
    kernels ``(*kernel, out, in)``."""
    if ndim >= 2 and name == "kernel" and isinstance(layer, _keras().layers.Conv2DTranspose):
        return Layout(out_axis=ndim - 2, in_axis=ndim - 1)
    return outputs_last_layout(ndim)


@dataclass(frozen=True)
class _Slot:
    """What one tensor handed to the host callback is."""

    kind: str
    layer: LayerInfo | None = None
    param: str | None = None
    layout: Layout = CHANNELS_LAST


class _Patches:
    """Instance attributes replaced on Keras objects, and how to put each back."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, bool, Any]] = []

    def replace(self, target: Any, name: str, make: Callable[[Any], Any]) -> None:
        had = name in vars(target)
        original = getattr(target, name)
        self._saved.append((target, name, had, vars(target).get(name)))
        object.__setattr__(target, name, make(original))

    def restore(self) -> None:
        for target, name, had, value in reversed(self._saved):
            if had:
                object.__setattr__(target, name, value)
            else:
                object.__delattr__(target, name)
        self._saved.clear()


def host_values(value: Any) -> Any:
    """A value ``monitor.log`` was given, as host data numpy can copy: tensors and variables
    through their own ``numpy()`` (numpy's ``np.array(tensor)`` fails on a 0-d bfloat16
    EagerTensor and warns about ``__array__`` on every call); anything else unchanged."""
    if isinstance(value, np.ndarray) or not callable(getattr(value, "numpy", None)):
        return value
    return value.numpy()


class KerasAdapter(KerasProbe, Adapter):
    """Monitors a Keras 3 model (Sequential, functional, subclassed) on TensorFlow."""

    framework = "keras"
    accepted = "keras.Model or keras.layers.Layer (Keras 3, TensorFlow backend)"
    #: ``learning_rate``: ``optimizer.learning_rate``, a schedule's value at the step's iteration;
    #: the probe's capabilities (see ``keras_probe``: after fit's train function, eager steps).
    capabilities = frozenset({"learning_rate"}) | PROBE_CAPABILITIES

    def __init__(self, model: Any, optimizer: Any = None) -> None:
        super().__init__(model, optimizer)
        keras = _keras()
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                f"ikkuna's Keras adapter needs the TensorFlow backend, Keras runs on "
                f"{keras.backend.backend()!r}; set KERAS_BACKEND=tensorflow"
            )
        if optimizer is not None and not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(
                "optimizer= for a Keras model must be a keras.optimizers.Optimizer or None, got "
                f"{type(optimizer).__module__}.{type(optimizer).__qualname__}"
            )
        if not model.built:
            raise ValueError(
                f"Keras model {model.name!r} is not built yet; build it first (call it on a "
                "batch, or give it a keras.Input) so that its weights exist"
            )
        self._layers: dict[str, Any] = {}
        self._patches = _Patches()
        #: values collected while a step runs or is traced, per replica (``_replica_key``)
        self._pending: dict[Any, list[tuple[_Slot, Any]]] = {}
        self._variables: dict[int, tuple[LayerInfo, str, Layout]] = {}
        self._kinds: frozenset[str] = frozenset()
        self._attached = False
        self._claimed = False
        self._warned_xla = False
        self._warned_other_graph = False
        self._warned_workers = False

    @classmethod
    def accepts(cls, model: Any) -> bool:
        keras = sys.modules.get("keras")
        return keras is not None and isinstance(model, keras.layers.Layer)

    def versions(self) -> dict[str, str]:
        return {"keras": _keras().__version__, "tensorflow": _tf().__version__}

    def as_array(self, value: Any, layout: Layout) -> Array:
        return Array.from_numpy(host_values(value), layout)

    # -- layers -------------------------------------------------------------------------------

    def layers(self) -> list[LayerInfo]:
        found: list[LayerInfo] = []
        self._walk(self.model, "", found)
        return found

    def _walk(self, layer: Any, path: str, found: list[LayerInfo]) -> None:
        children = [c for c in layer._flatten_layers(include_self=False, recursive=False)
                    if not isinstance(c, _keras().layers.InputLayer)]
        own = [v for v in layer._trainable_variables]
        if path and (not children or own):
            params = {v.name: ROLES.get(v.name, v.name) for v in own}
            info = LayerInfo(path, layer_kind(layer), self.framework, params,
                             activation=layer_activation(layer))
            found.append(info)
            self._layers[path] = layer
            for variable in own:
                layout = parameter_layout(layer, variable.name, len(variable.shape))
                self._variables[id(variable)] = (info, params[variable.name], layout)
        for child in children:
            self._walk(child, f"{path}.{child.name}" if path else child.name, found)

    # -- installing ---------------------------------------------------------------------------

    def install(self, monitor: Any, layers: list[LayerInfo], kinds: frozenset[str]) -> None:
        self.monitor = monitor
        self._kinds = kinds
        optimizer = self.optimizer or getattr(self.model, "optimizer", None)
        if optimizer is None:
            raise ValueError(
                f"Keras model {self.model.name!r} has no optimizer: compile it first, or pass "
                "optimizer= to ikkuna.attach (the optimizer whose steps count)"
            )
        if isinstance(optimizer, _keras().optimizers.LossScaleOptimizer):
            optimizer = optimizer.inner_optimizer  # it gets the gradients unscaled
        self.optimizer = optimizer
        claim(self.model, optimizer)
        self._claimed = True
        if K.ACTIVATIONS in kinds or K.OUTPUT_GRADIENTS in kinds:
            for layer in layers:
                self._patches.replace(self._layers[layer.name], "call",
                                      functools.partial(self._layer_call, layer))
        self._patches.replace(self.model, "call", self._model_call)
        if hasattr(self.model, "compute_loss"):
            self._patches.replace(self.model, "compute_loss", self._compute_loss)
        self._patches.replace(optimizer, "apply", self._apply)
        if hasattr(self.model, "make_train_function"):
            self._saved_jit_compile = getattr(self.model, "_jit_compile", None)
            self._patches.replace(self.model, "make_train_function", self._make_train_function)
        self._first_iteration = int(np.asarray(optimizer.iterations))
        self._attached = True
        self._retrace_train_function()

    def remove(self) -> None:
        self._attached = False
        self._patches.restore()
        if self._claimed:
            release(self.model, self.optimizer)
            self._claimed = False
        if self._warned_xla:
            self.model._jit_compile = self._saved_jit_compile
        self._retrace_train_function()
        self._pending.clear()
        self._probe_functions = self._probe_waiting = None

    def _retrace_train_function(self) -> None:
        """Rebuild fit's step function, if one exists: fit looks it up anew at every step."""
        if getattr(self.model, "train_function", None) is not None:
            self.model.make_train_function(force=True)

    # -- wrappers (run when a step runs eagerly, or while it is traced) -----------------------

    def _layer_call(self, layer: LayerInfo, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def call(*args: Any, **kwargs: Any) -> Any:
            output = original(*args, **kwargs)
            if not self._recording_pass(output):
                return output
            if K.ACTIVATIONS in self._kinds:
                self._remember(_Slot(K.ACTIVATIONS, layer), _first_tensor(output))
            if K.OUTPUT_GRADIENTS in self._kinds:
                output = self._watch_gradient(output, _Slot(K.OUTPUT_GRADIENTS, layer))
            return output

        return call

    def _model_call(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def call(*args: Any, **kwargs: Any) -> Any:
            output = original(*args, **kwargs)
            if self._recording_pass(output):
                if _tf().executing_eagerly() and self.monitor.between_steps:
                    self.monitor.training_pass_started()  # values logged now belong to it
                inputs = args[0] if args else next(iter(kwargs.values()), None)
                for kind, value in ((K.INPUTS, inputs), (K.OUTPUTS, output)):
                    tensor = _first_tensor(value)
                    if kind in self._kinds and tensor is not None:
                        self._remember(_Slot(kind), tensor)
            return output

        return call

    def _compute_loss(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def compute_loss(*args: Any, **kwargs: Any) -> Any:
            loss = original(*args, **kwargs)
            if kwargs.get("training", True) and self._attached:
                labels = _first_tensor(kwargs.get("y", args[1] if len(args) > 1 else None))
                if labels is not None and K.LABELS in self._kinds:
                    self._remember(_Slot(K.LABELS, layout=Layout(batch_axis=0)), labels)
                self._remember(_Slot(K.LOSS, layout=Layout()), loss)
            return loss

        return compute_loss

    def _make_train_function(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def make_train_function(*args: Any, **kwargs: Any) -> Any:
            if self._attached and getattr(self.model, "jit_compile", False):
                self._disable_xla()
            result = original(*args, **kwargs)
            if self._attached and self._kinds & K.PROBE_KINDS:
                self._probe_wrap_train_function()  # the probe runs when a step returns
            return result

        return make_train_function

    def _disable_xla(self) -> None:
        self.model.jit_compile = False
        if not self._warned_xla:
            self._warned_xla = True
            warnings.warn(
                f"ikkuna: Keras model {self.model.name!r} is compiled with jit_compile=True; "
                "XLA cannot run ikkuna's host callback, so fit() trains without XLA while "
                "ikkuna is attached. detach() restores jit_compile.",
                RuntimeWarning,
                stacklevel=4,
            )

    def _apply(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def apply(grads: Any, trainable_variables: Any = None) -> Any:
            if not self._attached or _in_xla_context():
                return original(grads, trainable_variables)
            variables = list(trainable_variables if trainable_variables is not None
                             else self.optimizer._trainable_variables)
            watched = [(v, self._variables[id(v)]) for v in variables if id(v) in self._variables]
            slots, tensors = self._take_pending()
            tf = _tf()
            iteration = tf.convert_to_tensor(self.optimizer.iterations)  # before this update
            if K.LEARNING_RATE in self._kinds:  # the rate this update uses
                slots.append(_Slot(K.LEARNING_RATE, layout=Layout()))
                tensors.append(tf.convert_to_tensor(self.optimizer.learning_rate))
            if K.GRADIENTS in self._kinds:
                for variable, grad in zip(variables, grads):
                    known = self._variables.get(id(variable))
                    if known is not None and grad is not None:
                        slots.append(_Slot(K.GRADIENTS, *known))
                        tensors.append(_Recomputed(tf.convert_to_tensor(grad)))  # IndexedSlices too
            before = [tf.identity(v.value) for v, _ in watched] if K.UPDATES in self._kinds else []
            result = original(grads, trainable_variables)
            for index, (variable, (layer, role, layout)) in enumerate(watched):
                after = tf.identity(variable.value)
                if K.WEIGHTS in self._kinds:
                    slots.append(_Slot(K.WEIGHTS, layer, role, layout))
                    tensors.append(after)
                if before:
                    slots.append(_Slot(K.UPDATES, layer, role, layout))
                    tensors.append(after - before[index])
            replica = _synchronized_replica_context()
            if replica is None:
                self._deliver_after(slots, tensors, iteration)
            else:  # once for all replicas, after each has updated its copy of the weights
                values = tuple(_materialize(t, in_branch=False) for t in tensors)
                replica.merge_call(functools.partial(self._deliver_merged, tuple(slots)),
                                   args=(values, iteration))
            return result

        return apply

    # -- helpers ------------------------------------------------------------------------------

    def _recording_pass(self, output: Any) -> bool:
        """A training pass with real (not symbolic) tensors, while attached."""
        tensor = _first_tensor(output)
        if not self._attached or tensor is None or isinstance(tensor, _keras().KerasTensor):
            return False
        if _in_xla_context():
            return False
        return bool(_call_context_training())

    def _watch_gradient(self, output: Any, slot: _Slot) -> Any:
        tf = _tf()
        tensor = _first_tensor(output)
        if tensor is None or not tensor.dtype.is_floating or tensor is not output:
            return output

        @tf.custom_gradient
        def identity(x: Any) -> Any:
            def gradient(upstream: Any) -> Any:
                self._remember(slot, upstream)
                return upstream

            return tf.identity(x), gradient

        return identity(tensor)

    def _remember(self, slot: _Slot, tensor: Any) -> None:
        self._pending.setdefault(_replica_key(), []).append((slot, tensor))

    def _take_pending(self) -> tuple[list[_Slot], list[Any]]:
        """The collected tensors that belong to the step (and replica) being run or traced now."""
        tf = _tf()
        graph = None if tf.executing_eagerly() else tf.compat.v1.get_default_graph()
        # the step's graph and those it is nested in (a cond branch of LossScaleOptimizer)
        graphs = []
        while graph is not None:
            graphs.append(graph)
            graph = getattr(graph, "outer_graph", None)
        slots, tensors = [], []
        dropped = 0
        for slot, tensor in self._pending.pop(_replica_key(), []):
            tensor_graph = getattr(tensor, "graph", None) if not _is_eager(tensor) else None
            if (not graphs and tensor_graph is None) or any(tensor_graph is g for g in graphs):
                slots.append(slot)
                tensors.append(tensor)
            else:
                dropped += 1
        if dropped and not self._warned_other_graph:
            self._warned_other_graph = True
            warnings.warn(
                f"ikkuna: {dropped} layer values of model {self.model.name!r} were computed in "
                "another tf.function than the optimizer step and cannot be recorded; compute the "
                "forward pass and apply the gradients in the same tf.function (or both eagerly)",
                RuntimeWarning, stacklevel=4,
            )
        return slots, tensors

    def _deliver_after(self, slots: list[_Slot], tensors: list[Any], iteration: Any) -> None:
        """Hand one step's tensors to the monitor: now if eager, else as a graph op.

        Steps the monitor's ``every=`` skips hand over only the loss (cheap), decided on the
        host when eager and inside the graph, from the optimizer's iteration count, when traced
        (a ``tf.cond``; a step that hands over only the loss anyway, as with no metrics, has
        none).

        In a traced step the callback never reads a gradient tensor the optimizer reads: it
        reads a copy computed inside the branch that sends (see ``_recompute``). A second
        reader would stop TensorFlow's graph optimizer from rewriting the optimizer's
        arithmetic on the gradient as it does without ikkuna (with BatchNormalization it
        reorders ``lr * (a * b)`` to ``(lr * a) * b``), and the weights would differ in the
        last bits. Likewise a layer's output that the next layer's activation reads (a
        ``Dense`` without activation, then ``Activation("tanh")``) is read as a copy of its
        matmul or convolution: a second reader would keep the graph optimizer from fusing
        them into one op (``_FusedMatMul`` with tanh), whose tanh rounds differently.
        """
        tf = _tf()
        light = [(slot, tensor) for slot, tensor in zip(slots, tensors) if slot.kind == K.LOSS]
        deliver_all = functools.partial(self._deliver, tuple(slots))
        deliver_light = functools.partial(self._deliver, tuple(slot for slot, _ in light))
        if tf.executing_eagerly():
            tensors = [_materialize(t, in_branch=False) for t in tensors]
            light = [(slot, _materialize(t, in_branch=False)) for slot, t in light]
            monitor = self.monitor
            step = monitor.step + (1 if monitor.between_steps else 0)
            self._probe_eager = True  # a probe due on this step runs at once
            try:
                if monitor.schedule(step):
                    deliver_all(*[np.asarray(t) for t in tensors])  # numpy inputs pass through
                else:
                    deliver_light(*[np.asarray(t) for _, t in light])
            finally:
                self._probe_eager = False
            return
        if len(light) == len(slots):
            # only the loss, on every step: nothing to choose and no copies to keep apart, so
            # no tf.cond (about 40 µs of a step where the monitor has no metrics)
            values = [_materialize(t, in_branch=False) for _, t in light]
            tf.numpy_function(deliver_light, values, Tout=[], stateful=True, name="ikkuna_count")
            return
        scheduled = self._scheduled_in_graph(iteration)
        tensors = [_as_sent(slot.kind, tensor) for slot, tensor in zip(slots, tensors)]

        def send_all() -> Any:
            values = [_materialize(t, in_branch=True) for t in tensors]
            tf.numpy_function(deliver_all, values, Tout=[], stateful=True, name="ikkuna_deliver")
            return tf.constant(0)

        def send_light() -> Any:
            values = [_materialize(t, in_branch=True) for _, t in light]
            tf.numpy_function(deliver_light, values, Tout=[], stateful=True,
                              name="ikkuna_count")
            return tf.constant(0)

        if scheduled is None:
            # always true, but not to the graph optimizer: the branch keeps the copies apart
            scheduled = iteration >= 0
        tf.cond(scheduled, send_all, send_light)

    def _deliver_merged(self, slots: tuple[_Slot, ...], strategy: Any, values: tuple[Any, ...],
                        iteration: Any) -> None:
        """One step's values from every replica of a synchronized strategy (MirroredStrategy),
        delivered once, as the global values: run by ``merge_call`` in cross-replica context.

        Each replica saw its part of the global batch: batch values (activations, their
        gradients, inputs, outputs, labels) are the replicas' parts concatenated in replica
        order, which is the order of the global batch. Keras scales each replica's loss by
        1 / replicas (``scale_loss_for_distribution``), so the loss, and each gradient, is the
        sum over the replicas: the gradient the optimizer's all-reduce (a sum) applies. The
        weights, updates and learning rate are the same on every replica: the first one's.
        """
        local = strategy.experimental_local_results
        iterations = local(iteration)
        if len(iterations) < strategy.num_replicas_in_sync and not self._warned_workers:
            self._warned_workers = True
            warnings.warn(
                f"ikkuna: model {self.model.name!r} trains on {strategy.num_replicas_in_sync} "
                f"replicas, {len(iterations)} of them in this process; ikkuna records this "
                "process's replicas only (its part of the batch, its part of the gradient sum)",
                RuntimeWarning, stacklevel=2,
            )
        combined = [_Replicas(tuple(local(value)), _COMBINE.get(slot.kind, "first"),
                              recompute=_copied_ops(slot.kind, local(value)))
                    for slot, value in zip(slots, values)]
        self._deliver_after(list(slots), combined, iterations[0])

    def _scheduled_in_graph(self, iteration: Any) -> Any:
        """Whether the monitor's ``every=`` records this step, as a graph bool (None: the
        schedule is a Python callable, so every step is sent and the host decides)."""
        every = self.monitor.schedule
        if not isinstance(every, Every):
            return None
        index = iteration - self._first_iteration
        return (index >= every.start) & ((index - every.start) % every.n == 0)

    def _deliver(self, slots: tuple[_Slot, ...], *values: np.ndarray) -> list[Any]:
        if not self._attached:
            return []
        monitor = self.monitor
        monitor.training_pass_started()
        monitor.optimizer_step_started()
        monitor.emit(K.STEP_STARTED)
        for slot, value in zip(slots, values):
            if slot.kind == K.LOSS:
                monitor.log(loss=float(np.asarray(value)))
            elif slot.kind == K.LEARNING_RATE:
                if monitor.recording(K.LEARNING_RATE):
                    monitor.emit(K.LEARNING_RATE, value=float(np.asarray(value)))
            elif monitor.recording(slot.kind):
                monitor.emit(slot.kind, layer=slot.layer, param=slot.param,
                             array=Array.from_host(value, slot.layout))
        monitor.emit(K.STEP_FINISHED)
        monitor.optimizer_step_finished()
        return []


def make_callback_class() -> type:
    """Build ``ikkuna.keras.Callback`` (a subclass of ``keras.callbacks.Callback``)."""
    keras = _keras()

    class Callback(keras.callbacks.Callback):
        """ikkuna in ``model.fit``: marks epochs and stores Keras' logged metrics.

        ``Callback(monitor)`` works with a monitor from ``ikkuna.attach``; ``Callback(**options)``
        attaches at the start of ``fit`` with those ``attach`` options and detaches at its end.
        Batch logs are stored as Keras reports them (running means over the epoch, named as in
        the logs, without ``loss``: the per-step loss comes from the step itself); epoch-end
        logs as ``epoch_<name>`` (``epoch_loss``, ``epoch_val_accuracy``).
        """

        def __init__(self, monitor: Any = None, **attach_options: Any) -> None:
            super().__init__()
            if monitor is not None and attach_options:
                raise TypeError("ikkuna.keras.Callback takes a monitor or attach options, not both")
            self.monitor = monitor
            self._attach_options = attach_options
            self._owns_monitor = False

        def on_train_begin(self, logs: Any = None) -> None:
            if self.monitor is None:
                from ikkuna.core.attach import attach

                self.monitor = attach(self.model, **self._attach_options)
                self._owns_monitor = True

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.monitor.start_epoch(epoch)

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            scalars = {k: v for k, v in _numbers(logs).items() if k != "loss"}
            if scalars and self.monitor.attached:
                self.monitor.log(**scalars)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if self.monitor.attached:
                self.monitor.log(**{f"epoch_{k}": v for k, v in _numbers(logs).items()})
            self.monitor.finish_epoch()

        def on_train_end(self, logs: Any = None) -> None:
            if self._owns_monitor:
                self.monitor.detach()
                self.monitor, self._owns_monitor = None, False

    return Callback


def _numbers(logs: Any) -> dict[str, float]:
    numbers = {}
    for name, value in (logs or {}).items():
        try:
            numbers[name] = float(np.asarray(value))
        except (TypeError, ValueError):
            continue
    return numbers


@dataclass(frozen=True)
class _Recomputed:
    """A value the host callback gets as a copy made where it is sent (``_recompute``): a
    gradient, or a layer output that an activation fused with its producer reads."""

    tensor: Any
    producers: frozenset[str] | None = None  # the ops it may copy (None: _ELEMENTWISE)


#: How the replicas' values of one kind make the global value (see ``_deliver_merged``).
_COMBINE = {K.ACTIVATIONS: "concat", K.OUTPUT_GRADIENTS: "concat", K.INPUTS: "concat",
            K.OUTPUTS: "concat", K.LABELS: "concat", K.GRADIENTS: "sum", K.LOSS: "sum"}


@dataclass(frozen=True)
class _Replicas:
    """One value of each replica, combined (``"concat"`` on axis 0, ``"sum"``, or the
    ``"first"``) where the value is sent; read as copies (``_recompute``) made of the ops in
    ``recompute`` where it is given."""

    parts: tuple[Any, ...]
    combine: str
    recompute: frozenset[str] | None = None


def _materialize(value: Any, in_branch: bool) -> Any:
    """The tensor the host callback reads for one collected value: a gradient computed again
    inside the sending branch (``in_branch``, see ``_recompute``), replicas' values combined."""
    if isinstance(value, _Recomputed):
        if not in_branch:
            return value.tensor
        return _recompute(value.tensor, value.producers or _ELEMENTWISE)
    if not isinstance(value, _Replicas):
        return value
    parts = value.parts[:1] if value.combine == "first" else value.parts
    if value.recompute is not None and in_branch:
        parts = tuple(_recompute(part, value.recompute) for part in parts)
    if len(parts) == 1:
        return parts[0]
    tf = _tf()
    if value.combine == "concat":
        return tf.concat(parts, axis=0)
    return tf.add_n(list(parts))


#: Ops whose output is no larger than their inputs together and cheap to compute again: the
#: ones whose chains TensorFlow's graph optimizer rewrites (reorders, merges, folds).
_ELEMENTWISE = frozenset({
    "Add", "AddN", "AddV2", "Cast", "Div", "DivNoNan", "ExpandDims", "Identity",
    "Maximum", "Minimum", "Mul", "MulNoNan", "Neg", "RealDiv", "Reciprocal", "Reshape", "Rsqrt",
    "Select", "SelectV2", "Sqrt", "Square", "SquaredDifference", "Squeeze", "Sub",
})
#: Ops the graph optimizer fuses with an activation op that reads their output, and the
#: activations whose fused form (``_FusedMatMul``, ``_FusedConv2D``) rounds differently from
#: the separate op, so the fusion must happen as without ikkuna. Rectifiers (Relu, Relu6,
#: LeakyRelu) give the same bits fused or not, and their inputs are read as they are.
_FUSED_PRODUCERS = _ELEMENTWISE | {"BatchMatMulV2", "BiasAdd", "Conv2D", "DepthwiseConv2dNative",
                                   "MatMul"}
_FUSED_ACTIVATIONS = frozenset({"Elu", "Sigmoid", "Tanh"})


def _recompute(tensor: Any, producers: frozenset[str] = _ELEMENTWISE) -> Any:
    """``tensor`` computed again in the current graph (a ``tf.cond`` branch) by copies of its
    producer and of those inputs that only it reads, as long as their ops are ``producers``
    (elementwise by default; a matmul or convolution too for ``_FUSED_PRODUCERS``).

    The copies read the same inputs, so they give the same bits, and they are the only
    readers the host callback adds: the original chain keeps its single reader (the
    optimizer) and the graph optimizer rewrites it as it would without ikkuna. Inside a
    branch the copies have other inputs (the branch's) and are not merged with the originals.
    A tensor made by another op (a matmul, a reduction) is read as it is: the cost of copying
    is at most a few passes over one parameter's gradient, on recorded steps only.
    """
    if _is_eager(tensor):  # a captured constant
        return tensor
    op = tensor.op
    if op.type not in producers or len(op.outputs) != 1:
        return tensor
    inputs = [_recompute(i, producers) if len(i.consumers()) == 1 else i for i in op.inputs]
    attrs = {name: value for name, value in op.node_def.attr.items()
             if not name.startswith("_")}
    graph = _tf().compat.v1.get_default_graph()
    copy = graph._create_op_internal(op.type, inputs, [tensor.dtype], attrs=attrs,
                                     name="ikkuna_gradient")
    return copy.outputs[0]


def _as_sent(kind: str, tensor: Any) -> Any:
    """A traced value of ``kind`` as the sending branch reads it: a copy where ``_copied_ops``
    says so (values already marked, a gradient or the replicas' values, stay as they are)."""
    if isinstance(tensor, (_Recomputed, _Replicas)):
        return tensor
    producers = _copied_ops(kind, [tensor])
    return tensor if producers is None else _Recomputed(tensor, producers)


def _copied_ops(kind: str, tensors: Any) -> frozenset[str] | None:
    """The ops of which the host callback reads copies for a value of ``kind`` (traced
    ``tensors``: one, or one per replica); None where it reads the tensors themselves.
    Gradients are always copied (see ``_deliver_after``); activations where a fusable
    activation reads them."""
    if kind == K.GRADIENTS:
        return _ELEMENTWISE
    if kind == K.ACTIVATIONS and any(_feeds_fused_activation(t) for t in tensors):
        return _FUSED_PRODUCERS
    return None


def _feeds_fused_activation(tensor: Any) -> bool:
    """Whether a traced tensor is read (directly or through identities) by an activation op
    that the graph optimizer may fuse with the op that made it."""
    if not hasattr(tensor, "consumers") or _is_eager(tensor):
        return False
    for consumer in tensor.consumers():
        if consumer.type in _FUSED_ACTIVATIONS:
            return True
        if consumer.type in ("Identity", "IdentityN") and any(
                _feeds_fused_activation(output) for output in consumer.outputs):
            return True
    return False


def _first_tensor(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return next((v for v in value if hasattr(v, "dtype") and hasattr(v, "shape")), None)
    if isinstance(value, dict):
        return next((v for v in value.values() if hasattr(v, "dtype")), None)
    return value if hasattr(value, "dtype") and hasattr(value, "shape") else None


def _is_eager(tensor: Any) -> bool:
    """An EagerTensor: asking for its graph raises."""
    try:
        _ = tensor.graph
    except AttributeError:
        return True
    return False


def _call_context_training() -> Any:
    from keras.src.backend.common import global_state

    context = global_state.get_global_attribute("current_call_ctx")
    return None if context is None else context.get_value("training")


def _synchronized_replica_context() -> Any:
    """The replica context of a ``tf.distribute`` strategy with more than one replica in
    sync (MirroredStrategy inside ``strategy.run``), else None."""
    context = _tf().distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def _replica_key() -> Any:
    """Which replica collects values now: None outside a synchronized strategy, else the
    replica's id in its sync group (MirroredStrategy runs each replica in a thread of its own,
    and their values must not mix)."""
    context = _synchronized_replica_context()
    if context is None:
        return None
    replica = getattr(context, "_replica_id_in_sync_group", None)
    return replica if isinstance(replica, int) else threading.get_ident()


def _in_xla_context() -> bool:
    from tensorflow.python.framework import ops
    from tensorflow.python.ops import control_flow_util

    return bool(control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()))
