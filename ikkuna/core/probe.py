"""The probe: a fixed batch and loss, and the extra passes probe metrics run on it.

``ikkuna.attach(model, probe=ikkuna.Probe(inputs, targets, loss))`` lets metrics look at the
model on a batch that stays the same for the whole run: layer outputs (``probe_activations``),
per-sample gradients (``probe_gradients``) and, through the ``probe`` kind's
:class:`ProbeSession`, gradients on micro-batches and Hessian-vector products. The monitor runs
the probe only on steps where a scheduled metric needs one of these kinds, after the optimizer
step. Adapters evaluate the model in inference mode (no dropout, normalization with its running
statistics) without changing the model, its gradients or the random streams of training.

Probe metrics run on their own bus, so that an adapter may run the probe later than the step it
belongs to (outside a compiled step's host callback) without touching the training step's
state; their records reach the sinks when the next step closes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ikkuna.core import kinds as K
from ikkuna.core.arrays import Array, Layout
from ikkuna.core.bus import Bus, MetricSlot, Problem
from ikkuna.core.events import Event, Record
from ikkuna.core.layers import LayerInfo
from ikkuna.core.schedule import Every

if TYPE_CHECKING:
    from ikkuna.adapters.base import Adapter

#: Adapter capabilities of the probe (see :attr:`ikkuna.Adapter.capabilities`).
PROBE_ACTIVATIONS = "probe_activations"
PROBE_GRADIENTS = "probe_gradients"
HESSIAN_VECTOR_PRODUCT = "hessian_vector_product"
#: Capabilities that need the probe's loss function.
NEEDS_LOSS = frozenset({PROBE_GRADIENTS, HESSIAN_VECTOR_PRODUCT})

_ACCEPTED = ("a numpy array or native tensor with a leading batch axis, or a tuple or dict of "
             "them")


def _is_leaf(value: Any) -> bool:
    return not isinstance(value, (tuple, list, dict, str, bytes)) and hasattr(value, "shape")


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, tuple):
        return [leaf for item in value for leaf in _leaves(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    return [value]


def map_leaves(function: Callable[[Any], Any], value: Any) -> Any:
    """``function`` applied to every leaf of a tuple/dict structure (None stays None)."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(map_leaves(function, item) for item in value)
    if isinstance(value, dict):
        return {key: map_leaves(function, item) for key, item in value.items()}
    return function(value)


def _slice(value: Any, start: int, stop: int) -> Any:
    """``value[start:stop]`` along the batch axis of every leaf of a tuple/dict structure."""
    return map_leaves(lambda leaf: leaf[start:stop], value)


def _batch_size(name: str, value: Any) -> int:
    leaves = _leaves(value)
    bad = [leaf for leaf in leaves if not _is_leaf(leaf) or len(leaf.shape) == 0]
    if not leaves or bad:
        shown = type(bad[0]).__name__ if bad else "an empty structure"
        raise TypeError(f"Probe({name}=...) must be {_ACCEPTED}; got {shown}")
    sizes = {int(leaf.shape[0]) for leaf in leaves}
    if len(sizes) != 1:
        raise ValueError(f"Probe({name}=...) has arrays of different batch sizes {sorted(sizes)}")
    return sizes.pop()


@dataclass(frozen=True, eq=False)
class Probe:
    """A fixed batch the model is probed on, and the loss for gradients and curvature.

    ``inputs`` is what the model is called with (``model(inputs)``): a numpy array or a native
    tensor of the model's framework with the batch on axis 0, or a tuple or dict of them
    (passed as one argument). ``targets`` (same structure rules, same batch size) and ``loss``
    (``loss(outputs, targets) -> scalar`` in the model's framework, the *mean* over the batch;
    ``loss(outputs)`` without targets) are needed by metrics that use gradients or the
    Hessian. Keep the batch small (tens of samples): per-sample gradients cost one backward
    pass per sample.
    """

    inputs: Any
    targets: Any = None
    loss: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        size = _batch_size("inputs", self.inputs)
        if size < 2:
            raise ValueError(f"Probe(inputs=...) needs a batch of at least 2 samples, got {size}")
        if self.targets is not None and _batch_size("targets", self.targets) != size:
            raise ValueError(
                f"Probe(targets=...) has batch size {_batch_size('targets', self.targets)}, "
                f"inputs have {size}"
            )
        if self.loss is not None and not callable(self.loss):
            raise TypeError(
                "Probe(loss=...) must be a callable loss(outputs, targets) -> scalar, got "
                f"{type(self.loss).__name__}"
            )

    @property
    def batch_size(self) -> int:
        return _batch_size("inputs", self.inputs)

    def split(self, groups: int) -> list[tuple[Any, Any]]:
        """The batch as ``groups`` equal micro-batches of ``(inputs, targets)``."""
        size = self.batch_size
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or size % groups:
            raise ValueError(
                f"the probe batch of {size} samples cannot be split into {groups!r} equal "
                f"micro-batches; use a number of groups that divides {size}"
            )
        width = size // groups
        return [
            (_slice(self.inputs, i * width, (i + 1) * width),
             None if self.targets is None else _slice(self.targets, i * width, (i + 1) * width))
            for i in range(groups)
        ]

    def compute_loss(self, outputs: Any, targets: Any) -> Any:
        """The user's loss on one (micro-)batch; a clear error where none was given."""
        if self.loss is None:
            raise ValueError(
                "this metric needs the probe's loss: ikkuna.Probe(inputs, targets, "
                "loss=<loss(outputs, targets) -> scalar>)"
            )
        return self.loss(outputs) if targets is None else self.loss(outputs, targets)


