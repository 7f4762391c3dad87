"""Demo trainings on scikit-learn's digits (shipped with scikit-learn, no download).

The demos are user code: each imports its framework itself, and only when it runs.
"""

from __future__ import annotations

import os


def run_demo(framework: str, *, epochs: int = 3, run: str | None = None,
             store: str | os.PathLike[str] | None = None) -> str:
    """Train the demo for ``framework`` with ikkuna attached; return the run's name."""
    if framework == "torch":
        from ikkuna.demos.torch_digits import train

        return train(epochs=epochs, run=run, store=store)
    raise ValueError(f"no demo for framework {framework!r}; available: torch")
