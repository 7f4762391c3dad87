"""The Monitor: stamps steps and epochs, selects layers, feeds the bus and the sinks."""

from __future__ import annotations

import atexit
import dataclasses
import functools
import warnings
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ikkuna.core import kinds as K
from ikkuna.core.arrays import Array, Layout
from ikkuna.core.bus import Bus, MetricSlot, Problem
from ikkuna.core.events import Event, Record
from ikkuna.core.layers import LayerInfo
from ikkuna.core.probe import Probe, ProbeRunner, split_probe_slots
from ikkuna.core.ranks import RankCombiner
from ikkuna.core.schedule import LayerSelection, ScheduleLike, as_layer_filter, as_schedule
from ikkuna.core.sink import RunInfo, Sink

if TYPE_CHECKING:
    from ikkuna.adapters.base import Adapter
    from ikkuna.doctor.live import LiveDoctor

#: Names ``monitor.log`` treats as event kinds rather than user scalars.
LOGGED_ARRAY_KINDS = (K.INPUTS, K.OUTPUTS, K.LABELS)
#: Kinds that adapters emit and users may log; an adapter's own value of a step wins.
_ADAPTER_OR_USER_KINDS = (*LOGGED_ARRAY_KINDS, K.LEARNING_RATE)
_BATCH_FIRST = Layout(batch_axis=0)


