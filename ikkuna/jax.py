"""JAX conveniences: :func:`record_step` for pure JAX training (params pytrees).

Flax NNX models need nothing from here: ``ikkuna.attach(model, optimizer=optimizer)`` does it.
Importing this module imports JAX; ``import ikkuna`` alone does not.
"""

from __future__ import annotations

from ikkuna.adapters.jax import record_step

__all__ = ["record_step"]
