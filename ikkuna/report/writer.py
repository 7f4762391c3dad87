"""Write a report of one run, or of several runs compared: PNGs and ``index.html``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from ikkuna.doctor import diagnose
from ikkuna.report.drawing import image_size, import_matplotlib, render
from ikkuna.report.names import comparison_folder_name, run_folder_name, unique_names
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
    ``directory`` defaults to ``<store>/reports/<run>`` (``compare-<a>-vs-<b>`` when comparing;
    see :func:`default_directory`). Files of an earlier report there are overwritten; no other
    file is removed. Needs matplotlib (``ikkuna[report]``).
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
    """``<store>/reports/<run>``, or ``compare-<a>-vs-<b>`` for several runs.

    Names that are not safe as folder names as they are get a short hash of the exact names
    (:func:`~ikkuna.report.names.run_folder_name`,
    :func:`~ikkuna.report.names.comparison_folder_name`), so two runs or comparisons never share
    a folder, and no run takes a comparison's.
    """
    folder = run_folder_name(names[0]) if len(names) == 1 else comparison_folder_name(names)
    return store_directory(store) / REPORTS_DIRECTORY / folder