@dataclass(frozen=True)
class ProbeParameter:
    """One trainable parameter as the probe sees it (the order of flat vectors)."""

    layer: LayerInfo
    param: str
    shape: tuple[int, ...]
    layout: Layout

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def per_sample_layout(layout: Layout) -> Layout:
    """A parameter's layout with a leading sample axis (``(samples, *shape)``)."""
    shift = lambda axis: None if axis is None else axis + 1  # noqa: E731
    return Layout(batch_axis=0, out_axis=shift(layout.out_axis), in_axis=shift(layout.in_axis))


class ProbeSession:
    """What probe metrics use on one probed step; passes are cached for the step.

    Values are numpy; vectors over all trainable parameters are flat float64 arrays in the
    order of :meth:`parameters` (each parameter flattened in its own framework's layout).
    """

    def __init__(self, adapter: Adapter, probe: Probe, step: int) -> None:
        self.adapter = adapter
        self.probe = probe
        self.step = step
        #: Adapter-private values kept for the step (converted inputs, a gradient graph).
        self.cache: dict[str, Any] = {}
        self._gradients: dict[int, list[np.ndarray]] = {}
        self._parameters: tuple[ProbeParameter, ...] | None = None

    @property
    def batch_size(self) -> int:
        return self.probe.batch_size

    def parameters(self) -> tuple[ProbeParameter, ...]:
        """Every trainable parameter of the model, in the order of flat vectors."""
        if self._parameters is None:
            self._parameters = tuple(self.adapter.probe_parameters(self))
        return self._parameters

    @property
    def size(self) -> int:
        """Number of trainable scalars (the length of a flat vector)."""
        return sum(p.size for p in self.parameters())

    def gradients(self, groups: int) -> list[np.ndarray]:
        """Gradients of the loss on ``groups`` equal micro-batches, per parameter
        ``(groups, *shape)``; ``groups=batch_size`` gives per-sample gradients."""
        if groups not in self._gradients:
            self.probe.split(groups)  # the error names the batch size
            found = self.adapter.probe_gradients(self, groups)
            self._gradients[groups] = [_read_only(np.asarray(g)) for g in found]
        return self._gradients[groups]

    def flat_gradients(self, groups: int) -> np.ndarray:
        """:meth:`gradients` as one ``(groups, size)`` float64 matrix."""
        parts = [g.reshape(groups, -1).astype(np.float64) for g in self.gradients(groups)]
        return np.concatenate(parts, axis=1) if parts else np.zeros((groups, 0))

    def hessian_vector_product(self, vectors: np.ndarray) -> np.ndarray:
        """``H @ v`` for flat vectors ``(size,)`` or ``(k, size)``; H is the Hessian of the
        probe loss on the whole probe batch with respect to all trainable parameters."""
        vectors = np.asarray(vectors, dtype=np.float64)
        single = vectors.ndim == 1
        matrix = vectors.reshape(1, -1) if single else vectors
        if matrix.ndim != 2 or matrix.shape[1] != self.size:
            raise ValueError(
                f"hessian_vector_product takes vectors of shape ({self.size},) or "
                f"(k, {self.size}), got {vectors.shape}"
            )
        result = np.asarray(self.adapter.probe_hessian_vector_product(self, matrix), np.float64)
        return result[0] if single else result

    def close(self) -> None:
        self.cache.clear()
        self._gradients.clear()


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


