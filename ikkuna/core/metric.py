"""The metric plugin contract: what a metric declares and what it receives."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np

from ikkuna.core import kinds as K
from ikkuna.core.arrays import Array
from ikkuna.core.events import Event, RecordValue
from ikkuna.core.layers import LayerInfo
from ikkuna.core.schedule import LayerSelection, ScheduleLike
from ikkuna.core.statistics import MOMENTS, STATISTICS, Moments

#: The cost classes a metric may declare, cheapest first.
COST_CLASSES = ("cheap", "moderate", "expensive", "probe")


class EventGroup(Mapping[str, np.ndarray]):
    """The events one metric call sees: one per needed kind, for one (layer, param, step).

    ``group["weights"]`` is the read-only numpy array of that kind; ``group.array(kind)`` is the
    :class:`Array` with its layout helpers (``as_matrix()``, ``as_channels_last()``);
    ``group.value("loss")`` is a scalar kind's value.
    """

    def __init__(
        self,
        events: Mapping[str, Event],
        *,
        step: int,
        epoch: int,
        layer: LayerInfo | None,
        param: str | None,
    ) -> None:
        self._events = dict(events)
        self.step = step
        self.epoch = epoch
        self.layer = layer
        self.param = param

    def __getitem__(self, kind: str) -> np.ndarray:
        return self.array(kind).numpy()

    def __iter__(self) -> Iterator[str]:
        return iter(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def event(self, kind: str) -> Event:
        try:
            return self._events[kind]
        except KeyError:
            raise KeyError(f"{kind!r} is not among this group's kinds {sorted(self._events)}") from None

    def array(self, kind: str) -> Array:
        array = self.event(kind).array
        if array is None:
            raise ValueError(f"event {kind!r} carries a value, not an array; use group.value()")
        return array

    @property
    def probe(self) -> Any:
        """The step's :class:`ikkuna.ProbeSession`, for metrics that need the ``probe`` kind."""
        session = self.event(K.PROBE).probe
        if session is None:
            raise ValueError("the 'probe' event of this group carries no probe session")
        return session

    def statistic(self, kind: str, name: str) -> Any:
        """A statistic of a kind's values (see :mod:`ikkuna.core.statistics`)."""
        return self.array(kind).statistic(name)

    def moments(self, kind: str) -> Moments:
        """Count, sum, sums of squares and zero count of a kind's values, in float64."""
        return self.array(kind).statistic(MOMENTS)

    def value(self, kind: str) -> float:
        event = self.event(kind)
        if event.value is not None:
            return event.value
        return float(np.asarray(self[kind]).reshape(-1)[0])


class Metric:
    """Base class of metric plugins.

    Subclasses set ``name`` (unique) and ``needs`` (event kinds), and implement
    :meth:`compute`, which is called once per (layer, param, step) when every needed kind has
    arrived. It returns a float, a dict of floats (stored as ``name.key``), a 1-d numpy array,
    or a :class:`~ikkuna.Histogram`; ``None`` records nothing. ``layers`` and ``every`` narrow
    where and when the metric runs, on top of the monitor's own selection. A metric must not
    import a framework: it sees numpy arrays only.
    """

    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    #: What one call costs, shown by ``ikkuna list``: ``"cheap"`` (a pass over the values),
    #: ``"moderate"`` (sorting, binning, state per layer), ``"expensive"`` (a decomposition
    #: such as an SVD) or ``"probe"`` (extra forward/backward passes on a probe batch).
    cost: ClassVar[str] = "cheap"
    #: Adapter capabilities this metric needs beyond the event kinds (see
    #: :attr:`ikkuna.Adapter.capabilities`); an adapter without them cannot run it.
    requires: ClassVar[frozenset[str]] = frozenset()
    #: Set to a statistic's name (``"moments"``, ``"sum_squares"``, ``"fired_units"``; see
    #: :data:`ikkuna.core.statistics.STATISTICS`) if :meth:`compute` reads only that statistic
    #: of its kinds (``group.moments(kind)``, ``group.statistic(kind, name)``), never the
    #: values: then no copy of the tensors is made for this metric, which makes it far
    #: cheaper. ``None`` (the default): the metric reads values.
    statistic: ClassVar[str | None] = None

    def __init__(self, *, layers: LayerSelection = None, every: ScheduleLike = None) -> None:
        self.layers = layers
        self.every = every

    def compute(self, group: EventGroup) -> RecordValue | Mapping[str, float] | None:
        raise NotImplementedError(f"metric {self.name!r} does not implement compute()")

    def applies_to(self, layer: LayerInfo) -> bool:
        """Whether this metric measures anything on ``layer`` (the default: every layer).

        A metric that records nothing for some layers (saturation on a ReLU layer) says so
        here, and its kinds are then not even collected for those layers.
        """
        return True

    def finish_step(self, step: int) -> RecordValue | Mapping[str, float] | None:
        """Called once at the end of every step this metric is scheduled on, after all its
        :meth:`compute` calls of the step; a result is recorded for the whole run (no layer, no param).

        Metrics that aggregate over layers (a global norm) accumulate in ``compute`` (returning
        None there) and report here. The default records nothing.
        """
        return None

    @classmethod
    def scope(cls) -> str:
        """``"layer"``, ``"parameter"`` or ``"run"``: what one call of this metric is about."""
        return K.scope_of(cls.needs[0])

    @classmethod
    def validate(cls) -> None:
        """Raise a clear error if the class breaks the contract (called at registration)."""
        if not isinstance(cls.name, str) or not cls.name:
            raise TypeError(f"metric class {cls.__qualname__} must set a non-empty str `name`")
        needs = cls.needs
        if isinstance(needs, str) or not isinstance(needs, tuple) or not needs:
            raise TypeError(
                f"metric {cls.name!r}: `needs` must be a non-empty tuple of event kinds, "
                f"got {needs!r}"
            )
        unknown = [k for k in needs if k not in K.MEASURABLE_KINDS]
        if unknown:
            raise ValueError(
                f"metric {cls.name!r} needs unknown kinds {unknown}; "
                f"known: {', '.join(sorted(K.MEASURABLE_KINDS))}"
            )
        if cls.cost not in COST_CLASSES:
            raise ValueError(
                f"metric {cls.name!r}: cost {cls.cost!r} is not one of {', '.join(COST_CLASSES)}"
            )
        if cls.statistic is not None and cls.statistic not in STATISTICS:
            raise ValueError(
                f"metric {cls.name!r}: statistic {cls.statistic!r} is not one of "
                f"{', '.join(sorted(STATISTICS))} (or None to read values)"
            )
        if not isinstance(cls.requires, frozenset):
            raise TypeError(f"metric {cls.name!r}: `requires` must be a frozenset of capability names")
        scopes = {K.scope_of(k) for k in needs}
        if len(scopes) > 1:
            raise ValueError(
                f"metric {cls.name!r} mixes kinds of different scopes {sorted(scopes)} in "
                f"needs={needs}; a metric's kinds must all be per layer, per parameter or per run"
            )


def describe(metric: Any) -> str:
    """A metric's one-line description (its ``description`` or the docstring's first line)."""
    text = getattr(metric, "description", "") or (metric.__doc__ or "")
    return text.strip().splitlines()[0] if text.strip() else ""
