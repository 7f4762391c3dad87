"""The adapter contract: what every framework adapter implements."""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from ikkuna.core.arrays import Array, Layout
from ikkuna.core.layers import LayerInfo

if TYPE_CHECKING:
    from ikkuna.core.monitor import Monitor
    from ikkuna.core.ranks import Distribution


class Adapter(ABC):
    """Translates one framework's native hooks into ikkuna events.

    The monitor builds the adapter with the model and optimizer, asks for :meth:`layers`, then
    calls :meth:`install` with the layers it selected and the kinds some metric needs; the
    adapter installs hooks for those kinds only and calls the monitor's step methods and
    ``emit``. :meth:`remove` takes every hook out again.
    """

    #: Framework name used in LayerInfo and records (``torch``, ``keras``, ``jax``).
    framework: ClassVar[str] = ""
    #: What ``accepts`` takes, in words, for error messages.
    accepted: ClassVar[str] = ""
    #: Optional abilities beyond the event vocabulary that metrics may require
    #: (:attr:`ikkuna.Metric.requires`), e.g. ``"learning_rate"``.
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, model: Any, optimizer: Any = None) -> None:
        self.model = model
        self.optimizer = optimizer

    @classmethod
    @abstractmethod
    def accepts(cls, model: Any) -> bool:
        """Whether ``model`` belongs to this framework; must not import the framework."""

    @abstractmethod
    def layers(self) -> list[LayerInfo]:
        """Every layer of the model, in model order."""

    @abstractmethod
    def install(self, monitor: Monitor, layers: list[LayerInfo], kinds: frozenset[str]) -> None:
        """Install hooks that produce ``kinds`` for ``layers`` (and step boundaries always)."""

    @abstractmethod
    def remove(self) -> None:
        """Remove every hook ``install`` added; the model and optimizer are as before."""

    def as_array(self, value: Any, layout: Layout) -> Array:
        """Wrap a value the user logged (a native tensor or anything numpy accepts)."""
        return Array.from_numpy(value, layout)

    def distribution(self) -> Distribution | None:
        """This process's rank in a distributed run, with the framework's own collective to
        gather one object from every rank; None when training runs in one process."""
        return None

    def versions(self) -> dict[str, str]:
        """Versions of the framework packages in use, for the run's record."""
        return {}

    # -- the probe (capabilities probe_activations, probe_gradients, hessian_vector_product) --
    # Adapters with these capabilities implement the matching methods; each gets the step's
    # ikkuna.ProbeSession (its ``probe`` and a ``cache`` for the step) and returns numpy.

    def run_probe(self, task: Callable[[], None]) -> None:
        """Run ``task`` (the step's probe) where framework computations are safe and the
        model holds the weights after the update; called at the end of an optimizer step.
        The default runs it at once (the step ended on the user's thread)."""
        task()

    def drain(self) -> None:
        """Wait until the values of steps already dispatched have reached the monitor (called
        by ``detach()`` while the monitor is still attached; compiled steps may run ahead)."""

    def finish_probes(self) -> None:
        """Wait for probe work :meth:`run_probe` deferred (called on detach)."""

    def probe_parameters(self, session: Any) -> list[Any]:
        """Every trainable parameter as :class:`ikkuna.ProbeParameter`, in a fixed order."""
        raise NotImplementedError(f"the {self.framework} adapter has no probe")

    def probe_activations(self, session: Any, layers: list[LayerInfo]) -> list[tuple[LayerInfo, Array]]:
        """Each of ``layers``' output on the probe inputs, in inference mode."""
        raise NotImplementedError(f"the {self.framework} adapter has no probe_activations")

    def probe_gradients(self, session: Any, groups: int) -> list[Any]:
        """Per parameter, the loss gradients of ``groups`` equal micro-batches ``(groups, *shape)``."""
        raise NotImplementedError(f"the {self.framework} adapter has no probe_gradients")

    def probe_hessian_vector_product(self, session: Any, vectors: Any) -> Any:
        """``(k, size)`` float64 products of the probe loss' Hessian with flat vectors."""
        raise NotImplementedError(f"the {self.framework} adapter has no hessian_vector_product")


_monitored: dict[int, weakref.ref[Any]] = {}


def claim(*objects: Any) -> None:
    """Mark objects an adapter patches; refuse those another monitor has patched already.

    For adapters that patch the objects themselves (Keras attributes, NNX classes), where two
    monitors would wrap each other's patches and undo them in the wrong order.
    """
    for obj in objects:
        ref = _monitored.get(id(obj))
        if ref is not None and ref() is obj:
            raise ValueError(
                f"this {type(obj).__qualname__} is already monitored by ikkuna; detach() the "
                "other monitor first (one monitor per model and optimizer)"
            )
    for obj in objects:
        _monitored[id(obj)] = weakref.ref(obj)


def release(*objects: Any) -> None:
    """Forget objects :func:`claim` marked (on detach)."""
    for obj in objects:
        _monitored.pop(id(obj), None)
