"""The probe in Keras 3 (TensorFlow), mixed into :class:`ikkuna.adapters.keras.KerasAdapter`.

Every pass calls the model with ``training=False`` (dropout off, BatchNormalization on its
moving statistics, no seed generator drawn from, no variable assigned) and reads gradients with
``tf.GradientTape``: gradients per micro-batch one ``tf.function`` call each, Hessian-vector
products back over back (a tape around a tape). The adapter's own wrappers ignore these passes:
they record only training passes. Layer outputs are captured by wrapping the layers' ``call``
for the one forward pass of the probe.

Where the probe runs (never inside ikkuna's host callback, where calling TensorFlow can
deadlock):

* ``fit`` (and ``train_on_batch``): the patched ``make_train_function`` wraps the train
  function; a probe due on a step is run on the caller's thread when the train function
  returns. With ``steps_per_execution > 1`` that is once per execution, on the weights after
  the execution's last step, recorded under the last probed step of the execution (earlier
  probed steps of the execution are not probed).
* steps run eagerly (a plain Python loop calling ``optimizer.apply``, ``run_eagerly=True``):
  at the end of the step's ``apply``, as the step's values are delivered.
* a training step compiled by the user with ``tf.function`` outside ``fit``: there is no
  point in Python between steps to run it, so probed steps are skipped, with one warning.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ikkuna.core.arrays import CHANNELS_LAST, Array, Layout, outputs_last_layout
from ikkuna.core.layers import LayerInfo
from ikkuna.core.probe import (
    HESSIAN_VECTOR_PRODUCT,
    PROBE_ACTIVATIONS,
    PROBE_GRADIENTS,
    Probe,
    ProbeParameter,
    ProbeSession,
    map_leaves,
)

PROBE_CAPABILITIES = frozenset({PROBE_ACTIVATIONS, PROBE_GRADIENTS, HESSIAN_VECTOR_PRODUCT})
#: Marks a train function the adapter wrapped (``make_train_function`` may return it again).
_WRAPPED = "_ikkuna_probe_wrapped"


class KerasProbe:
    """Probe methods of the Keras adapter (``self.model``, ``self._layers``,
    ``self._variables``)."""

    model: Any
    _layers: dict[str, Any]
    _variables: dict[int, tuple[LayerInfo, str, Layout]]

    #: > 0 while fit's train function runs: probes wait for it to return.
    _probe_in_fit = 0
    #: True while an eagerly run step delivers its values: probes run at once.
    _probe_eager = False
    _probe_waiting: Callable[[], None] | None = None
    _probe_warned_compiled = False
    _probe_functions: dict[Any, Callable[..., Any]] | None = None

    # -- where the probe runs -----------------------------------------------------------------

    def run_probe(self, task: Callable[[], None]) -> None:
        if self._probe_eager:
            task()  # an eager step, on the user's thread, after the update
        elif self._probe_in_fit:
            self._probe_waiting = task  # fit's train function runs it when it returns
        elif not self._probe_warned_compiled:
            self._probe_warned_compiled = True
            warnings.warn(
                f"ikkuna: the probe metrics of Keras model {self.model.name!r} cannot run in a "
                "training step compiled with tf.function outside Model.fit (there is no point "
                "between steps to run the probe); these steps are not probed. Train with fit, "
                "or run the step eagerly",
                RuntimeWarning, stacklevel=2,
            )

    def finish_probes(self) -> None:
        self._run_waiting_probe()
        self._probe_functions = None

    def _run_waiting_probe(self) -> None:
        task, self._probe_waiting = self._probe_waiting, None
        if task is None:
            return
        try:
            task()
        except Exception as error:  # noqa: BLE001 - a probe must never stop training
            warnings.warn(f"ikkuna: the probe failed: {type(error).__name__}: {error}",
                          RuntimeWarning, stacklevel=3)

    def _probe_wrap_train_function(self) -> None:
        """Wrap ``model.train_function`` so that a probe due on its steps runs after it."""
        function = getattr(self.model, "train_function", None)
        if function is None or getattr(function, _WRAPPED, False):
            return

        def train_function(*args: Any, **kwargs: Any) -> Any:
            self._probe_in_fit += 1
            try:
                return function(*args, **kwargs)
            finally:
                self._probe_in_fit -= 1
                if not self._probe_in_fit:
                    self._run_waiting_probe()

        setattr(train_function, _WRAPPED, True)
        train_function.__wrapped__ = function  # type: ignore[attr-defined]
        self.model.train_function = train_function

    # -- what the probe sees ------------------------------------------------------------------

    def _probe_entries(self, session: ProbeSession) -> list[tuple[ProbeParameter, Any]]:
        """(parameter, variable) of every trainable variable of the model, in its order."""
        if "keras_entries" not in session.cache:
            entries = []
            for variable in self.model.trainable_variables:
                shape = tuple(int(d) for d in variable.shape)
                known = self._variables.get(id(variable))
                if known is not None:
                    layer, role, layout = known
                    entries.append((ProbeParameter(layer, role, shape, layout), variable))
                else:  # a variable outside the layers ikkuna lists: still part of the Hessian
                    name = variable.path.rsplit("/", 1)[0] if "/" in variable.path else "model"
                    layer = LayerInfo(name, "other", "keras", {variable.name: variable.name})
                    entries.append((ProbeParameter(layer, variable.name, shape,
                                                   outputs_last_layout(len(shape))), variable))
            session.cache["keras_entries"] = entries
        return session.cache["keras_entries"]

    def probe_parameters(self, session: ProbeSession) -> list[ProbeParameter]:
        return [entry for entry, _ in self._probe_entries(session)]

    def _probe_batch(self, session: ProbeSession) -> Probe:
        """The probe with its arrays as tensors (floating numpy arrays in the dtype of the
        model's floating trainable variables)."""
        if "keras_batch" not in session.cache:
            probe = session.probe
            session.cache["keras_batch"] = Probe(self._probe_tensors(probe.inputs),
                                                 self._probe_tensors(probe.targets), probe.loss)
        return session.cache["keras_batch"]

    def _probe_tensors(self, value: Any) -> Any:
        import tensorflow as tf

        dtype = next((v.dtype for v in self.model.trainable_variables
                      if np.dtype(v.dtype).kind == "f"), None)

        def to_tensor(leaf: Any) -> Any:
            if isinstance(leaf, (tf.Tensor, tf.Variable)):
                return tf.convert_to_tensor(leaf)
            array = np.asarray(leaf)
            if array.dtype.kind == "f" and dtype is not None:
                array = array.astype(np.dtype(dtype))
            return tf.convert_to_tensor(array)

        return map_leaves(to_tensor, value)

    def _probe_function(self, key: Any, make: Callable[[], Callable[..., Any]]) -> Callable[..., Any]:
        if self._probe_functions is None:
            self._probe_functions = {}
        if key not in self._probe_functions:
            self._probe_functions[key] = make()
        return self._probe_functions[key]

    # -- the passes ---------------------------------------------------------------------------

    def probe_activations(self, session: ProbeSession,
                          layers: list[LayerInfo]) -> list[tuple[LayerInfo, Array]]:
        from ikkuna.adapters.keras import _first_tensor, _Patches

        found: dict[str, Any] = {}

        def capture(name: str) -> Callable[[Any], Any]:
            def make(original: Callable[..., Any]) -> Callable[..., Any]:
                @functools.wraps(original)
                def call(*args: Any, **kwargs: Any) -> Any:
                    output = original(*args, **kwargs)
                    tensor = _first_tensor(output)
                    if tensor is not None and name not in found:
                        found[name] = np.array(tensor, copy=True)
                    return output
                return call
            return make

        patches = _Patches()
        try:
            for layer in layers:
                patches.replace(self._layers[layer.name], "call", capture(layer.name))
            self.model(self._probe_batch(session).inputs, training=False)  # eagerly
        finally:
            patches.restore()
        return [(layer, Array.from_numpy(found[layer.name], CHANNELS_LAST))
                for layer in layers if layer.name in found]

    def _probe_loss(self, session: ProbeSession) -> Callable[[Any, Any], Any]:
        probe, model = session.probe, self.model

        def loss(inputs: Any, targets: Any) -> Any:
            return probe.compute_loss(model(inputs, training=False), targets)

        return loss

    def probe_gradients(self, session: ProbeSession, groups: int) -> list[np.ndarray]:
        import tensorflow as tf

        entries = self._probe_entries(session)
        variables = [variable for _, variable in entries]
        loss = self._probe_loss(session)

        def make() -> Callable[..., Any]:
            @tf.function
            def gradient(inputs: Any, targets: Any) -> Any:
                with tf.GradientTape() as tape:
                    value = loss(inputs, targets)
                return tape.gradient(value, variables,
                                     unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return gradient

        gradient = self._probe_function(("gradients", id(session.probe.loss)), make)
        batch = self._probe_batch(session)
        found: list[list[np.ndarray]] = [[] for _ in entries]
        for inputs, targets in batch.split(groups):
            for index, value in enumerate(gradient(inputs, targets)):
                found[index].append(np.asarray(tf.convert_to_tensor(value)))
        return [np.stack(values) for values in found]

    def probe_hessian_vector_product(self, session: ProbeSession, vectors: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        entries = self._probe_entries(session)
        variables = [variable for _, variable in entries]
        loss = self._probe_loss(session)

        def make() -> Callable[..., Any]:
            @tf.function
            def product(inputs: Any, targets: Any, tangents: list[Any]) -> Any:
                zero = tf.UnconnectedGradients.ZERO
                with tf.GradientTape() as outer:
                    with tf.GradientTape() as inner:
                        value = loss(inputs, targets)
                    gradients = inner.gradient(value, variables, unconnected_gradients=zero)
                return outer.gradient(gradients, variables, output_gradients=tangents,
                                      unconnected_gradients=zero)
            return product

        product = self._probe_function(("hvp", id(session.probe.loss)), make)
        batch = self._probe_batch(session)
        offsets = np.cumsum([0, *(entry.size for entry, _ in entries)])
        results = np.zeros_like(vectors, dtype=np.float64)
        for row, vector in enumerate(vectors):
            tangents = [tf.constant(vector[offsets[i]:offsets[i + 1]].reshape(entry.shape),
                                    dtype=variable.dtype)
                        for i, (entry, variable) in enumerate(entries)]
            found = product(batch.inputs, batch.targets, tangents)
            results[row] = np.concatenate(
                [np.asarray(tf.convert_to_tensor(f), np.float64).reshape(-1) for f in found])
        return results
