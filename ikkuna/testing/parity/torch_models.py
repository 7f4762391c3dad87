"""The parity networks in PyTorch (imports torch on use)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

STYLES = ("loop",)

import ikkuna
from ikkuna.testing.parity.specs import LEARNING_RATE, Architecture


def build(architecture: Architecture) -> Any:
    """The network as an ``nn.Sequential`` with the architecture's weights."""
    import torch

    nn = torch.nn

    class GlobalAveragePool(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    modules = OrderedDict()
    for name, layer_type, shape in architecture.layers:
        if layer_type == "dense":
            modules[name] = nn.Linear(shape[1], shape[0])
        elif layer_type == "conv2d":
            modules[name] = nn.Conv2d(shape[1], shape[0], shape[2], padding=shape[2] // 2)
        elif layer_type == "relu":
            modules[name] = nn.ReLU()
        elif layer_type == "tanh":
            modules[name] = nn.Tanh()
        elif layer_type == "global_average_pool":
            modules[name] = GlobalAveragePool()
    model = nn.Sequential(modules)
    with torch.no_grad():
        for name, params in architecture.weights().items():
            for role, values in params.items():
                getattr(modules[name], role).copy_(torch.from_numpy(values))
    return model


def train(architecture: Architecture, style: str | None = None, **attach_options: Any) -> ikkuna.Monitor:
    """Train ``architecture`` for its batches with ``ikkuna.attach(model, **attach_options)``."""
    import torch

    model = build(architecture)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    with ikkuna.attach(model, optimizer=optimizer, **attach_options) as monitor:
        for inputs, labels in architecture.batches():
            inputs, labels = torch.from_numpy(inputs), torch.from_numpy(labels)
            loss = torch.nn.functional.cross_entropy(model(inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            monitor.log(loss=loss, labels=labels)
    return monitor
