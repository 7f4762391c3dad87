"""The torch demo: a small CNN on digits, trained with SGD and momentum, monitored."""

from __future__ import annotations

from typing import Any

import numpy as np

from ikkuna.core.attach import attach
from ikkuna.core.monitor import Monitor
from ikkuna.demos.digits import load
from ikkuna.demos.epochs import run_epochs
from ikkuna.demos.variants import HEALTHY, HIDDEN_BIASED, MOMENTUM, Variant


def build_model(variant: Variant = HEALTHY) -> Any:
    """The demo CNN (layers named as in every framework's demo, see ``variants.LAYERS``)."""
    from collections import OrderedDict

    import torch
    from torch import nn

    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 8, 3, padding=1)), ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(8, 16, 3, padding=1)), ("norm", nn.BatchNorm2d(16)),
        ("relu2", nn.ReLU()), ("pool", nn.MaxPool2d(2)), ("flatten", nn.Flatten()),
        ("hidden", nn.Linear(16 * 4 * 4, 32)), ("relu3", nn.ReLU()), ("head", nn.Linear(32, 10)),
    ]))
    with torch.no_grad():
        for name, module in model.named_children():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.mul_(variant.weight_scale)
            if variant.hidden_bias is not None and name in HIDDEN_BIASED:
                module.bias.fill_(variant.hidden_bias)
    return model


def train(variant: Variant, *, epochs: int, seed: int = 0, **attach_options: Any) -> tuple[Monitor, float]:
    """Train with ikkuna attached; return the monitor and the held-out accuracy."""
    import torch

    torch.manual_seed(seed)
    data = load(seed=seed)
    model = build_model(variant)
    optimizer = torch.optim.SGD(model.parameters(), lr=variant.learning_rate, momentum=MOMENTUM)
    images = torch.from_numpy(data.train_images).unsqueeze(1)
    labels = torch.from_numpy(data.train_labels)

    def step(index: np.ndarray) -> tuple[float, float]:
        batch, target = images[index], labels[index]
        output = model(batch)
        loss = torch.nn.functional.cross_entropy(output, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item(), (output.argmax(1) == target).float().mean().item()

    with attach(model, optimizer=optimizer, **attach_options) as monitor:
        run_epochs(monitor, epochs, len(labels), np.random.default_rng(seed), step)
    model.eval()
    with torch.no_grad():
        test_output = model(torch.from_numpy(data.test_images).unsqueeze(1))
    return monitor, float((test_output.argmax(1).numpy() == data.test_labels).mean())
