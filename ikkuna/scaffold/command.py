"""The ``ikkuna new-plugin`` command."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from ikkuna.core.hookspecs import PLUGIN_API_VERSION


def add_command(commands: Any) -> None:
    """Add ``new-plugin`` to the ``ikkuna`` command's subcommands."""
    parser = commands.add_parser(
        "new-plugin", help="write a new plugin package (a metric, its tests, its entry point)")
    parser.add_argument("name", help="the plugin's name, e.g. grad-noise")
    parser.add_argument("--path", help="directory to create (default: ./ikkuna-<name>)")
    parser.set_defaults(handler=_new_plugin)


def _new_plugin(args: argparse.Namespace) -> int:
    from ikkuna.scaffold import new_plugin

    names, written = new_plugin(args.name, args.path)
    root = written[0].parent
    print(f"created {names.distribution} in {root} (ikkuna plugin API {PLUGIN_API_VERSION}):")
    for path in written:
        print(f"  {path.relative_to(root)}")
    steps = [
        (f"pip install -e {shlex.quote(str(root))}", "ikkuna finds the plugin through its entry point"),
        ("ikkuna list", f"shows {names.metric} from plugin {names.entry_point}"),
        (f"pytest {shlex.quote(str(root / 'tests'))}", "its tests, on every installed framework"),
    ]
    width = max(len(command) for command, _ in steps)
    print("next:")
    for command, why in steps:
        print(f"  {command.ljust(width)}  # {why}")
    return 0