class Monitor:
    """Watches one model's training; made by :func:`ikkuna.attach`.

    A step is one optimizer step, counted from 0. Events of a training forward pass belong to
    the step whose optimizer step follows it; values logged with :meth:`log` right after the
    optimizer step still belong to that step. The step's records reach the sinks when the next
    step begins or on :meth:`detach`.
    """

    #: Runs the doctor's rules on the records as training goes (``attach(doctor=...)``).
    doctor: LiveDoctor | None = None

    def __init__(
        self,
        adapter: Adapter,
        slots: list[MetricSlot],
        sinks: Sequence[Sink],
        *,
        run: str,
        layers: LayerSelection = None,
        every: ScheduleLike = None,
        config: dict[str, Any] | None = None,
        probe: Probe | None = None,
        ranks: RankCombiner | None = None,
    ) -> None:
        self.adapter = adapter
        #: How the ranks of a distributed run store their records (None: one process).
        self.ranks = ranks
        self.sinks = list(sinks) if ranks is None or ranks.stores else []
        self.run = run if ranks is None else ranks.run_name(run)
        self._problems_sent = 0
        self.problems: list[Problem] = []
        self.step = 0
        self.epoch = 0
        self.attached = False
        self._select_layer = as_layer_filter(layers)
        self._layers_given = layers
        self._scheduled = as_schedule(every)
        step_slots, probe_slots = split_probe_slots(slots)
        self._bus = Bus(step_slots, run, self._record_problem)
        #: Runs the metrics that need probe kinds (None without any).
        self.prober = ProbeRunner(probe, adapter, probe_slots, run) if probe and probe_slots else None
        self._probed_step = -1
        self._step_finished = False
        self._recording: frozenset[str] = frozenset()
        self._step_epoch = 0
        self._warned: set[str] = set()
        self._losses: list[float] = []
        self._scalars: dict[str, list[float]] = {}
        self._config = dict(config or {})
        self.layers: list[LayerInfo] = []

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> Monitor:
        """Open the sinks and install the adapter's hooks (``attach`` calls this)."""
        every_layer = self.adapter.layers()
        self.layers = [layer for layer in every_layer if self._select_layer(layer)]
        if self._layers_given and not self.layers:
            raise ValueError(
                f"layers={self._layers_given!r} matches no layer of this model; its layers: "
                f"{', '.join(layer.name for layer in every_layer)}"
            )
        info = RunInfo(self.run, self.adapter.framework, tuple(self.layers), self._config,
                       self.adapter.versions())
        # a sink that may rename the run (the store makes names unique) opens first, so the
        # others file the run under the name it was finally given
        for sink in sorted(self.sinks, key=lambda s: type(s).run_name is Sink.run_name):
            if self._guard(sink, "open", sink.open, info):
                self.run = sink.run_name or self.run
                info = dataclasses.replace(info, name=self.run)
        self._bus.run = self.run
        self._open_step()
        try:
            kinds = self._bus.needed_kinds() | (self.prober.kinds if self.prober else frozenset())
            self.adapter.install(self, self.layers, kinds)
        except BaseException:
            self.adapter.remove()  # a half-done install leaves nothing behind
            for sink in list(self.sinks):
                self._guard(sink, "close", sink.close)
            raise
        self.attached = True
        _live_monitors.add(self)
        return self

    def detach(self) -> None:
        """Remove every hook, deliver the last step's records and close the sinks. Idempotent."""
        if not self.attached:
            return
        try:
            self.adapter.drain()  # steps still on their way to the host belong to this run
        finally:
            self._finish_detach()

    def _finish_detach(self) -> None:
        self.attached = False
        _live_monitors.discard(self)
        try:
            try:
                self.adapter.finish_probes()  # probes deferred by the adapter
            finally:
                self.adapter.remove()
        finally:
            self._close_step()
            if self.ranks is not None:
                self._close_ranks()
            for sink in list(self.sinks):
                self._guard(sink, "close", sink.close)
        if self.doctor is not None:
            self.doctor.step_closed(self, self.step, final=True)  # may warn or raise

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.detach()
        if self.doctor is not None:  # a finding raised inside a host callback comes out here
            self.doctor.reraise_over(exc_info[1])

    # -- what adapters call -------------------------------------------------------------------

    def recording(self, kind: str) -> bool:
        """Whether some metric wants ``kind`` on the current step (cheap; ask before converting)."""
        if self._step_finished:
            return False
        return kind in self._recording

    def training_pass_started(self) -> None:
        """A training forward pass begins: it belongs to a new step if the last one finished."""
        if self._step_finished:
            self._advance()

    @property
    def schedule(self) -> Callable[[int], bool]:
        """The monitor's own step schedule (``every=``); an :class:`ikkuna.Every` when it is
        periodic, which lets adapters skip unscheduled steps inside compiled code."""
        return self._scheduled

    @property
    def between_steps(self) -> bool:
        """True after an optimizer step until the next training pass or optimizer step."""
        return self._step_finished

    def optimizer_step_started(self, optimizer: object = None) -> None:
        """``optimizer`` is about to step (gradients are final).

        Several optimizers stepping one after another with no training pass in between (one
        per part of the model) make one step; the same optimizer stepping again starts a new
        one.
        """
        if self._step_finished:
            if optimizer is None or optimizer in self._stepped:
                self._advance()
            else:
                self._step_finished = False  # another optimizer, the same step
        self._stepped.append(optimizer)

    def optimizer_step_finished(self) -> None:
        """The optimizer stepped: weights and updates have been emitted; the step is done.

        Starts the probe if a probe metric is scheduled on this step (once per step).
        """
        self._step_finished = True
        prober = self.prober
        if (prober is not None and self._probed_step != self.step
                and self._scheduled(self.step) and prober.due(self.step)):
            self._probed_step = self.step
            self.adapter.run_probe(
                functools.partial(prober.run, self.step, self._step_epoch, tuple(self.layers),
                                  self.run))

    def emit(
        self,
        kind: str,
        *,
        layer: LayerInfo | None = None,
        param: str | None = None,
        array: Array | None = None,
        value: float | None = None,
    ) -> None:
        """Hand an observation of the current step to the metrics."""
        if kind in _ADAPTER_OR_USER_KINDS:
            self._adapter_kinds.add(kind)
        if not self._bus.takes(kind):  # no metric needs it (step boundaries, often)
            if array is not None:
                array.release()
            return
        self._bus.publish(Event(kind, self.step, self.epoch, layer, param, array, value))

    # -- what users call ----------------------------------------------------------------------

    def log(self, **values: Any) -> None:
        """Record values of the current step.

        ``loss`` (a number; several in one step are averaged) and ``inputs``, ``outputs``,
        ``labels`` (arrays or native tensors) become events metrics can need; any other name
        is a user scalar stored as its own series (``lr=1e-3``, ``accuracy=0.9``).
        ``learning_rate`` is the learning_rate metric's event while that metric runs (for
        adapters that cannot read the optimizer's; ignored where the adapter did), else a
        user scalar.
        """
        if not self.attached:
            raise RuntimeError(
                f"monitor.log() on run {self.run!r} after detach(): nothing would be stored; "
                "log before detaching (or inside the `with ikkuna.attach(...)` block)"
            )
        for name, value in values.items():
            if name in LOGGED_ARRAY_KINDS:
                if self._takes_logged(name):
                    array = self.adapter.as_array(value, _BATCH_FIRST)
                    self._bus.publish(Event(name, self.step, self.epoch, array=array))
            elif name == K.LEARNING_RATE and name in self._bus.needed_kinds():
                number = _as_number(name, value)  # one series: the metric's, not a scalar too
                if self._takes_logged(name):
                    self._bus.publish(Event(name, self.step, self.epoch, value=number))
            else:
                number = _as_number(name, value)
                (self._losses if name == K.LOSS else self._scalars.setdefault(name, [])).append(number)

    def _takes_logged(self, kind: str) -> bool:
        """Whether a kind the user logs goes to the metrics: not where the adapter recorded this
        step's (warned once), yes where a metric wants it on this step (also right after the
        optimizer step)."""
        if kind in self._adapter_kinds:
            self._warn_once(
                f"log_{kind}",
                f"ikkuna: monitor.log({kind}=...) ignored: the {self.adapter.framework} "
                f"adapter already recorded this step's {kind}",
            )
            return False
        return kind in self._recording

    def start_epoch(self, epoch: int | None = None) -> None:
        """Mark an epoch's start; ``epoch`` sets its number (else the count goes on)."""
        if epoch is not None:
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
            self.epoch = epoch
        if not self._step_finished:
            self._open_step()  # the step about to run belongs to the new epoch
        self.emit(K.EPOCH_STARTED)

    def finish_epoch(self) -> None:
        """Mark an epoch's end; the next epoch's number is one more."""
        self.emit(K.EPOCH_FINISHED)
        self.epoch += 1

    @property
    def store_path(self) -> Path | None:
        """The directory of the store this run is written to (None without a store sink)."""
        from ikkuna.sinks.store import StoreSink

        return next((s.path for s in self.sinks if isinstance(s, StoreSink)), None)

    def sync(self) -> None:
        """Make the sinks store every finished step now, and wait for it (the store commits on
        a thread of its own every half second while training goes on)."""
        for sink in list(self.sinks):
            wait = getattr(sink, "wait", None)  # sinks from before Sink.wait have none
            if wait is not None:
                self._guard(sink, "wait", wait)

    def series(self, metric: str, layer: str | None = None, param: str | None = None):
        """This run's stored series of ``metric`` (see :meth:`ikkuna.Run.series`)."""
        from ikkuna.sinks.reader import open_run

        store = self.store_path
        if store is None:
            raise RuntimeError("this monitor has no store sink to read from")
        self.sync()  # a store whose commit fails is disabled here: read what it committed
        with open_run(self.run, store=store) as run:
            return run.series(metric, layer, param)

    # -- internals ----------------------------------------------------------------------------

    def _advance(self) -> None:
        self._close_step()
        self.step += 1
        self._step_finished = False
        self._open_step()
        if self.doctor is not None:
            self.doctor.step_closed(self, self.step - 1)  # may warn or raise TrainingProblem

    def _open_step(self) -> None:
        """Start recording ``self.step``; it belongs to the epoch it starts in."""
        self._step_epoch = self.epoch
        self._stepped: list[object] = []
        self._adapter_kinds: set[str] = set()
        self._recording = self._bus.open_step(self.step, self.epoch, self._scheduled(self.step))

    def _close_step(self) -> None:
        if self._losses:
            loss = _mean(self._losses)
            self.emit(K.LOSS, value=loss)
        records = self._bus.close_step()
        if self.prober is not None:
            probed, problems = self.prober.take()
            records += probed
            for problem in problems:
                self._record_problem(problem)
        records += self._scalar_records()
        if self.ranks is not None:
            records = self._combine_ranks(records)
        if self.doctor is not None:
            self.doctor.record(records)
        if records:
            for sink in list(self.sinks):
                self._guard(sink, "write", sink.write, records)
        for sink in list(self.sinks):
            self._guard(sink, "flush", sink.flush)

    def _combine_ranks(self, records: list[Record]) -> list[Record]:
        """The records this rank stores (a collective in the reducing modes: see ``ranks``)."""
        assert self.ranks is not None
        new_problems = self.problems[self._problems_sent:]
        self._problems_sent = len(self.problems)
        try:
            combined, others = self.ranks.combine(self.run, records, new_problems)
        except Exception as error:  # noqa: BLE001 - monitoring must never stop training
            mode = self.ranks.mode
            self.ranks = None
            message = (
                f"ikkuna: combining the ranks' records ({mode!r}) failed with "
                f"{type(error).__name__}: {error} at step {self.step}; from now on each rank "
                "stores only its own records, where it has sinks"
            )
            warnings.warn(message, RuntimeWarning, stacklevel=4)
            self._record_problem(Problem(source="ranks", message=message, step=self.step))
            return records
        for problem in others:
            self._record_problem(problem)
        self._problems_sent = len(self.problems)
        return combined

    def _close_ranks(self) -> None:
        try:
            self.ranks.close()
        except Exception as error:  # noqa: BLE001 - detach must not fail over this
            self._record_problem(Problem(source="ranks", step=self.step, message=(
                f"ikkuna: releasing the ranks' gather group failed: {type(error).__name__}: {error}")))

    def _scalar_records(self) -> list[Record]:
        if not self._scalars and not self._losses:
            return []
        scalars = dict(self._scalars)
        if self._losses:
            scalars[K.LOSS] = self._losses
        self._losses, self._scalars = [], {}
        return [
            Record(self.run, self.step, self._step_epoch, name, None, None, _mean(found))
            for name, found in scalars.items()
        ]

    def _guard(self, sink: Sink, action: str, call: Callable[..., Any], *args: Any) -> bool:
        try:
            call(*args)
            return True
        except Exception as error:  # noqa: BLE001 - a sink must never stop training
            self.sinks.remove(sink)
            if action != "close":
                try:  # release its files; a second error says nothing new
                    sink.close()
                except Exception:  # noqa: BLE001, S110
                    pass
            message = (
                f"ikkuna: sink {sink.name!r} raised {type(error).__name__}: {error} in "
                f"{action}(); it is disabled for the rest of this run, the other sinks go on"
            )
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            self._record_problem(Problem(source=f"sink:{sink.name}", message=message, step=self.step))
            return False

    def _warn_once(self, key: str, message: str) -> None:
        """Warn once per key, pointing at the caller of :meth:`log` (via ``_takes_logged``)."""
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RuntimeWarning, stacklevel=4)

    def _record_problem(self, problem: Problem) -> None:
        self.problems.append(problem)
        for sink in self.sinks:
            note = getattr(sink, "note_problem", None)
            if note is not None:
                try:
                    note(problem)
                except Exception:  # noqa: BLE001 - reporting a problem must not raise another
                    pass


