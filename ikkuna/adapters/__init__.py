"""Built-in framework adapters, registered as the internal plugin ``ikkuna.adapters``.

Each adapter lives in its own module and imports its framework lazily, on first use.
"""

from __future__ import annotations

from ikkuna.core.hookspecs import hookimpl


@hookimpl
def ikkuna_adapters() -> list[type]:
    from ikkuna.adapters.jax import JaxAdapter, JaxPytreeAdapter
    from ikkuna.adapters.keras import KerasAdapter
    from ikkuna.adapters.torch import TorchAdapter

    return [TorchAdapter, KerasAdapter, JaxAdapter, JaxPytreeAdapter]
