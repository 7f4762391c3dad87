"""Demo trainings on scikit-learn's digits (shipped with scikit-learn, no download).

The demos are user code: each imports its framework itself, and only when it runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import time
from typing import Any

from ikkuna.core.sink import Sink
from ikkuna.demos.summary import DemoOutcome, print_summary
from ikkuna.demos.variants import variant

#: framework -> the module with its ``train(variant, *, epochs, **attach_options)``
TRAINERS = {"torch": "ikkuna.demos.torch_digits", "keras": "ikkuna.demos.keras_digits",
            "jax": "ikkuna.demos.jax_digits"}
#: framework -> the pip extra that installs it
DEMO_EXTRAS = {"torch": "torch", "keras": "tensorflow", "jax": "jax"}


def run_demo(framework: str = "torch", *, epochs: int = 3, run: str | None = None,
             store: str | os.PathLike[str] | None = None, breakage: str | None = None,
             console_every: int = 0) -> DemoOutcome:
    """Train the demo CNN in ``framework`` with ikkuna attached (default metrics, the store and
    TensorBoard), write the report, diagnose the run and print where everything is.

    ``breakage``: ``"lr"``, ``"init"`` or ``"dead"`` trains a deliberately broken variant.
    ``console_every``: print a table of the latest values every that many steps (0: never).
    """
    if framework not in TRAINERS:
        raise ValueError(f"no demo for framework {framework!r}; available: {', '.join(TRAINERS)}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    setup = variant(breakage)
    trainer = importlib.import_module(TRAINERS[framework])
    sinks, notes = _sinks(store, console_every)
    name = run or f"digits-{framework}{'' if breakage is None else '-' + breakage}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"ikkuna demo: {framework}, {setup.description}, {epochs} epoch{'s' * (epochs > 1)}")
    monitor, accuracy = trainer.train(setup, epochs=epochs, run=name, store=store, sinks=sinks)
    outcome = DemoOutcome(monitor=monitor, test_accuracy=accuracy, notes=notes,
                          tensorboard=next((s.directory for s in sinks if s.name == "tensorboard"), None))
    if monitor.store_path is not None:
        _diagnose(outcome)
        _report(outcome, notes)
    else:  # the store sink failed (its warning and problem say why)
        notes.append("no store, so no report and no diagnosis")
    print_summary(outcome)
    return outcome


def _sinks(store: Any, console_every: int) -> tuple[list[Sink], list[str]]:
    from ikkuna.sinks.store import StoreSink

    sinks: list[Sink] = [StoreSink.create(store)]
    notes = []
    if importlib.util.find_spec("tensorboard") is not None:
        from ikkuna.sinks.tensorboard import TensorBoardSink

        sinks.append(TensorBoardSink.create(store))
    else:
        notes.append("no TensorBoard logs: pip install 'ikkuna[tensorboard]'")
    if console_every:
        from ikkuna.sinks.console import ConsoleSink

        sinks.append(ConsoleSink(every=console_every))
    return sinks, notes


def _diagnose(outcome: DemoOutcome) -> None:
    from ikkuna.doctor import diagnose

    outcome.findings = diagnose(outcome.monitor)


def _report(outcome: DemoOutcome, notes: list[str]) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        notes.append("no report: pip install 'ikkuna[report]'")
        return
    from ikkuna.report import write_report

    outcome.report = write_report([outcome.monitor.run], store=outcome.monitor.store_path).html
