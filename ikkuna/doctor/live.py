"""The doctor during training: ``ikkuna.attach(..., doctor="warn" | "raise")``.

The monitor hands each closed step's records to :class:`LiveDoctor`, which keeps them in a
bounded :class:`LiveHistory` and runs the rules every ``doctor_every`` steps. Each finding is
reported once (by its :attr:`Finding.key`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ikkuna.core.events import Record
from ikkuna.core.plugins import PluginManager
from ikkuna.doctor.finding import Finding, TrainingProblem, TrainingWarning, severity_rank
from ikkuna.doctor.history import LiveHistory, metric_kinds
from ikkuna.doctor.runner import run_rules

if TYPE_CHECKING:
    from ikkuna.core.monitor import Monitor

#: What ``doctor=`` accepts besides None.
DOCTOR_MODES = ("warn", "raise")
#: Rules run after every DEFAULT_DOCTOR_EVERY-th step unless ``doctor_every=`` says otherwise.
DEFAULT_DOCTOR_EVERY = 10


class LiveDoctor:
    """Runs the rules on a monitor's records as training goes; warns or raises once per finding.

    ``"raise"`` raises :class:`TrainingProblem` for findings of severity ``error`` or
    ``warning`` (``info`` findings, such as a failing rule, are warned); the raised error is
    kept in :attr:`raised`.
    """

    def __init__(self, mode: str, every: int, plugins: PluginManager) -> None:
        self.mode = check_mode(mode)
        self.every = check_every(every)
        self.rules = plugins.findings()
        self.history = LiveHistory("", list, metric_kinds(plugins))
        self.findings: list[Finding] = []
        #: The step after which each finding was first reported, by :attr:`Finding.key`; a key
        #: found here is not reported again.
        self.detected_at: dict[tuple[str, tuple[str, ...]], int] = {}
        self.raised: TrainingProblem | None = None

    def bind(self, monitor: Monitor) -> None:
        """Read the monitor's layers (in model order) when the rules run."""
        self.history = LiveHistory(monitor.run, lambda: monitor.layers, self.history._kinds)

    def record(self, records: Iterable[Record]) -> None:
        self.history.add(records)

    def step_closed(self, monitor: Monitor, step: int, *, final: bool = False) -> None:
        """``step`` was closed: run the rules if it is due (always when ``final``)."""
        if not final and (step + 1) % self.every:
            return
        self.history.refresh(monitor.run)
        found = [f for f in run_rules(self.history, self.rules, warn=False)
                 if f.key not in self.detected_at]
        if not found:
            return
        self.detected_at.update((f.key, step) for f in found)
        self.findings.extend(found)
        serious = [f for f in found if severity_rank(f.severity) < severity_rank("info")]
        if self.mode == "raise" and serious:
            for finding in found:
                if finding not in serious:
                    _warn(finding)
            self.raised = TrainingProblem(serious[0])
            self.raised.findings = serious
            raise self.raised
        for finding in found:
            _warn(finding)

    def reraise_over(self, error: BaseException | None) -> None:
        """Raise the finding again over ``error``, a framework's error that carried it out of a
        host callback (Keras ``fit``, jitted JAX); nothing if ``error`` is the finding itself."""
        if self.raised is None or error is None or isinstance(error, TrainingProblem):
            return
        if not isinstance(error, Exception):
            return  # KeyboardInterrupt and friends go on as they are
        problem = TrainingProblem(self.raised.finding)
        problem.findings = getattr(self.raised, "findings", [self.raised.finding])
        raise problem from error


def _warn(finding: Finding) -> None:
    warnings.warn(f"ikkuna doctor: {finding.describe()}", TrainingWarning, stacklevel=2)


def check_mode(mode: Any) -> str:
    if mode not in DOCTOR_MODES:
        raise ValueError(
            f"doctor= takes None, {' or '.join(repr(m) for m in DOCTOR_MODES)}, got {mode!r}"
        )
    return mode


def check_every(every: Any) -> int:
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"doctor_every= takes an int >= 1 (steps between diagnoses), got {every!r}")
    return every
