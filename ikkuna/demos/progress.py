"""A progress bar with loss and accuracy: tqdm where installed, plain lines otherwise."""

from __future__ import annotations

import sys


class Progress:
    """One bar per epoch: ``update(loss=..., accuracy=...)`` after each step, then ``close()``."""

    def __init__(self, total: int, description: str) -> None:
        self._description = description
        try:
            from tqdm import tqdm
        except ImportError:
            self._bar = None
        else:
            self._bar = tqdm(total=total, desc=description, leave=True, dynamic_ncols=True)

    def update(self, **values: float) -> None:
        text = " ".join(f"{name}={value:.4f}" for name, value in values.items())
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.update(1)
        else:
            print(f"{self._description}: {text}", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
