"""Reports: every metric of a run (or of runs compared) over steps, per layer, as PNGs and one
self-contained HTML page with the doctor's diagnosis.

    files = ikkuna.report.write_report(["my-run"])            # or: ikkuna report my-run
    files = ikkuna.report.write_report(["baseline", "tuned"])  # one overlay per metric

Needs matplotlib (``pip install 'ikkuna[report]'``), imported only when a report is drawn.
"""

from __future__ import annotations

from ikkuna.report.scale import y_scale
from ikkuna.report.writer import ReportFiles, write_report

__all__ = ["ReportFiles", "write_report", "y_scale"]
