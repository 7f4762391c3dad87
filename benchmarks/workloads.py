"""What is timed: the configurations of ikkuna, and one training run of a framework's loop."""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable
from typing import Any, Protocol

from ikkuna.testing.parity.specs import Architecture

#: Attach options per configuration (``None``: ikkuna is not attached); ``store=`` is added.
CONFIGURATIONS: dict[str, dict[str, Any] | None] = {
    "no ikkuna": None,
    "attached, no metrics": {"metrics": []},
    "default metrics, every step": {"metrics": "default"},
    "default metrics, every=10": {"metrics": "default", "every": 10},
    "all built-in metrics, every step": {"metrics": "full"},
}
BASELINE = "no ikkuna"
BATCH = 64
LEARNING_RATE = 0.01
MOMENTUM = 0.9
WARMUP_STEPS = 2  # untimed steps before the timed ones (tracing and compilation included)
#: The modules each framework's loop needs, and the module that implements it.
REQUIREMENTS = {"torch": ("torch",), "keras": ("tensorflow", "keras"), "jax": ("jax", "flax", "optax")}
LOOP_MODULES = {"torch": "benchmarks.torch_loop", "keras": "benchmarks.keras_loop",
                "jax": "benchmarks.jax_loop"}


class Run(Protocol):
    """One training run: build the model, attach ``options`` (unless None), train
    :data:`WARMUP_STEPS` untimed steps, then ``steps`` timed ones; returns their seconds."""

    def __call__(self, architecture: Architecture, options: dict[str, Any] | None,
                 steps: int) -> float: ...


def installed_frameworks() -> list[str]:
    """The frameworks whose modules are all importable, in the order of :data:`REQUIREMENTS`."""
    return [name for name, modules in REQUIREMENTS.items()
            if all(importlib.util.find_spec(module) is not None for module in modules)]


def loop_module(framework: str) -> Any:
    """The module with ``run`` and ``parameters`` for ``framework`` (imports the framework)."""
    return importlib.import_module(LOOP_MODULES[framework])


def time_steps(step: Callable[[], object], steps: int, finish: Callable[[], object] = lambda: None) -> float:
    """Seconds for ``steps`` calls of ``step`` and one of ``finish``, after the warm-up calls."""
    for _ in range(WARMUP_STEPS):
        step()
    finish()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    finish()
    return time.perf_counter() - start