def _mean(values: list[float]) -> float:
    """The mean of a step's logged values; one value is itself (the usual case, and numpy's
    mean costs several microseconds a step)."""
    return values[0] if len(values) == 1 else float(np.mean(values))


def _as_number(name: str, value: Any) -> float:
    if hasattr(value, "shape") and (hasattr(value, "item") or hasattr(value, "__array__")):
        if _numel(value) != 1:  # a tensor or numpy value
            raise TypeError(
                f"monitor.log({name}=...) needs one number, got an array of shape "
                f"{tuple(value.shape)}; arrays are accepted only for {', '.join(LOGGED_ARRAY_KINDS)}"
            )
        value = value.item() if hasattr(value, "item") else np.asarray(value).item()
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(
            f"monitor.log({name}=...) needs a number (int, float, or a one-element tensor), got "
            f"{type(value).__name__}; arrays are accepted only for {', '.join(LOGGED_ARRAY_KINDS)}"
        )
    return float(value)


def _numel(value: Any) -> int:
    try:
        return int(np.prod(getattr(value, "shape", ())))
    except TypeError:
        return 0


_live_monitors: weakref.WeakSet[Monitor] = weakref.WeakSet()


@atexit.register
def _detach_all_at_exit() -> None:
    for monitor in list(_live_monitors):
        try:
            monitor.detach()
        except Exception:  # noqa: BLE001 - interpreter is exiting
            pass