class ProbeRunner:
    """Runs the probe metrics of one monitor on the steps they are scheduled on."""

    def __init__(self, probe: Probe, adapter: Adapter, slots: list[MetricSlot], run: str) -> None:
        self.probe = probe
        self.adapter = adapter
        self._lock = threading.Lock()
        self._records: list[Record] = []
        self._problems: list[Problem] = []
        self._bus = Bus(slots, run, self._note_problem)
        self.kinds = frozenset(k for slot in slots for k in slot.needs)

    @property
    def slots(self) -> list[MetricSlot]:
        return self._bus.slots

    def due(self, step: int) -> bool:
        """Whether some probe metric that still runs is scheduled on ``step``."""
        return any(not s.disabled and s.scheduled(step) for s in self._bus.slots)

    def schedules(self) -> list[Every] | None:
        """The probe metrics' schedules when all are periodic (compiled steps can decide
        whether to hand out the probe's state from them); None otherwise."""
        found = [s.metric.every for s in self._bus.slots]
        found = [Every(e) if isinstance(e, int) and not isinstance(e, bool) else e for e in found]
        if all(isinstance(e, Every) for e in found):
            return found
        return None

    def run(self, step: int, epoch: int, layers: Sequence[LayerInfo], run: str) -> None:
        """Probe the model for ``step`` and run the metrics; keeps the records for :meth:`take`.

        Called by the adapter (:meth:`ikkuna.Adapter.run_probe`) at a point where the model
        holds the weights after the step's update.
        """
        bus = self._bus
        bus.run = run
        kinds = bus.open_step(step, epoch)
        session = ProbeSession(self.adapter, self.probe, step)
        try:
            if K.PROBE_ACTIVATIONS in kinds:
                self._publish_activations(session, step, epoch, layers)
            if K.PROBE_GRADIENTS in kinds:
                self._publish_gradients(session, step, epoch, layers)
            if K.PROBE in kinds:
                bus.publish(Event(K.PROBE, step, epoch, probe=session))
            records = bus.close_step()
        finally:
            session.close()
        with self._lock:
            self._records.extend(records)

    def _publish_activations(self, session: ProbeSession, step: int, epoch: int,
                             layers: Sequence[LayerInfo]) -> None:
        try:
            found = self.adapter.probe_activations(session, list(layers))
        except Exception as error:  # noqa: BLE001 - a probe must never stop training
            self._fail(K.PROBE_ACTIVATIONS, error)
            return
        for layer, array in found:
            self._bus.publish(Event(K.PROBE_ACTIVATIONS, step, epoch, layer, array=array))

    def _publish_gradients(self, session: ProbeSession, step: int, epoch: int,
                           layers: Sequence[LayerInfo]) -> None:
        selected = {layer.name for layer in layers}
        try:
            found = session.gradients(session.batch_size)
        except Exception as error:  # noqa: BLE001 - a probe must never stop training
            self._fail(K.PROBE_GRADIENTS, error)
            return
        for parameter, values in zip(session.parameters(), found):
            if parameter.layer.name in selected:
                array = Array(values, np.asarray, shape=values.shape, dtype=str(values.dtype),
                              layout=per_sample_layout(parameter.layout))
                self._bus.publish(Event(K.PROBE_GRADIENTS, step, epoch, parameter.layer,
                                        parameter.param, array=array))

    def _fail(self, kind: str, error: Exception) -> None:
        """An adapter's pass failed: the metrics that need ``kind`` stop, with a warning."""
        for slot in self._bus.slots:
            if kind in slot.needs and not slot.disabled:
                self._bus._disable(slot, error, None)

    def _note_problem(self, problem: Problem) -> None:
        with self._lock:
            self._problems.append(problem)

    def take(self) -> tuple[list[Record], list[Problem]]:
        """The records and problems of probe runs finished since the last call."""
        with self._lock:
            records, self._records = self._records, []
            problems, self._problems = self._problems, []
        return records, problems


def probe_refusal(metric_class: Any, probe: Probe | None) -> str | None:
    """Why ``metric_class`` cannot run with ``probe``; None when it can (or needs no probe).

    A probe metric needs only probe kinds, a probe, and the probe's loss where it computes
    gradients or curvature.
    """
    needs = set(metric_class.needs)
    probing = needs & K.PROBE_KINDS
    if not probing:
        return None
    if needs - K.PROBE_KINDS:
        return (
            f"metric {metric_class.name!r} needs probe kinds {sorted(probing)} and other kinds "
            f"{sorted(needs - K.PROBE_KINDS)}; a probe metric needs only "
            f"{', '.join(sorted(K.PROBE_KINDS))}"
        )
    if probe is None:
        return (
            f"metric {metric_class.name!r} runs on a fixed probe batch: pass "
            "probe=ikkuna.Probe(inputs, targets, loss) to ikkuna.attach"
        )
    if probe.loss is None and (metric_class.requires & NEEDS_LOSS):
        return (
            f"metric {metric_class.name!r} needs the probe's loss: "
            "ikkuna.Probe(inputs, targets, loss=<loss(outputs, targets) -> scalar>)"
        )
    return None


def check_probe_metrics(slots: Sequence[MetricSlot], probe: Probe | None) -> None:
    """Refuse, at attach, the metrics :func:`probe_refusal` finds cannot run with ``probe``."""
    for slot in slots:
        reason = probe_refusal(type(slot.metric), probe)
        if reason is not None:
            raise ValueError(reason)


def as_probe(probe: Any) -> Probe | None:
    """Validate ``attach(probe=...)``."""
    if probe is None or isinstance(probe, Probe):
        return probe
    raise TypeError(
        "probe= takes an ikkuna.Probe(inputs, targets=None, loss=None), got "
        f"{type(probe).__module__}.{type(probe).__qualname__}"
    )


def split_probe_slots(slots: list[MetricSlot]) -> tuple[list[MetricSlot], list[MetricSlot]]:
    """(metrics of the training step, probe metrics)."""
    probing = [s for s in slots if set(s.needs) & K.PROBE_KINDS]
    return [s for s in slots if s not in probing], probing


__all__ = [
    "HESSIAN_VECTOR_PRODUCT",
    "PROBE_ACTIVATIONS",
    "PROBE_GRADIENTS",
    "Probe",
    "ProbeParameter",
    "ProbeRunner",
    "ProbeSession",
]
