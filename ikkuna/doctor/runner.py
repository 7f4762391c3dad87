"""Running the rules over a run: :func:`diagnose`."""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Sequence
from typing import Any

from ikkuna.core.plugins import PluginManager, Provided, get_plugin_manager
from ikkuna.doctor.finding import Finding
from ikkuna.doctor.history import History, StoredHistory, metric_kinds

Rule = Provided[Any]


def diagnose(run: Any, plugins: PluginManager | None = None) -> list[Finding]:
    """Every finding of every rule (built-in and plugins') about ``run``, most severe first.

    ``run``: a :class:`ikkuna.Run` (``ikkuna.open_run(...)``), a run's name (read from the
    default store), a :class:`History`, or a :class:`ikkuna.Monitor` (its live history if it
    was attached with ``doctor=``, else its stored run). A rule that raises is skipped with a
    warning and reported as an ``info`` finding; the other rules go on.
    """
    plugins = plugins or get_plugin_manager()
    rules = plugins.findings()
    if isinstance(run, History):
        return run_rules(run, rules)
    from ikkuna.core.monitor import Monitor
    from ikkuna.sinks.reader import Run, open_run

    if isinstance(run, Monitor):
        if run.doctor is not None:
            run.doctor.history.refresh(run.run)
            return run_rules(run.doctor.history, rules)
        store = run.store_path
        if store is None:
            raise ValueError("diagnose(monitor) needs a monitor attached with doctor= or a store sink")
        run.sync()
        with open_run(run.run, store=store) as stored:
            return run_rules(StoredHistory(stored, metric_kinds(plugins)), rules)
    if isinstance(run, str):
        with open_run(run) as stored:
            return run_rules(StoredHistory(stored, metric_kinds(plugins)), rules)
    if isinstance(run, Run):
        return run_rules(StoredHistory(run, metric_kinds(plugins)), rules)
    raise TypeError(
        "diagnose() takes an ikkuna.Run, a run name, an ikkuna.Monitor or a doctor History, "
        f"got {type(run).__name__}"
    )


def run_rules(history: History, rules: Sequence[Rule], *, warn: bool = True) -> list[Finding]:
    """Call each rule on ``history``; a failing rule becomes an ``info`` finding (and a warning
    if ``warn``). Returns the findings most severe first."""
    findings: list[Finding] = []
    for rule in rules:
        try:
            found = list(rule.item(history) or ())
            for finding in found:
                if not isinstance(finding, Finding):
                    raise TypeError(f"a rule yields ikkuna.Finding objects, got "
                                    f"{type(finding).__name__}: {finding!r}")
        except Exception as error:  # noqa: BLE001 - one broken rule must not hide the others
            failure = _failure(rule, error, history)
            if warn:
                warnings.warn(failure.message, RuntimeWarning, stacklevel=3)
            findings.append(failure)
            continue
        findings.extend(found)
    return sorted(findings, key=lambda finding: finding.order)


def _failure(rule: Rule, error: Exception, history: History) -> Finding:
    where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    line = f" ({where.filename}:{where.lineno})" if where is not None else ""
    return Finding(
        rule=rule.name,
        severity="info",
        message=f"ikkuna: doctor rule {rule.name!r} (plugin {rule.plugin!r}) raised "
                f"{type(error).__name__}: {error}{line}; it was skipped, the other rules ran",
        hint=f"report this to the author of plugin {rule.plugin!r}, or block the plugin with "
             "IKKUNA_DISABLED_PLUGINS",
        steps=(max(history.last_step, 0), max(history.last_step, 0)),
    )
