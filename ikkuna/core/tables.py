"""Plain-text tables and numbers for terminals (``ikkuna show``, the console sink)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def format_value(value: float | None, bins: int | None = None) -> str:
    """A value in a few characters: 4 significant digits, ``[n bins]`` for a histogram.

    ``bins`` (a histogram's number of bins) wins over ``value``; None shows as an empty cell;
    zero and non-finite values show as Python prints them (``0.0``, ``nan``, ``inf``).
    """
    if bins is not None:
        return f"[{bins} bins]"
    if value is None:
        return ""
    if value == 0 or not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> str:
    """Left-aligned columns two spaces apart, a dashed rule under the header; no trailing blanks."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join(
        indent + "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip()
        for line in lines
    )
