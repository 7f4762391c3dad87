"""``ikkuna new-plugin``: write the skeleton of a plugin package that installs, is discovered
by ``ikkuna list`` and whose tests pass as written."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ikkuna.core.hookspecs import PLUGIN_API_VERSION
from ikkuna.scaffold.names import PluginNames, plugin_names
from ikkuna.scaffold.templates import FILES


def new_plugin(name: str, directory: str | os.PathLike[str] | None = None) -> tuple[PluginNames, list[Path]]:
    """Write a plugin package for ``name`` into ``directory`` (default ``./ikkuna-<name>``).

    Returns the names used and the files written. Refuses a directory that exists and is not
    empty, so nothing is overwritten.
    """
    names = plugin_names(name)
    root = Path(directory) if directory is not None else Path(names.distribution)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"{root} already exists and is not an empty directory; "
                              "choose another with --path, nothing was written")
    fields = {
        "distribution": names.distribution,
        "module": names.module,
        "entry_point": names.entry_point,
        "metric": names.metric,
        "class_name": _class_name(names.slug),
        "api": PLUGIN_API_VERSION,
        "ikkuna_version": _ikkuna_version(),
    }
    existed = root.exists()
    written = []
    try:
        for relative, template in FILES.items():
            path = root / relative.format(**fields)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(template.format(**fields), encoding="utf-8")
            written.append(path)
    except BaseException:
        # leave nothing half-written: the directory as it was (absent, or empty)
        for child in ([root] if not existed else list(root.iterdir())):
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return names, written


def _class_name(slug: str) -> str:
    return "".join(part.capitalize() for part in slug.split("_")) + "GradientRms"


def _ikkuna_version() -> str:
    from ikkuna import __version__

    return __version__
