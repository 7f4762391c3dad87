"""The torch demo: a small CNN on digits, trained with SGD, monitored with default metrics."""

from __future__ import annotations

import os

import numpy as np

from ikkuna.core.attach import attach
from ikkuna.demos.digits import batches, load
from ikkuna.demos.progress import Progress
from ikkuna.demos.summary import print_summary

BATCH_SIZE = 64
LEARNING_RATE = 0.05


def build_model():
    from torch import nn

    class DigitsCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                nn.MaxPool2d(2),
            )
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10)
            )

        def forward(self, x):
            return self.classifier(self.features(x))

    return DigitsCNN()


def train(*, epochs: int = 3, run: str | None = None,
          store: str | os.PathLike[str] | None = None, seed: int = 0) -> str:
    import torch

    torch.manual_seed(seed)
    data = load(seed=seed)
    model = build_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=0.9)
    images = torch.from_numpy(data.train_images).unsqueeze(1)
    labels = torch.from_numpy(data.train_labels)
    rng = np.random.default_rng(seed)
    steps_per_epoch = -(-len(labels) // BATCH_SIZE)
    with attach(model, optimizer=optimizer, run=run or _run_name(), store=store) as monitor:
        for epoch in range(epochs):
            monitor.start_epoch(epoch)
            bar = Progress(batches(len(labels), BATCH_SIZE, rng), steps_per_epoch,
                           f"epoch {epoch + 1}/{epochs}")
            for index in bar:
                batch, target = images[index], labels[index]
                output = model(batch)
                loss = torch.nn.functional.cross_entropy(output, target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                accuracy = (output.argmax(1) == target).float().mean().item()
                monitor.log(loss=loss.item(), accuracy=accuracy, lr=optimizer.param_groups[0]["lr"])
                bar.show(loss=loss.item(), accuracy=accuracy)
            bar.close()
            monitor.finish_epoch()
    model.eval()
    with torch.no_grad():
        test_output = model(torch.from_numpy(data.test_images).unsqueeze(1))
        test_accuracy = (test_output.argmax(1).numpy() == data.test_labels).mean()
    print_summary(monitor, float(test_accuracy))
    return monitor.run




def _run_name() -> str:
    import time

    return f"digits-torch-{time.strftime('%Y%m%d-%H%M%S')}"
