"""What ikkuna's overhead cannot go below on this machine: the measurements behind the
README's "why it cannot go lower" for the targets the overhead benchmark does not meet.

    .venv/bin/python benchmarks/floors.py [--framework torch keras jax] [--steps N]
        [--rounds R] [--compiled] [--json]

Every number is a time per step, as a ratio to the same step without ikkuna, measured in this
process on the same model, alternating in rounds (median over rounds). Rows marked *alone*
time their work by itself, outside the step, and give one plus its time over the step's (the
step's time varies by more than the work on a shared machine):

- ``torch CNN``: the benchmark's CNN (``benchmarks/architectures.py``).
  - *ikkuna, default metrics*: attached with ``metrics="default"``, for comparison.
  - *ikkuna without its statistics*: the same, with ikkuna's torch reducers (moments, sums
    of squares, fired units) answering constants instead of reading the tensors: what the
    rest costs (the hooks, the bus, 13 metrics' Python, ``distance_from_init``'s copy of the
    weights and its difference, the updates' copy and subtraction, the store). And *...
    nor distance_from_init*: without that metric too.
  - *spare core, inline* and *on a thread*: numpy's statistics of every layer output (moments,
    zero count, fired units, as the Keras and JAX adapters compute them on the host) after
    each step, inline or handed to a worker thread: whether a thread hides host work while
    the step keeps both cores busy. The thread gets the arrays as they are; a real hand-off
    would first copy them (they are valid only during the step), which is not timed here.
  - *one read, alone*: the least memory traffic of the default metrics: one sum over every
    tensor they read (each layer's output, each weight, gradient and initial weight) and the
    copy and subtraction that make the updates. A monitor that computed every statistic of
    a tensor in one fused pass, with no Python, would still pay this.
  - *ikkuna's statistics, alone*: the statistics themselves by ikkuna's own torch reducers,
    as the default metrics read them: ``tensor_moments`` (sum, sum of squares, zero count)
    and ``tensor_fired_units`` of every layer output, ``tensor_sum_of_squares`` of every
    weight, gradient and update (with the update's copy and subtraction); no bus, metrics
    or store.
  - *fused statistics, alone* (``--compiled``; needs a C++ compiler, about 15 s to compile):
    the same statistics (each layer output's sum, sum of squares, zero count and channel
    maxima; each parameter's, gradient's and update's sum of squares), in one function per
    tensor compiled by ``torch.compile``.
- ``torch MLP``: the parity MLP, attached with no metrics, and with three hooks that do
  nothing (a forward pre-hook on the model, a pre- and a post-hook on the optimizer's step:
  the hooks ikkuna installs without metrics).
- ``Keras CNN``: the benchmark's CNN in ``model.fit``, a fresh model each measurement.
  - *ikkuna, default metrics*, for comparison.
  - *its callback doing nothing*: the same, with the host side of the callback that carries
    a step's values (the layer outputs, weights, gradients and updates) replaced by one that
    returns at once: what handing the values to the host costs inside the step.
  - *ikkuna's host side, alone*: that callback of one real step (its arguments captured)
    replayed on the host: the statistics, the bus, the metrics and the store.
- ``Keras MLP``: the parity MLP in ``model.fit``, attached with no metrics, and with a
  ``tf.numpy_function`` that does nothing added to the train step (the one host callback a
  step ikkuna's Keras adapter needs to count the step and take its loss).
- ``JAX CNN``: the benchmark's CNN under ``nnx.jit``: attached with no metrics and with one
  ordered IO callback a step that does nothing (as for the JAX MLP, below); the rows as for
  the Keras CNN (the values leave in ikkuna's ordered host calls of at most ``PART_BYTES``
  each); and
  *the same, with the outputs' and gradients' statistics computed in the graph*: those
  values handed over as the statistics the default metrics read (float32 row sums and sums
  of squares, zero counts, channels that fired), computed by XLA inside the step, to host
  callbacks that do nothing: the lever "reductions computed in the framework" for JAX.
- ``JAX MLP``: the parity MLP under ``nnx.jit``, attached with no metrics, and with one IO
  callback a step that does nothing (ordered, as ikkuna's step marker; and unordered): the
  cost of handing anything to the host from a jitted step, whatever the host then does.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.architectures import CNN
from benchmarks.torch_loop import training_step
from benchmarks.workloads import (
    BATCH,
    WARMUP_STEPS,
    installed_frameworks,
    time_steps,
)
from ikkuna.testing.parity.specs import MLP

#: Timed steps per measurement (``--steps``) and rounds of alternating measurements.
DEFAULT_STEPS = {"torch CNN": 30, "torch MLP": 2000, "Keras CNN": 10, "Keras MLP": 500,
                 "JAX CNN": 10, "JAX MLP": 1000}
DEFAULT_ROUNDS = 5
FRAMEWORKS = ("torch", "keras", "jax")
Timed = Callable[[], float]  # seconds per step of one measurement


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", nargs="+", choices=FRAMEWORKS, default=None,
                        help="which workloads (default: every installed one)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per measurement (default: "
                        + ", ".join(f"{name} {count}" for name, count in DEFAULT_STEPS.items())
                        + ")")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help=f"alternating rounds, medians reported (default {DEFAULT_ROUNDS})")
    parser.add_argument("--compiled", action="store_true",
                        help="also time statistics fused by torch.compile (needs a C++ compiler)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1 or args.rounds < 1:
        parser.error("--steps and --rounds must be at least 1")
    installed = installed_frameworks()
    missing = sorted(set(args.framework or ()) - set(installed))
    if missing:
        parser.error(f"not installed: {', '.join(missing)}; installed: {', '.join(installed)}")
    return args


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Each installed workload's step time without ikkuna and its rows, as ratios."""
    chosen = args.framework or [f for f in FRAMEWORKS if f in installed_frameworks()]
    found: dict[str, Any] = {}
    if "torch" in chosen:
        found["torch CNN"] = torch_cnn(args.steps or DEFAULT_STEPS["torch CNN"], args.rounds,
                                       args.compiled)
        found["torch MLP"] = torch_mlp(args.steps or DEFAULT_STEPS["torch MLP"], args.rounds)
    if "keras" in chosen:
        found["Keras CNN"] = keras_cnn(args.steps or DEFAULT_STEPS["Keras CNN"], args.rounds)
        found["Keras MLP"] = keras_mlp(args.steps or DEFAULT_STEPS["Keras MLP"], args.rounds)
    if "jax" in chosen:
        found["JAX CNN"] = jax_cnn(args.steps or DEFAULT_STEPS["JAX CNN"], args.rounds)
        found["JAX MLP"] = jax_mlp(args.steps or DEFAULT_STEPS["JAX MLP"], args.rounds)
    return found


