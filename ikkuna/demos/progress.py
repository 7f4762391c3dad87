"""A progress bar with loss and accuracy: tqdm where installed, plain lines otherwise."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class Progress:
    def __init__(self, items: Iterable[T], total: int, description: str) -> None:
        self._items, self._total, self._description = items, total, description
        try:
            from tqdm import tqdm
        except ImportError:
            self._bar = None
        else:
            self._bar = tqdm(items, total=total, desc=description, leave=True, dynamic_ncols=True)

    def __iter__(self) -> Iterator[T]:
        return iter(self._bar if self._bar is not None else self._items)

    def show(self, **values: float) -> None:
        text = " ".join(f"{name}={value:.4f}" for name, value in values.items())
        if self._bar is not None:
            self._bar.set_postfix_str(text)
        else:
            print(f"{self._description}: {text}", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
