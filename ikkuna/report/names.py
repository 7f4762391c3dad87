"""File names for report files and folders: safe on every file system, unique within one
report, and one report folder per run (or per comparison)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence

MAX_NAME_LENGTH = 80
#: What a comparison's folder starts with; a single run's folder never starts with it unhashed.
COMPARISON_PREFIX = "compare-"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# names Windows refuses whatever their extension
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
             *(f"LPT{i}" for i in range(1, 10))}


def safe_name(text: str, fallback: str = "unnamed") -> str:
    """``text`` with every run of characters other than letters, digits, ``.``, ``_`` and ``-``
    replaced by ``_``, without leading dots, cut to :data:`MAX_NAME_LENGTH`; ``fallback`` if
    nothing is left."""
    name = _UNSAFE.sub("_", text).lstrip(".")[:MAX_NAME_LENGTH].rstrip(". ")
    if not name.strip("_"):
        name = fallback
    if name.split(".")[0].upper() in _RESERVED:
        name = "_" + name
    return name


def unique_names(texts: Iterable[str], suffix: str = "") -> list[str]:
    """One safe file name per text, in order, that differ even where the file system ignores
    case: a repeat gets ``-2``, ``-3``, ... before ``suffix``."""
    taken: set[str] = set()
    names = []
    for text in texts:
        stem = safe_name(text)
        name, count = stem, 1
        while name.lower() in taken:
            count += 1
            name = f"{stem}-{count}"
        taken.add(name.lower())
        names.append(name + suffix)
    return names


def run_folder_name(run: str) -> str:
    """The report folder of one run: its name where that is safe as it is, else
    :func:`safe_name` plus ``-`` and 8 hex digits of the name's SHA-1, so that ``a b``, ``a_b``,
    ``a?b`` and long names alike but for their end each get their own folder.

    A name that starts with :data:`COMPARISON_PREFIX` is hashed too, so no run takes a
    comparison's folder.
    """
    name = safe_name(run)
    if name != run or name.lower().startswith(COMPARISON_PREFIX):
        name = f"{name}-{_short_hash(run)}"
    return name


def comparison_folder_name(runs: Sequence[str]) -> str:
    """The report folder of several runs compared: ``compare-<a>-vs-<b>``.

    Where a name is not safe as it is or holds ``-vs-`` itself (``a-vs-b`` with ``c``, or ``a``
    with ``b-vs-c``), or the joined names are long, the folder is cut and ends in ``-`` and
    8 hex digits of the SHA-1 of the exact names, in order.
    """
    joined = "-vs-".join(safe_name(run) for run in runs)
    exact = all(safe_name(run) == run and "-vs-" not in run.lower() for run in runs)
    if exact and len(joined) <= MAX_NAME_LENGTH:
        return COMPARISON_PREFIX + joined
    return f"{COMPARISON_PREFIX}{joined[:MAX_NAME_LENGTH].rstrip('. ')}-{_short_hash(*runs)}"


def _short_hash(*texts: str) -> str:
    """8 hex digits of the SHA-1 of ``texts`` (one text: of its UTF-8; several: of their JSON
    list), the same in every process."""
    data = texts[0] if len(texts) == 1 else json.dumps(list(texts))
    return hashlib.sha1(data.encode("utf-8", "surrogatepass")).hexdigest()[:8]