def ratios(baseline: Timed, measured: dict[str, Timed], rounds: int,
           alone: dict[str, Timed] | None = None) -> dict[str, Any]:
    """Milliseconds per step of ``baseline``, and each of ``measured`` as its ratio to it,
    alternating (baseline, then each) in every round; medians over rounds. ``alone`` are
    timed by themselves, outside the step (less noise where the step's time varies): their
    ratio is one plus their time over the step's."""
    alone = alone or {}
    seconds: dict[str, list[float]] = {name: [] for name in ("baseline", *measured, *alone)}
    for _ in range(rounds):
        seconds["baseline"].append(baseline())
        for name, timed in (*measured.items(), *alone.items()):
            seconds[name].append(timed())
    base = statistics.median(seconds["baseline"])
    found = {name: statistics.median(seconds[name]) / base for name in measured}
    found.update({name: 1 + statistics.median(seconds[name]) / base for name in alone})
    return {"baseline_ms": base * 1e3, "ratios": found}


def per_step(step: Callable[[], object], steps: int) -> float:
    """Seconds per step of ``step``, after the benchmark's warm-up steps."""
    return time_steps(step, steps) / steps


# -- torch CNN ---------------------------------------------------------------------------------


def torch_cnn(steps: int, rounds: int, compiled: bool) -> dict[str, Any]:
    import torch

    from ikkuna.adapters.torch import (
        activation_layout,
        tensor_fired_units,
        tensor_moments,
        tensor_sum_of_squares,
    )
    from ikkuna.core.arrays import NO_LAYOUT
    from ikkuna.core.attach import DEFAULT_METRICS
    from ikkuna.core.statistics import fired_units_and_zeros, moments

    model, optimizer, inputs, step = training_step(CNN)
    step()
    outputs = _layer_outputs(model, inputs)
    weights = [parameter.detach() for parameter in model.parameters()]
    gradients = [parameter.grad.detach() for parameter in model.parameters()]
    initial = [weight.clone() for weight in weights]  # as distance_from_init keeps them
    before = [torch.empty_like(weight) for weight in weights]

    def updates() -> list[Any]:
        """Each weight's update, as the torch adapter makes it: a copy, then a subtraction."""
        for weight, copy in zip(weights, before):
            copy.copy_(weight)
            torch.sub(weight, copy, out=copy)
        return before

    def one_read() -> None:
        for tensor in (*outputs, *weights, *gradients, *initial):
            tensor.sum()
        updates()

    layouts = [activation_layout(module, output.ndim) for module, output in zip(model, outputs)]

    def ikkunas_statistics() -> None:
        for output, layout in zip(outputs, layouts):
            tensor_moments(output, layout)
            tensor_fired_units(output, layout)
        for tensor in (*weights, *gradients, *updates()):
            tensor_sum_of_squares(tensor, NO_LAYOUT)

    def statistics_to_fuse(tensor: Any, channels: bool) -> Any:
        flat = tensor.reshape(-1)
        if not channels:  # a parameter, its gradient or update: the norms' sum of squares
            return (flat * flat).sum()
        return [flat.sum(), (flat * flat).sum(), (flat == 0).sum(), _channel_maxima(tensor)]

    host_outputs = [(tensor.numpy(), layout.channel_axis)
                    for tensor, layout in zip(outputs, layouts)]

    def host_statistics() -> None:  # as the Keras and JAX adapters compute them, with numpy
        for values, channel_axis in host_outputs:
            _, zeros = fired_units_and_zeros(values, channel_axis)
            moments(values, zeros)

    without_distance = [name for name in DEFAULT_METRICS if name != "distance_from_init"]
    measured: dict[str, Timed] = {
        "ikkuna, default metrics": _attached(model, optimizer, step, steps, metrics="default"),
        "ikkuna without its statistics": _without_statistics(
            _attached(model, optimizer, step, steps, metrics="default")),
        "ikkuna without its statistics nor distance_from_init": _without_statistics(
            _attached(model, optimizer, step, steps, metrics=without_distance)),
        "spare core, inline": lambda: per_step(_then(step, host_statistics), steps),
        "spare core, on a thread": lambda: per_step_with_worker(step, host_statistics, steps),
    }
    alone: dict[str, Timed] = {
        "one read, alone": lambda: per_step(one_read, steps),
        "ikkuna's statistics, alone": lambda: per_step(ikkunas_statistics, steps),
    }
    if compiled:
        fused = torch.compile(statistics_to_fuse, dynamic=True)

        def fused_statistics() -> None:
            for tensor in outputs:
                fused(tensor, True)
            for tensor in (*weights, *gradients, *updates()):
                fused(tensor, False)

        started = time.perf_counter()
        fused_statistics()
        compile_seconds = time.perf_counter() - started
        alone["fused statistics, alone"] = lambda: per_step(fused_statistics, steps)
    found = ratios(lambda: per_step(step, steps), measured, rounds, alone)
    read = (*outputs, *weights, *gradients, *before, *initial)  # `before` holds the updates
    found["values_read"] = sum(tensor.numel() for tensor in read)
    if compiled:
        found["compile_seconds"] = compile_seconds
    return found


