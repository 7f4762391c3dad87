"""A few real training steps of a small torch MLP through ``ikkuna.attach``, for sink tests.

Nothing here imports torch: the test passes the ``torch`` module from its fixture.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import ikkuna

#: Scalars of every kind (per parameter, per layer, run-level) and a histogram metric.
METRICS = ["weight_norm", "gradient_norm", "update_to_weight_ratio", "activation_mean",
           "global_gradient_norm", "weight_histogram"]


def train_mlp(torch: ModuleType, steps: int = 4, **attach: Any) -> ikkuna.Monitor:
    """Train ``Linear -> ReLU -> Linear`` for ``steps`` steps, logging loss and accuracy;
    returns the detached monitor. ``attach`` goes to :func:`ikkuna.attach`."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs, labels = torch.randn(16, 4), torch.randint(0, 3, (16,))
    attach.setdefault("metrics", METRICS)
    with ikkuna.attach(model, optimizer=optimizer, **attach) as monitor:
        for _ in range(steps):
            optimizer.zero_grad()
            outputs = model(inputs)
            loss = torch.nn.functional.cross_entropy(outputs, labels)
            loss.backward()
            optimizer.step()
            accuracy = (outputs.argmax(1) == labels).float().mean().item()
            monitor.log(loss=loss.item(), accuracy=accuracy)
    return monitor
