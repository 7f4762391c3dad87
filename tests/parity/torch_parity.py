"""Build and train the parity networks in PyTorch."""

from __future__ import annotations

from collections import OrderedDict
from types import ModuleType
from typing import Any

import ikkuna
from tests.parity.specs import LEARNING_RATE, Architecture


def build(torch: ModuleType, architecture: Architecture) -> Any:
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


def train(torch: ModuleType, architecture: Architecture, **attach_options: Any) -> ikkuna.Monitor:
    model = build(torch, architecture)
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
