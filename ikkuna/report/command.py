"""The ``ikkuna report`` command: argparse wiring that ``ikkuna.cli`` registers."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_command(commands: Any) -> argparse.ArgumentParser:
    """Add ``report [RUN ...] [-o DIR] [--store STORE]`` to ``commands`` (argparse subparsers)."""
    report = commands.add_parser(
        "report", help="plot every metric of a run per layer to PNGs and one HTML page; "
                       "two or more runs: compare them")
    report.add_argument("runs", nargs="*", metavar="RUN", help="run names (default: the latest run)")
    report.add_argument("-o", "--output", metavar="DIR",
                        help="directory to write to (default: <store>/reports/<run>, or "
                             "compare-<a>-vs-<b> for several runs)")
    report.add_argument("--store", help="store directory (default: $IKKUNA_STORE or ./ikkuna-runs)")
    report.set_defaults(handler=run_command)
    return report


def run_command(args: argparse.Namespace) -> int:
    """Write the report and say where it is."""
    from ikkuna.report.writer import write_report

    try:
        files = write_report(args.runs or [None], store=args.store, directory=args.output)
    except ImportError as error:  # no matplotlib: one line that says what to install
        print(f"ikkuna report: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # -o names a file, a folder we may not write to, a full disk ...
        print(f"ikkuna report: cannot write the report: {error}", file=sys.stderr)
        return 1
    count = len(files.images)
    print(f"report: {files.html.resolve()}")
    print(f"{count} image{'' if count == 1 else 's'} written to {files.html.parent.resolve()}")
    return 0
