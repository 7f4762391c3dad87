"""Install local distributions into a ``pip --target`` folder and run Python against it.

The test processes see the installed copies only (``PYTHONPATH=<target>``, run from a folder
outside the repository), so a test proves what a user who pip-installs the packages gets:
entry points from the installed metadata, modules from the target, scripts in ``<target>/bin``.
Frameworks and other dependencies come from the running interpreter's environment, so nothing
is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

#: What is not copied from a project folder before it is built: what a checkout or a build
#: leaves (version control, caches, virtual environments, stores, earlier builds).
IGNORED = shutil.ignore_patterns(".*", "__pycache__", "build", "dist", "*.egg-info", "ikkuna-runs")


def install(target: Path, *folders: Path, timeout: float = 300) -> None:
    """pip-install the projects in ``folders`` (each with a ``pyproject.toml``) into ``target``.

    Without dependencies, and without the index or build isolation when the interpreter has
    setuptools (the build backend of ikkuna and of the plugins it makes). Each folder is built
    from a scratch copy, so a build neither writes into the source tree nor packs stale
    ``build/`` files from it. Raises ``AssertionError`` with pip's output if pip fails.

    Install everything a test needs in one call: like ``pip install --target``, a later call
    into the same ``target`` leaves folders already there (``bin/``, an earlier package) as
    they are.
    """
    if not folders:
        raise ValueError("install() needs at least one project folder")
    for folder in folders:
        if not (Path(folder) / "pyproject.toml").is_file():
            raise ValueError(f"{folder} is not a project folder: it has no pyproject.toml")
    target = Path(target).resolve()
    offline = importlib.util.find_spec("setuptools") is not None
    with tempfile.TemporaryDirectory(prefix="ikkuna-install-") as scratch:
        copies = [shutil.copytree(folder, Path(scratch) / f"{index}-{Path(folder).name}",
                                  ignore=IGNORED)
                  for index, folder in enumerate(folders)]
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                   "--disable-pip-version-check", "--no-compile", "--target", str(target),
                   *(["--no-build-isolation", "--no-index"] if offline else []), *map(str, copies)]
        result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout,
                                env=_environment(None))
    if result.returncode != 0:
        raise AssertionError(f"pip install into {target} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")


def run_python(target: Path, code: str, cwd: Path, *, env: Mapping[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` in ``cwd`` with ``target`` as the only ``PYTHONPATH`` entry."""
    return run_command(target, [sys.executable, "-c", code], cwd, env=env, timeout=timeout)


def run_module(target: Path, module: str, args: Sequence[str], cwd: Path, *,
               env: Mapping[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module *args`` in ``cwd`` against ``target``."""
    return run_command(target, [sys.executable, "-m", module, *args], cwd, env=env,
                       timeout=timeout)


def script(target: Path, name: str) -> Path:
    """The console script ``name`` that pip installed into ``<target>/bin``."""
    path = Path(target).resolve() / "bin" / name
    if not path.is_file():
        found = sorted(p.name for p in (Path(target) / "bin").glob("*"))
        raise FileNotFoundError(f"no script {name!r} in {path.parent}; it holds {found}")
    return path


def run_command(target: Path, command: Sequence[str], cwd: Path, *,
                env: Mapping[str, str] | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``cwd`` with ``PYTHONPATH=<target>`` (and ``env`` on top of the
    current environment); output is captured as text, the return code is not checked."""
    environment = _environment(env)
    environment["PYTHONPATH"] = str(Path(target).resolve())
    return subprocess.run(list(command), check=False, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=environment)


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The current environment without ``PYTHONPATH`` (so the repository is not on the path)."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment.update(extra or {})
    return environment