def torch_mlp(steps: int, rounds: int) -> dict[str, Any]:
    model, optimizer, _, step = training_step(MLP)

    def hooked() -> float:
        handles = [model.register_forward_pre_hook(lambda *_: None),
                   optimizer.register_step_pre_hook(lambda *_: None),
                   optimizer.register_step_post_hook(lambda *_: None)]
        try:
            return per_step(step, steps)
        finally:
            for handle in handles:
                handle.remove()

    return ratios(lambda: per_step(step, steps),
                  {"ikkuna, no metrics": _attached(model, optimizer, step, steps, metrics=[]),
                   "three no-op hooks": hooked}, rounds)


def _attached(model: Any, optimizer: Any, step: Callable[[], None], steps: int,
              metrics: Any) -> Timed:
    """Seconds per step with ikkuna attached (a store of its own), detached afterwards."""
    import tempfile

    import ikkuna

    def run() -> float:
        with tempfile.TemporaryDirectory() as store, \
                ikkuna.attach(model, optimizer=optimizer, metrics=metrics, store=store):
            return per_step(step, steps)
    return run


def _without_statistics(timed: Timed) -> Timed:
    """``timed`` with the torch adapter's reducers answering constants (the moments of the
    values 1 and 0, a sum of squares of 1, every channel fired) instead of reading the
    tensors."""
    import numpy as np

    import ikkuna.adapters.torch as adapter
    from ikkuna.core.statistics import FIRED_UNITS, MOMENTS, SUM_SQUARES, Moments

    def fired(tensor: Any, layout: Any) -> Any:
        axis = layout.channel_axis
        return np.ones(1 if axis is None or tensor.ndim < 2 else tensor.shape[axis], dtype=bool)

    constants = {MOMENTS: lambda tensor, layout: Moments(2, 1.0, 1.0, 0.5, 1),
                 SUM_SQUARES: lambda tensor, layout: 1.0, FIRED_UNITS: fired}

    def run() -> float:
        kept = dict(adapter.REDUCERS)
        adapter.REDUCERS.update(constants)
        try:
            return timed()
        finally:
            adapter.REDUCERS.update(kept)
    return run


