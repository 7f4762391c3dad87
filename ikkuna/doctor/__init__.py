"""The doctor: rules over a run's recorded series that say what is wrong, where and what to do.

    findings = ikkuna.diagnose(ikkuna.open_run("my-run"))     # or: ikkuna doctor my-run
    monitor = ikkuna.attach(model, optimizer=opt, doctor="warn")   # live, once per finding

Rules are plugins (hook ``ikkuna_findings``); the built-ins are in :mod:`ikkuna.doctor.rules`.
"""

from __future__ import annotations

from ikkuna.doctor.finding import SEVERITIES, Finding, TrainingProblem, TrainingWarning
from ikkuna.doctor.history import History, LiveHistory, StoredHistory
from ikkuna.doctor.live import DEFAULT_DOCTOR_EVERY, DOCTOR_MODES, LiveDoctor
from ikkuna.doctor.runner import diagnose, run_rules

__all__ = [
    "DEFAULT_DOCTOR_EVERY",
    "DOCTOR_MODES",
    "SEVERITIES",
    "Finding",
    "History",
    "LiveDoctor",
    "LiveHistory",
    "StoredHistory",
    "TrainingProblem",
    "TrainingWarning",
    "diagnose",
    "run_rules",
]
