"""What the optimizer was set to on each step."""

from __future__ import annotations

from ikkuna.core.metric import EventGroup, Metric


class LearningRate(Metric):
    """The optimizer's learning rate of each step (schedules evaluated at that step).

    Needs an adapter with the ``learning_rate`` capability. torch: the first parameter
    group's ``lr``; Keras: ``optimizer.learning_rate``; Flax NNX: ``learning_rate`` of an optax
    transformation wrapped in ``optax.inject_hyperparams``.
    """

    name = "learning_rate"
    needs = ("learning_rate",)
    requires = frozenset({"learning_rate"})

    def compute(self, group: EventGroup) -> float:
        return group.value("learning_rate")