def _layer_outputs(model: Any, inputs: Any) -> list[Any]:
    """Every layer's output in one training forward pass (what the activation metrics read)."""
    outputs: list[Any] = []
    handles = [module.register_forward_hook(lambda _m, _a, output: outputs.append(output.detach()))
               for module in model]
    try:
        model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def _channel_maxima(tensor: Any) -> Any:
    if tensor.ndim < 2:
        return tensor.amax()
    return tensor.reshape(tensor.shape[0], tensor.shape[1], -1).amax(dim=(0, 2))


def _then(first: Callable[[], object], second: Callable[[], object]) -> Callable[[], None]:
    def both() -> None:
        first()
        second()
    return both


def per_step_with_worker(step: Callable[[], object], work: Callable[[], object],
                          steps: int, warmup: int = WARMUP_STEPS) -> float:
    """Seconds per step when each step hands ``work`` to a worker thread, up to the end of
    the last step's work. The first error of ``work`` is raised here, after the steps."""
    tasks: queue.Queue[bool] = queue.Queue()
    errors: list[BaseException] = []

    def worker() -> None:
        while tasks.get():
            try:
                if not errors:
                    work()
            except BaseException as error:  # noqa: BLE001 - raised on the timing thread
                errors.append(error)
            finally:
                tasks.task_done()
        tasks.task_done()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        for _ in range(warmup):
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
            tasks.put(True)
        tasks.join()
        seconds = (time.perf_counter() - start) / steps
    finally:
        tasks.put(False)
        thread.join()
    if errors:
        raise errors[0]
    return seconds


# -- Keras MLP ---------------------------------------------------------------------------------


