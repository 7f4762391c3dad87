"""The ``ikkuna`` command: list plugins, list and show stored runs, diagnose a run, run the demo,
write a new plugin package."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from ikkuna.core.metric import describe
from ikkuna.core.plugins import Provided, get_plugin_manager
from ikkuna.core.tables import format_table, format_value
from ikkuna.demos import TRAINERS
from ikkuna.demos.variants import BROKEN


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ikkuna`` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except (LookupError, OSError, ValueError, TypeError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"ikkuna {args.command}: {message}", file=sys.stderr)
        return 1


class _Parser(argparse.ArgumentParser):
    """No abbreviated options (``--fram``): scripts/demo.sh reads ``--framework`` as written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ikkuna", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser("list", help="metrics, sinks and adapters, with their plugins")
    listing.set_defaults(handler=_list)

    runs = commands.add_parser("runs", help="runs in the store")
    runs.add_argument("--store", help="store directory (default: $IKKUNA_STORE or ./ikkuna-runs)")
    runs.set_defaults(handler=_runs)

    show = commands.add_parser("show", help="last value of each metric per layer of a run")
    show.add_argument("run", nargs="?", help="run name (default: the latest run)")
    show.add_argument("--store", help="store directory (default: $IKKUNA_STORE or ./ikkuna-runs)")
    show.set_defaults(handler=_show)

    doctor = commands.add_parser("doctor", help="what went wrong in a run, where, and what to do")
    doctor.add_argument("run", nargs="?", help="run name (default: the latest run)")
    doctor.add_argument("--store", help="store directory (default: $IKKUNA_STORE or ./ikkuna-runs)")
    doctor.set_defaults(handler=_doctor)

    from ikkuna.report.command import add_command as add_report_command
    add_report_command(commands)

    from ikkuna.scaffold.command import add_command as add_new_plugin_command
    add_new_plugin_command(commands)

    demo = commands.add_parser("demo", help="train a small CNN on scikit-learn's digits, monitored")
    demo.add_argument("--framework", choices=tuple(TRAINERS), default="torch")
    demo.add_argument("--break", dest="breakage", choices=tuple(BROKEN),
                      help="train a deliberately broken variant: learning rate far too high (lr), "
                           "bad initialization (init) or dying ReLUs (dead)")
    demo.add_argument("--epochs", type=int, default=3)
    demo.add_argument("--console", type=_steps, metavar="N", default=0,
                      help="print a table of the latest metric values every N steps (0: off)")
    demo.add_argument("--run", help="run name (default: digits-<framework>-<time>)")
    demo.add_argument("--store", help="store directory (default: $IKKUNA_STORE or ./ikkuna-runs)")
    demo.set_defaults(handler=_demo)
    return parser


def _list(args: argparse.Namespace) -> int:
    from ikkuna.core.attach import DEFAULT_METRICS, supports
    from ikkuna.core.hookspecs import PLUGIN_API_VERSION
    from ikkuna.core.plugin_api import accepted_range

    plugins = get_plugin_manager()
    adapters = plugins.adapters()

    def metric_row(name: str, provided: Provided[type]) -> tuple[str, ...]:
        item = provided.item
        able = [framework for framework, a in sorted(adapters.items()) if supports(a.item, item)]
        return (name + (" *" if name in DEFAULT_METRICS else ""), provided.plugin, item.cost,
                ", ".join(able) or "none", f"needs {', '.join(item.needs)}. {describe(item)}")

    metrics = [metric_row(name, p) for name, p in sorted(plugins.metrics().items())]
    print(f"Plugin API {PLUGIN_API_VERSION} (plugins declaring {accepted_range()} load)")
    print()
    print("Metrics (* = in the default set; cost: cheap < moderate < expensive < probe):")
    header = ("name", "plugin", "cost", "adapters", "about")
    print(format_table(header, metrics, indent="  ") if metrics else "  (none)")
    print()
    sections = (
        ("Sinks", plugins.sinks(), describe),
        ("Adapters", adapters, lambda item: f"accepts {item.accepted}"),
    )
    for title, provided, explain in sections:
        print(f"{title}:")
        rows = [(name, p.plugin, explain(p.item)) for name, p in sorted(provided.items())]
        print(format_table(("name", "plugin", "about"), rows, indent="  ") if rows else "  (none)")
        print()
    for message in plugins.load_failures.values():
        print(f"warning: {message}")
    return 0


def _runs(args: argparse.Namespace) -> int:
    from ikkuna.sinks.reader import list_runs

    runs = list_runs(args.store)
    if not runs:
        print("no runs in the store yet")
        return 0
    rows = [
        (run.name, run.framework, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started)),
         "yes" if run.finished else "no", str(run.steps), str(run.records))
        for run in runs
    ]
    print(format_table(("run", "framework", "started", "finished", "steps", "records"), rows))
    return 0


def _show(args: argparse.Namespace) -> int:
    from ikkuna.sinks.reader import open_run

    with open_run(args.run, args.store) as run:
        latest = run.latest()
        problems = run.problems()
        print(f"run {run.name} ({run.framework}", end="")
        print(", " + ", ".join(f"{k} {v}" for k, v in run.versions.items()) + ")" if run.versions else ")")
    if not latest:
        print("no records")
        return 0
    per_layer = [v for v in latest if v.layer is not None]
    run_level = [v for v in latest if v.layer is None]
    if run_level:
        print(format_table(("metric", "step", "value"),
                     [(v.metric, str(v.step), format_value(v.value, v.bins)) for v in run_level]))
        print()
    if per_layer:
        metrics = sorted({v.metric for v in per_layer})
        cells = {(v.layer, v.param, v.metric): format_value(v.value, v.bins) for v in per_layer}
        keys = list(dict.fromkeys((v.layer, v.param) for v in sorted(per_layer, key=_layer_order)))
        rows = [
            (layer if param is None else f"{layer}.{param}", *(cells.get((layer, param, m), "") for m in metrics))
            for layer, param in keys
        ]
        print(f"last values (step {max(v.step for v in per_layer)}):")
        print(format_table(("layer", *metrics), rows))
    for problem in problems:
        print(f"problem: {problem['message']}")
    return 0


def _layer_order(value) -> tuple:
    return (value.layer or "", value.param or "")


def _doctor(args: argparse.Namespace) -> int:
    from ikkuna.doctor import diagnose
    from ikkuna.sinks.reader import open_run

    with open_run(args.run, args.store) as run:
        name = run.name
        findings = diagnose(run)
    if not findings:
        print(f"run {name}: no problems found")
        return 0
    counts = {}
    for finding in findings:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    summary = ", ".join(f"{n} {severity}{'s' if n > 1 else ''}" for severity, n in counts.items())
    print(f"run {name}: {len(findings)} finding{'s' if len(findings) > 1 else ''} ({summary}), "
          "most severe first")
    for finding in findings:
        print()
        print(finding.describe())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ikkuna.demos import DEMO_EXTRAS, run_demo

    try:
        run_demo(args.framework, epochs=args.epochs, run=args.run, store=args.store,
                 breakage=args.breakage, console_every=args.console)
    except ImportError as error:
        extra = DEMO_EXTRAS[args.framework]
        print(f"ikkuna demo: the {args.framework} demo cannot import {error.name or 'a module'} "
              f"({error}); install it with: pip install 'ikkuna[{extra},demo]' (or run "
              f"bash scripts/demo.sh --framework {args.framework})", file=sys.stderr)
        return 1
    return 0


def _steps(text: str) -> int:
    """An argparse type: a whole number of steps, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of steps >= 0, got {text!r}")
    return value


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
