"""Write a report of one run, or of several runs compared: PNGs and ``index.html``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from ikkuna.doctor import diagnose
from ikkuna.report.drawing import image_size, import_matplotlib, render
from ikkuna.report.names import safe_name, unique_names
from ikkuna.report.page import Section, page
from ikkuna.report.panels import collect
from ikkuna.sinks.reader import open_run
from ikkuna.sinks.schema import store_directory

REPORTS_DIRECTORY = "reports"
INDEX_FILE = "index.html"


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote: the page and one PNG per metric, in page order."""

    html: Path
    images: list[Path]


def write_report(runs: Sequence[str | None], *, store: str | os.PathLike[str] | None = None,
                 directory: str | os.PathLike[str] | None = None) -> ReportFiles:
    """Draw every metric of ``runs`` over steps, per layer, to PNGs and one ``index.html``.

    ``runs``: run names (None: the latest run); with two or more, every panel overlays them.
    ``directory`` defaults to ``<store>/reports/<run>`` (``<a>-vs-<b>`` when comparing). Files
    of an earlier report there are overwritten. Needs matplotlib (``ikkuna[report]``).
    """
    if isinstance(runs, (str, bytes)) or not isinstance(runs, Sequence) or not runs:
        raise TypeError(f"runs must be a non-empty list of run names (None: the latest run), "
                        f"got {runs!r}")
    import_matplotlib()
    with ExitStack() as stack:
        opened = [stack.enter_context(open_run(name, store)) for name in runs]
        names = [run.name for run in opened]
        if len(set(names)) < len(names):
            raise ValueError(f"each run can be in a report once, got {', '.join(names)}")
        plots = collect(opened)
        findings = {run.name: diagnose(run) for run in opened}
        sections = [Section(plot, render(plot, names), *image_size(len(plot.panels)))
                    for plot in plots]
        html = page(opened, findings, sections)
    target = Path(directory) if directory is not None else default_directory(names, store)
    target.mkdir(parents=True, exist_ok=True)
    images = [target / name for name in unique_names((plot.metric for plot in plots), ".png")]
    for path, section in zip(images, sections):
        path.write_bytes(section.png)
    index = target / INDEX_FILE
    index.write_text(html, encoding="utf-8")
    return ReportFiles(index, images)


def default_directory(names: Sequence[str], store: str | os.PathLike[str] | None = None) -> Path:
    """``<store>/reports/<run>``, or ``<a>-vs-<b>`` for several runs, named safely."""
    return store_directory(store) / REPORTS_DIRECTORY / "-vs-".join(safe_name(n) for n in names)