def keras_mlp(steps: int, rounds: int) -> dict[str, Any]:
    """A fresh model each measurement, as in the overhead benchmark (attaching retraces fit's
    step function anyway); the warm-up ``fit`` traces it, the timed one reuses it."""
    import tempfile

    import tensorflow as tf

    import ikkuna
    from benchmarks.keras_loop import compiled_model, timed_fit, training_data

    inputs, labels = training_data(MLP, steps)

    def timed(variant: str) -> Timed:
        def run() -> float:
            model = compiled_model(MLP)
            if variant == "callback":
                model.train_step = _with_host_callback(tf, model.train_step)
            with tempfile.TemporaryDirectory() as store:
                monitor = (ikkuna.attach(model, metrics=[], store=store)
                           if variant == "ikkuna" else None)
                try:
                    return timed_fit(model, inputs, labels) / steps
                finally:
                    if monitor is not None:
                        monitor.detach()
        return run

    return ratios(timed("plain"), {"ikkuna, no metrics": timed("ikkuna"),
                                   "a no-op host callback": timed("callback")}, rounds)


def _with_host_callback(tf: Any, train_step: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def step_and_callback(data: Any) -> Any:
        logs = train_step(data)
        tf.numpy_function(_nothing, [], Tout=[], stateful=True)
        return logs
    return step_and_callback


def _nothing() -> list[Any]:
    return []


# -- Keras CNN ---------------------------------------------------------------------------------


def keras_cnn(steps: int, rounds: int) -> dict[str, Any]:
    """As ``keras_mlp``, a fresh model each measurement, on the benchmark's CNN."""
    import tempfile

    import numpy as np

    import ikkuna
    from benchmarks.keras_loop import compiled_model, timed_fit, training_data

    inputs, labels = training_data(CNN, steps)

    def fit(host_side: Callable[[Any], Callable[..., list[Any]]] | None = None,
            attach: bool = True) -> float:
        """Seconds per step of ``fit``, attached with the default metrics unless not
        ``attach``; ``host_side`` (given the real one) replaces the host side of the callback
        that carries the step's values, before ``fit`` traces its step."""
        model = compiled_model(CNN)
        if not attach:
            return timed_fit(model, inputs, labels) / steps
        with tempfile.TemporaryDirectory() as store, \
                ikkuna.attach(model, metrics="default", store=store) as monitor:
            if host_side is not None:
                monitor.adapter._deliver = host_side(monitor.adapter._deliver)
            return timed_fit(model, inputs, labels) / steps

    def doing_nothing(_: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
        return lambda *arguments: []

    def host_side_alone() -> float:
        """The last step's callback, as a real step made it, replayed on the host."""
        calls: list[tuple[Any, ...]] = []

        def capture(deliver: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
            def captured(slots: Any, *values: Any) -> list[Any]:
                calls[:] = [(deliver, slots, *(np.array(value, copy=True) for value in values))]
                return deliver(slots, *values)
            return captured

        model = compiled_model(CNN)
        with tempfile.TemporaryDirectory() as store, \
                ikkuna.attach(model, metrics="default", store=store) as monitor:
            monitor.adapter._deliver = capture(monitor.adapter._deliver)
            timed_fit(model, inputs[:BATCH * (WARMUP_STEPS + 1)],
                      labels[:BATCH * (WARMUP_STEPS + 1)])
            deliver, slots, *values = calls[0]
            return per_step(lambda: deliver(slots, *values), steps)

    return ratios(lambda: fit(attach=False),
                  {"ikkuna, default metrics": fit,
                   "ikkuna, default metrics, its callback doing nothing":
                       lambda: fit(doing_nothing)},
                  rounds, {"ikkuna's host side, alone": host_side_alone})


# -- JAX MLP -----------------------------------------------------------------------------------


def jax_mlp(steps: int, rounds: int) -> dict[str, Any]:
    import jax

    from benchmarks.jax_loop import training_state

    model, optimizer, inputs, labels = training_state(MLP)

    def per_jitted_step(jitted: Callable[..., Any]) -> float:
        return per_step(
            lambda: jax.block_until_ready(jitted(model, optimizer, inputs, labels)), steps)

    def timed(ordered: bool | None) -> Timed:
        return lambda: per_jitted_step(_jax_step_with_a_no_op_callback(ordered))

    return ratios(timed(None), {
        "ikkuna, no metrics": lambda: _attached_without_metrics(model, optimizer, per_jitted_step),
        "a no-op IO callback, ordered": timed(True),
        "a no-op IO callback, unordered": timed(False)}, rounds)


def _jax_step_with_a_no_op_callback(ordered: bool | None) -> Callable[..., Any]:
    """The benchmark's train step under ``nnx.jit`` with one IO callback a step that does
    nothing (``ordered`` as ikkuna's step marker, or not; None: no callback)."""
    from flax import nnx
    from jax.experimental import io_callback

    from ikkuna.testing.parity.jax_models import cross_entropy_step

    train = cross_entropy_step()

    def with_callback(model: Any, optimizer: Any, inputs: Any, labels: Any) -> Any:
        loss = train(model, optimizer, inputs, labels)
        if ordered is not None:
            io_callback(lambda _: None, None, loss, ordered=ordered)
        return loss

    return nnx.jit(with_callback)


def _attached_without_metrics(model: Any, optimizer: Any,
                              per_jitted_step: Callable[[Any], float]) -> float:
    """Seconds per step of the train step traced while ikkuna is attached with no metrics
    (its one host call a step, the step marker)."""
    import tempfile

    from flax import nnx

    import ikkuna
    from ikkuna.testing.parity.jax_models import cross_entropy_step

    with tempfile.TemporaryDirectory() as store, \
            ikkuna.attach(model, optimizer=optimizer, metrics=[], store=store):
        return per_jitted_step(nnx.jit(cross_entropy_step()))


# -- JAX CNN -----------------------------------------------------------------------------------


def jax_cnn(steps: int, rounds: int) -> dict[str, Any]:
    """One model and optimizer throughout, as in ``jax_mlp``; each measurement jits a new
    step (traced while attached, where it is)."""
    import tempfile

    import jax
    import numpy as np
    from flax import nnx

    import ikkuna
    from benchmarks.jax_loop import training_state
    from ikkuna.core.kinds import ACTIVATIONS, GRADIENTS
    from ikkuna.core.statistics import ROW_LENGTH
    from ikkuna.testing.parity.jax_models import cross_entropy_step

    model, optimizer, inputs, labels = training_state(CNN)

    def per_jitted_step(jitted: Callable[..., Any]) -> float:
        """Seconds per step, the host callbacks of the timed steps included."""
        return time_steps(lambda: jax.block_until_ready(jitted(model, optimizer, inputs, labels)),
                          steps, jax.effects_barrier) / steps

    def attached(host_side: Callable[[Any], Callable[..., None]] | None) -> float:
        """Attached with the default metrics; ``host_side`` (given the real one) replaces
        the host side of the callbacks that carry the step's values, while tracing."""
        with tempfile.TemporaryDirectory() as store, \
                ikkuna.attach(model, optimizer=optimizer, metrics="default", store=store) as monitor:
            if host_side is not None:
                monitor.adapter._deliver_part = host_side(monitor.adapter._deliver_part)
            return per_jitted_step(nnx.jit(cross_entropy_step()))  # traced while attached

    def doing_nothing(_: Callable[..., None]) -> Callable[..., None]:
        return lambda *arguments: None

    def host_side_alone() -> float:
        """One step's callbacks, as a real step made them, replayed on the host."""
        parts: list[tuple[Any, ...]] = []

        def capture(deliver: Callable[..., None]) -> Callable[..., None]:
            def captured(deliveries: Any, first: bool, last: bool, values: list[Any],
                         *extra: Any) -> None:
                if first:
                    parts.clear()
                parts.append((deliveries, first, last,
                              [np.array(value, copy=True) for value in values], *extra))
                deliver(deliveries, first, last, values, *extra)
            return captured

        with tempfile.TemporaryDirectory() as store, \
                ikkuna.attach(model, optimizer=optimizer, metrics="default", store=store) as monitor:
            deliver = monitor.adapter._deliver_part
            monitor.adapter._deliver_part = capture(deliver)
            jitted = nnx.jit(cross_entropy_step())
            jax.block_until_ready(jitted(model, optimizer, inputs, labels))
            jax.effects_barrier()
            step = list(parts)

            def replayed() -> None:
                for part in step:
                    deliver(*part)
            return per_step(replayed, steps)

    def statistics_in_the_graph() -> float:
        """As with its callbacks doing nothing, but the layer outputs and gradients handed
        over as their statistics, computed by XLA in the step (float32 rows of
        ``ROW_LENGTH`` values: sums and sums of squares; an output's zero count and channels
        that fired), instead of their values."""
        import ikkuna.adapters.jax as adapter

        def reduced(kind: str, value: Any) -> Any:
            flat = value.reshape(-1)
            rows = flat[: flat.size // ROW_LENGTH * ROW_LENGTH].reshape(-1, ROW_LENGTH)
            if kind == GRADIENTS:
                return (rows * rows).sum(axis=1)
            return [rows.sum(axis=1), (rows * rows).sum(axis=1), (flat == 0).sum(),
                    (value != 0).reshape(-1, value.shape[-1]).any(axis=0)]

        def handing_statistics(deliver: Callable[..., None], deliveries: list[Any],
                               **extra: Any) -> None:
            kept(deliver, [(delivery, reduced(delivery.kind, value)
                            if delivery.kind in (ACTIVATIONS, GRADIENTS) else value)
                           for delivery, value in deliveries], **extra)

        kept = adapter.to_host_in_parts
        adapter.to_host_in_parts = handing_statistics
        try:
            return attached(doing_nothing)
        finally:
            adapter.to_host_in_parts = kept

    return ratios(
        lambda: per_jitted_step(nnx.jit(cross_entropy_step())),
        {"ikkuna, no metrics": lambda: _attached_without_metrics(model, optimizer,
                                                                 per_jitted_step),
         "a no-op IO callback, ordered": lambda: per_jitted_step(
             _jax_step_with_a_no_op_callback(True)),
         "ikkuna, default metrics": lambda: attached(None),
         "ikkuna, default metrics, its callbacks doing nothing": lambda: attached(doing_nothing),
         "the same, with the outputs' and gradients' statistics computed in the graph":
             statistics_in_the_graph},
        rounds, {"ikkuna's host side, alone": host_side_alone})


# -- output ------------------------------------------------------------------------------------


def markdown(found: dict[str, Any]) -> str:
    lines = ["| workload | measurement | ms per step | ratio to the step |", "|---|---|---:|---:|"]
    for workload, entry in found.items():
        base = entry["baseline_ms"]
        lines.append(f"| {workload} | the step without ikkuna | {base:.3g} | 1.00 |")
        lines += [f"| {workload} | {name} | {ratio * base:.3g} | {ratio:.2f} |"
                  for name, ratio in entry["ratios"].items()]
    notes = []
    if "torch CNN" in found:
        notes.append(f"torch CNN: {found['torch CNN']['values_read'] / 1e6:.1f} million values "
                     "read a step")
        if "compile_seconds" in found["torch CNN"]:
            notes.append(f"torch.compile took {found['torch CNN']['compile_seconds']:.0f} s")
    return "\n".join(lines + ([""] + [f"{note}." for note in notes] if notes else []))


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    found = measure(args)
    if not found:
        print("none of torch, Keras and JAX is installed: nothing to measure", file=sys.stderr)
        return 1
    print(json.dumps(found, indent=2) if args.json else markdown(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
