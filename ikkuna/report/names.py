"""File names for report files: safe on every file system, unique within one report."""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_NAME_LENGTH = 80

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
