"""The torch loop: forward, cross-entropy, ``zero_grad``, ``backward``, ``step``."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import ikkuna
from benchmarks.architectures import classes
from benchmarks.workloads import BATCH, LEARNING_RATE, MOMENTUM, time_steps
from ikkuna.testing.parity.specs import Architecture


def build(architecture: Architecture) -> Any:
    """An ``nn.Sequential`` whose modules carry the architecture's layer names."""
    from torch import nn

    modules: OrderedDict[str, Any] = OrderedDict()
    for name, kind, shape in architecture.layers:
        if kind == "dense":
            modules[name] = nn.Linear(shape[1], shape[0])
        elif kind == "conv2d":
            modules[name] = nn.Conv2d(shape[1], shape[0], shape[2], padding=shape[2] // 2)
        elif kind == "max_pool":
            modules[name] = nn.MaxPool2d(2)
        elif kind in ("relu", "tanh", "flatten"):
            modules[name] = {"relu": nn.ReLU, "tanh": nn.Tanh, "flatten": nn.Flatten}[kind]()
        else:
            raise ValueError(f"the torch loop has no layer type {kind!r}")
    return nn.Sequential(modules)


def parameters(architecture: Architecture) -> int:
    return sum(parameter.numel() for parameter in build(architecture).parameters())


def training_step(architecture: Architecture) -> tuple[Any, Any, Any, Callable[[], None]]:
    """A new model of ``architecture``, its SGD optimizer, a fixed batch's inputs and one
    training step on that batch."""
    import torch

    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn((BATCH, *architecture.input_shape), generator=generator)
    labels = torch.randint(0, classes(architecture), (BATCH,), generator=generator)
    torch.manual_seed(0)
    model = build(architecture)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return model, optimizer, inputs, step


def run(architecture: Architecture, options: dict[str, Any] | None, steps: int) -> float:
    model, optimizer, _, step = training_step(architecture)
    monitor = None if options is None else ikkuna.attach(model, optimizer=optimizer, **options)
    try:
        return time_steps(step, steps)
    finally:
        if monitor is not None:
            monitor.detach()
