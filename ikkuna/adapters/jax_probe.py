"""The probe in JAX (Flax NNX), mixed into :class:`ikkuna.adapters.jax.JaxAdapter`.

A jitted step ends inside a host callback, and JAX forbids calling back into JAX from one
(it can hang, notably on CPU with asynchronous dispatch). So on the steps a probe metric is
scheduled on (decided inside the compiled step from the metrics' ``every=``), the patched
``optimizer.update`` hands the state after the update (parameters and other variables such as
BatchNorm statistics) to the host in an ordered callback that only copies it; the probe then
runs on a worker thread of ikkuna's, outside every callback, with jitted functions of that
state: ``nnx.merge`` of the graph taken at attach (before ikkuna patched any class) in eval
mode, ``jax.grad`` per micro-batch (``vmap``), and ``jax.jvp`` of ``jax.grad`` for
Hessian-vector products. The model, its random streams and the step are untouched. The
probe's records reach the store when a later step closes, or on ``detach()``, which waits for
the worker.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ikkuna.adapters.jax_host import to_host
from ikkuna.core.arrays import CHANNELS_LAST, Array, Layout
from ikkuna.core.layers import LayerInfo
from ikkuna.core.probe import (
    HESSIAN_VECTOR_PRODUCT,
    PROBE_ACTIVATIONS,
    PROBE_GRADIENTS,
    ProbeParameter,
    ProbeSession,
)
from ikkuna.core.schedule import Every

PROBE_CAPABILITIES = frozenset({PROBE_ACTIVATIONS, PROBE_GRADIENTS, HESSIAN_VECTOR_PRODUCT})
#: Probes waiting for the worker; a step whose probe finds the queue full is not probed.
MAX_WAITING_PROBES = 8


class JaxProbe:
    """Probe methods of the JAX adapter (``self.model``, ``self.optimizer``, ``self._params``,
    ``self.monitor``)."""

    model: Any
    optimizer: Any
    monitor: Any
    _params: dict[tuple[Any, ...], Any]
    _first_optimizer_step: int

    _probe_ready = False

    # -- at attach, and inside the traced update ---------------------------------------------

    def _probe_install(self) -> None:
        """Take the model's graph before any class is patched (call before the swaps)."""
        import jax
        from flax import nnx

        graphdef, params, rngs, rest = nnx.split(self.model, self.optimizer.wrt, nnx.RngState, ...)
        self._probe_graphdef, self._probe_rngs = graphdef, rngs
        self._probe_trees = (jax.tree_util.tree_structure(params),
                             jax.tree_util.tree_structure(rest))
        entries = []
        for path, variable in nnx.to_flat_state(params):
            known = self._params.get(tuple(path))
            if known is not None:
                entries.append(ProbeParameter(known.layer, known.role, tuple(np.shape(variable[...])),
                                              known.layout))
            else:  # a parameter outside the layers ikkuna lists: still part of the Hessian
                name = ".".join(str(p) for p in path[:-1]) or "model"
                layer = LayerInfo(name, "other", "jax", {str(path[-1]): str(path[-1])})
                entries.append(ProbeParameter(layer, str(path[-1]), tuple(np.shape(variable[...])),
                                              Layout()))
        self._probe_entries = entries
        self._probe_functions: dict[Any, Callable[..., Any]] = {}
        self._probe_batches: dict[int, Any] = {}
        self._probe_state: tuple[list[np.ndarray], list[np.ndarray]] | None = None
        self._probe_current: tuple[list[np.ndarray], list[np.ndarray]] | None = None
        self._probe_queue: queue.Queue[Any] = queue.Queue(MAX_WAITING_PROBES)
        self._probe_worker: threading.Thread | None = None
        self._probe_ready = True

    def _probe_hand_out_state(self, model: Any, optimizer: Any, step: Any) -> None:
        """Traced in ``update`` after the weights changed: on probe steps, copy the state to
        the host (an ordered callback that only stores it, before the step's own callbacks)."""
        if not self._probe_ready:
            return
        import jax
        from flax import nnx

        _, params, _, rest = nnx.split(model, optimizer.wrt, nnx.RngState, ...)
        leaves = (jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(rest))

        def send() -> None:
            to_host(self._probe_receive_state, *leaves)

        due = self._probe_due_in_graph(step)
        if due is None:
            send()
        else:
            jax.lax.cond(due, send, lambda: None)

    def _probe_due_in_graph(self, step: Any) -> Any:
        """Whether a probe metric is scheduled on this step, traced (None: every step)."""
        prober = getattr(self.monitor, "prober", None)
        schedules = None if prober is None else prober.schedules()
        every = self.monitor.schedule
        if schedules is None or not isinstance(every, Every):
            return None
        index = step - self._first_optimizer_step

        def on(schedule: Every) -> Any:
            return (index >= schedule.start) & ((index - schedule.start) % schedule.n == 0)

        due = on(schedules[0])
        for schedule in schedules[1:]:
            due = due | on(schedule)
        return due & on(every)

    def _probe_receive_state(self, params: list[Any], rest: list[Any]) -> None:
        """Host side, inside the callback: copy only (no JAX computation may run here)."""
        self._probe_state = ([np.array(v, copy=True) for v in params],
                             [np.array(v, copy=True) for v in rest])

    # -- scheduling the probe -----------------------------------------------------------------

    def run_probe(self, task: Callable[[], None]) -> None:
        state, self._probe_state = self._probe_state, None
        if state is None:
            return  # the compiled step did not hand the state out (it was traced before)
        if self._probe_worker is None or not self._probe_worker.is_alive():
            self._probe_worker = threading.Thread(target=self._probe_work, name="ikkuna-probe",
                                                  daemon=True)
            self._probe_worker.start()
        try:
            self._probe_queue.put_nowait((task, state))
        except queue.Full:
            warnings.warn("ikkuna: the probe is still busy with earlier steps; this step is not "
                          "probed (schedule the probe metrics less often)", RuntimeWarning,
                          stacklevel=2)

    def _probe_work(self) -> None:
        while True:
            item = self._probe_queue.get()
            try:
                if item is None:
                    return
                task, self._probe_current = item
                task()
            except Exception as error:  # noqa: BLE001 - a probe must never stop training
                warnings.warn(f"ikkuna: the probe failed: {type(error).__name__}: {error}",
                              RuntimeWarning, stacklevel=1)
            finally:
                self._probe_current = None
                self._probe_queue.task_done()

    def finish_probes(self) -> None:
        # detach() drained first (JaxAdapter.drain): every dispatched step's probe is queued
        if not self._probe_ready:
            return
        worker = self._probe_worker
        if worker is not None and worker.is_alive():
            self._probe_queue.put(None)
            worker.join()
        self._probe_worker = None

    # -- the passes (on the worker thread) ----------------------------------------------------

    def probe_parameters(self, session: ProbeSession) -> list[ProbeParameter]:
        return list(self._probe_entries)

    def _probe_arrays(self, session: ProbeSession) -> tuple[Any, Any, Any, Any]:
        """(params leaves, other leaves, inputs, targets) for the jitted functions."""
        import jax
        import jax.numpy as jnp

        if self._probe_current is None:
            raise RuntimeError("the JAX probe runs only on ikkuna's probe worker")
        params, rest = self._probe_current
        key = id(session.probe)
        if key not in self._probe_batches:
            dtype = next((p.dtype for p in params if np.issubdtype(p.dtype, np.floating)), None)

            def convert(value: Any) -> Any:
                array = np.asarray(value)
                if dtype is not None and np.issubdtype(array.dtype, np.floating):
                    array = array.astype(dtype)
                return jnp.asarray(array)

            probe = session.probe
            self._probe_batches = {key: (jax.tree_util.tree_map(convert, probe.inputs),
                                         jax.tree_util.tree_map(convert, probe.targets))}
        inputs, targets = self._probe_batches[key]
        return params, rest, inputs, targets

    def _probe_model(self, params: list[Any], rest: list[Any]) -> Any:
        """The model with the given state, in eval mode (inside a trace)."""
        import jax
        from flax import nnx

        params_tree, rest_tree = self._probe_trees
        model = nnx.merge(self._probe_graphdef, jax.tree_util.tree_unflatten(params_tree, params),
                          self._probe_rngs, jax.tree_util.tree_unflatten(rest_tree, rest))
        model.eval()
        return model

    def _probe_loss_function(self, session: ProbeSession) -> Callable[..., Any]:
        probe = session.probe

        def loss(params: list[Any], rest: list[Any], inputs: Any, targets: Any) -> Any:
            return probe.compute_loss(self._probe_model(params, rest)(inputs), targets)

        return loss

    def _probe_function(self, key: Any, make: Callable[[], Callable[..., Any]]) -> Callable[..., Any]:
        if key not in self._probe_functions:
            self._probe_functions[key] = make()
        return self._probe_functions[key]

    def probe_gradients(self, session: ProbeSession, groups: int) -> list[np.ndarray]:
        import jax

        params, rest, inputs, targets = self._probe_arrays(session)
        loss = self._probe_loss_function(session)
        gradients = self._probe_function(("gradients", id(session.probe.loss)), lambda: jax.jit(
            jax.vmap(jax.grad(loss), in_axes=(None, None, 0, 0))))

        def grouped(value: Any) -> Any:
            return value.reshape(groups, value.shape[0] // groups, *value.shape[1:])

        found = gradients(params, rest, jax.tree_util.tree_map(grouped, inputs),
                          jax.tree_util.tree_map(grouped, targets))
        return [np.asarray(g) for g in found]

    def probe_hessian_vector_product(self, session: ProbeSession, vectors: np.ndarray) -> np.ndarray:
        import jax

        params, rest, inputs, targets = self._probe_arrays(session)
        loss = self._probe_loss_function(session)

        def make() -> Callable[..., Any]:
            def product(params: list[Any], rest: list[Any], inputs: Any, targets: Any,
                        tangent: list[Any]) -> Any:
                gradient = lambda p: jax.grad(loss)(p, rest, inputs, targets)  # noqa: E731
                return jax.jvp(gradient, (params,), (tangent,))[1]
            return jax.jit(product)

        product = self._probe_function(("hvp", id(session.probe.loss)), make)
        offsets = np.cumsum([0, *(entry.size for entry in self._probe_entries)])
        results = np.zeros_like(vectors, dtype=np.float64)
        for row, vector in enumerate(vectors):
            tangent = [vector[offsets[i]:offsets[i + 1]].reshape(p.shape).astype(p.dtype)
                       for i, p in enumerate(params)]
            found = product(params, rest, inputs, targets, tangent)
            results[row] = np.concatenate([np.asarray(f, np.float64).reshape(-1) for f in found])
        return results

    def probe_activations(self, session: ProbeSession,
                          layers: list[LayerInfo]) -> list[tuple[LayerInfo, Array]]:
        import jax

        params, rest, inputs, _ = self._probe_arrays(session)
        names = tuple(layer.name for layer in layers)

        def make() -> Callable[..., Any]:
            def outputs(params: list[Any], rest: list[Any], inputs: Any) -> dict[str, Any]:
                model = self._probe_model(params, rest)
                found: dict[str, Any] = {}
                _record_outputs(model, set(names), found)
                model(inputs)
                return found
            return jax.jit(outputs)

        found = self._probe_function(("activations", names), make)(params, rest, inputs)
        return [(layer, Array.from_numpy(np.asarray(found[layer.name]), CHANNELS_LAST))
                for layer in layers if layer.name in found]


def _record_outputs(model: Any, names: set[str], found: dict[str, Any]) -> None:
    """Swap the classes of the named modules of ``model`` (a private copy) for subclasses
    whose ``__call__`` keeps its first output in ``found``."""
    from flax import nnx

    for path, module in nnx.iter_modules(model):
        name = ".".join(str(p) for p in path) or "model"
        if name not in names:
            continue
        original = type(module)

        def __call__(self: Any, *args: Any, _name: str = name, _original: type = original,
                     **kwargs: Any) -> Any:
            output = _original.__call__(self, *args, **kwargs)
            if _name not in found and hasattr(output, "shape"):
                found[_name] = output
            return output

        recording = type(original.__name__, (original,), {"__call__": __call__})
        object.__setattr__(module, "__class__", recording)
