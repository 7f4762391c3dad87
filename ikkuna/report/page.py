"""The report's ``index.html``: one self-contained page (inline CSS, images as data URIs, no
scripts). Every text that comes from the store is escaped."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from ikkuna.doctor.finding import Finding
from ikkuna.report.panels import MetricPlot
from ikkuna.sinks.reader import Run

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.value { font-family: ui-monospace, monospace; }
ul.findings li { margin-bottom: 0.6em; }
.error { color: #b00020; } .warning { color: #a05a00; } .info { color: #555; }
.hint, .evidence { color: #444; } .non-finite { color: #b00020; } .missing { color: #a05a00; }
section { border-top: 1px solid #ddd; margin-top: 1.5em; }
img { max-width: 100%; height: auto; }
"""


@dataclass(frozen=True)
class Section:
    """One metric's part of the page: what was drawn and its PNG."""

    plot: MetricPlot
    png: bytes
    width: int
    height: int


def page(runs: Sequence[Run], findings: Mapping[str, Sequence[Finding]],
         sections: Sequence[Section]) -> str:
    """The whole HTML page for ``runs`` (in order), the doctor's ``findings`` by run name and
    one section per metric."""
    names = " vs ".join(run.name for run in runs)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>ikkuna report: {escape(names)}</title><style>{_CSS}</style></head><body>",
        f"<h1>ikkuna report: {escape(names)}</h1>",
        _runs_table(runs),
        '<h2 id="diagnosis">Diagnosis</h2>',
        *(_diagnosis(run, findings.get(run.name, ()), len(runs) > 1) for run in runs),
        '<h2 id="metrics">Metrics</h2>',
        _contents(sections),
        *(_section(index, section, len(runs) > 1) for index, section in enumerate(sections, 1)),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _runs_table(runs: Sequence[Run]) -> str:
    rows: dict[str, list[str]] = {"framework": [run.framework for run in runs],
                                  "started": [_time(run.started) for run in runs],
                                  "finished": [_time(run.finished) for run in runs],
                                  "layers": [", ".join(layer.name for layer in run.layers())
                                             for run in runs]}
    for field, of in (("version", lambda run: run.versions), ("config", lambda run: run.config)):
        for key in dict.fromkeys(key for run in runs for key in of(run)):
            rows[f"{field}: {key}"] = [_text(of(run)[key]) if key in of(run) else "" for run in runs]
    header = "".join(f"<th>{escape(run.name)}</th>" for run in runs)
    body = "".join(
        f"<tr><th>{escape(label)}</th>" + "".join(f'<td class="value">{escape(v)}</td>' for v in values)
        + "</tr>" for label, values in rows.items()
    )
    return f'<table class="runs"><tr><th>run</th>{header}</tr>{body}</table>'


def _diagnosis(run: Run, findings: Sequence[Finding], compare: bool) -> str:
    heading = f"<h3>{escape(run.name)}</h3>" if compare else ""
    problems = run.problems()
    recorded = "".join(
        f"<li>{escape(_text(problem['message']))}</li>" for problem in problems
    )
    recorded = f"<p>Problems while recording:</p><ul>{recorded}</ul>" if problems else ""
    if not findings:
        return f"{heading}<p>The doctor found no problems.</p>{recorded}"
    items = "".join(_finding(finding) for finding in findings)
    return f'{heading}<ul class="findings">{items}</ul>{recorded}'


def _finding(finding: Finding) -> str:
    where = f" in {', '.join(finding.layers)}" if finding.layers else ""
    first, last = finding.steps
    span = f"step {first}" if first == last else f"steps {first}-{last}"
    evidence = ", ".join(f"{label} = {value:.3g}" for label, value in finding.evidence.items())
    return (
        f'<li><strong class="{escape(finding.severity)}">{escape(finding.severity)}</strong> '
        f"{escape(finding.rule)}{escape(where)} ({span}): {escape(finding.message)}"
        + (f'<br><span class="evidence">evidence: {escape(evidence)}</span>' if evidence else "")
        + f'<br><span class="hint">hint: {escape(finding.hint)}</span></li>'
    )


def _contents(sections: Sequence[Section]) -> str:
    items = "".join(f'<li><a href="#metric-{index}">{escape(section.plot.metric)}</a></li>'
                    for index, section in enumerate(sections, 1))
    return f'<ol class="contents">{items}</ol>' if sections else "<p>No metrics were recorded.</p>"


def _section(index: int, section: Section, compare: bool) -> str:
    plot = section.plot
    notes = []
    if plot.missing:
        notes.append(f'<p class="missing">not recorded in run {escape(", ".join(plot.missing))}</p>')
    for title, line, step in plot.non_finite():
        which = " ".join(filter(None, (title, line.param, f"of run {line.run}" if compare else None)))
        notes.append(f'<p class="non-finite">non-finite values in {escape(which)} from step {step}</p>')
    if any(panel.heatmap is not None for panel in plot.panels):
        notes.append("<p>Colour: the share of the values in each bin, per step.</p>")
    data = base64.b64encode(section.png).decode("ascii")
    alt = f"{plot.metric} by step; panels: {', '.join(panel.title for panel in plot.panels)}"
    return (
        f'<section id="metric-{index}"><h2>{escape(plot.metric)}</h2>{"".join(notes)}'
        f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}" '
        f'width="{section.width}" height="{section.height}"></section>'
    )


def _time(stamp: float | None) -> str:
    if stamp is None:
        return "not finished"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
