"""Healthy and deliberately broken torch trainings on scikit-learn's digits, for the doctor.

Nothing here imports torch at import time: every function takes the ``torch`` module from the
test's fixture. Each case returns what ``train`` needs: a model, the optimizer's parameters
and settings. Data: digits as 64 features (MLPs) or 1x8x8 images (CNN).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

import ikkuna
from ikkuna.demos.digits import load

BATCH = 32
HIDDEN = 32


@dataclass
class Case:
    """A training: the model, which parameters the optimizer gets, its settings."""

    model: Any
    lr: float = 0.05
    momentum: float = 0.9
    steps: int = 150
    params: Callable[[Any], Any] | None = None  # model -> parameters (default: all)
    images: bool = False
    random_labels: bool = False
    attach: dict[str, Any] = field(default_factory=dict)


def data(images: bool, seed: int = 0):
    digits = load(seed=seed)
    inputs = digits.train_images
    inputs = inputs[:, None] if images else inputs.reshape(len(inputs), -1)
    return inputs.astype(np.float32), digits.train_labels


def train(torch: ModuleType, case: Case, *, run: str = "case", seed: int = 0,
          **attach: Any) -> ikkuna.Monitor:
    """Train ``case`` for ``case.steps`` steps with ikkuna attached (default metrics unless
    ``attach`` says otherwise); logs the loss after each step. Returns the detached monitor."""
    inputs, labels = data(case.images, seed)
    inputs, labels = torch.from_numpy(inputs), torch.from_numpy(labels)
    rng = np.random.default_rng(seed)
    model = case.model
    params = case.params(model) if case.params else model.parameters()
    optimizer = torch.optim.SGD(params, lr=case.lr, momentum=case.momentum)
    options = {"optimizer": optimizer, "run": run, **case.attach, **attach}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only fight over the shared cores
    try:
        with ikkuna.attach(model, **options) as monitor:
            _loop(torch, case, model, optimizer, monitor, inputs, labels, rng)
    finally:
        torch.set_num_threads(threads)
    return monitor


def _loop(torch: ModuleType, case: Case, model: Any, optimizer: Any, monitor: ikkuna.Monitor,
          inputs: Any, labels: Any, rng: np.random.Generator) -> None:
    for _ in range(case.steps):
        index = torch.from_numpy(rng.choice(len(labels), BATCH, replace=False))
        target = labels[index]
        if case.random_labels:
            target = torch.from_numpy(rng.integers(0, 10, BATCH))
        loss = torch.nn.functional.cross_entropy(model(inputs[index]), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        monitor.log(loss=loss.item())


# -- models ------------------------------------------------------------------------------------


def mlp(torch: ModuleType, depth: int = 2, activation: str = "ReLU", width: int = HIDDEN) -> Any:
    """Linear(64, width) + activation, ``depth - 1`` times Linear(width, width) + activation,
    then Linear(width, 10): layers ``0``, ``1``, ... in a Sequential."""
    nn = torch.nn
    layers: list[Any] = []
    features = 64
    for _ in range(depth):
        layers += [nn.Linear(features, width), getattr(nn, activation)()]
        features = width
    return nn.Sequential(*layers, nn.Linear(features, 10))


def cnn(torch: ModuleType) -> Any:
    """The demo's CNN (conv, ReLU, conv, BatchNorm, ReLU, pool, then an MLP head)."""
    from ikkuna.demos.torch_digits import build_model

    return build_model()


def scale_weights(torch: ModuleType, model: Any, std: float) -> Any:
    """Every Linear's weight drawn from N(0, std^2) (not scaled by fan-in), biases zero."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, std)
                module.bias.zero_()
    return model


def nan_from(torch: ModuleType, step: int) -> Any:
    """An MLP whose layer ``2`` returns ``x / 0`` from training step ``step`` on:
    Sequential(Linear ``0``, ReLU ``1``, Breaks ``2``, Linear ``3``)."""
    nn = torch.nn

    class Breaks(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, x: Any) -> Any:
            if self.training:
                self.calls += 1
            return x / 0.0 if self.calls > step else x

    return nn.Sequential(nn.Linear(64, HIDDEN), nn.ReLU(), Breaks(), nn.Linear(HIDDEN, 10))


# -- the cases -----------------------------------------------------------------------------------


def healthy_mlp(torch: ModuleType) -> Case:
    return Case(mlp(torch), lr=0.05, steps=200)


def healthy_cnn(torch: ModuleType) -> Case:
    return Case(cnn(torch), lr=0.05, steps=200, images=True)


def learning_rate_too_high(torch: ModuleType) -> Case:
    return Case(mlp(torch), lr=1.0, momentum=0.0, steps=100)


def learning_rate_too_low(torch: ModuleType) -> Case:
    return Case(mlp(torch), lr=1e-6, momentum=0.0, steps=100)


def vanishing_gradients(torch: ModuleType) -> Case:
    """Eight Sigmoid layers with a tiny initialization."""
    return Case(scale_weights(torch, mlp(torch, depth=8, activation="Sigmoid"), 0.05), steps=100)


def exploding_gradients(torch: ModuleType) -> Case:
    """Six ReLU layers with unit-variance weights (not scaled by fan-in)."""
    return Case(scale_weights(torch, mlp(torch, depth=6), 1.0), lr=1e-6, momentum=0.0, steps=60)


def dead_units(torch: ModuleType) -> Case:
    """Layer ``0``'s bias is -100: the ReLU ``1`` after it never fires (nor, for the most part,
    ReLU ``3``, which then sees only Linear ``2``'s bias)."""
    model = mlp(torch, depth=2)
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
    return Case(model, steps=100)


def saturated_activations(torch: ModuleType) -> Case:
    """Tanh after a Linear with weights of std 5: layer ``1`` sits at +-1."""
    model = mlp(torch, depth=2, activation="Tanh")
    with torch.no_grad():
        model[0].weight.normal_(0.0, 5.0)
    return Case(model, steps=100)


def nan_or_inf(torch: ModuleType) -> Case:
    return Case(nan_from(torch, 3), steps=10)


def loss_diverging(torch: ModuleType) -> Case:
    """Tanh layers (no dead ReLUs to stop it) with a learning rate of 5: the logits blow up."""
    return Case(mlp(torch, activation="Tanh"), lr=5.0, momentum=0.9, steps=100)


def loss_flat(torch: ModuleType) -> Case:
    """Labels drawn at random, independently of the inputs: nothing to learn."""
    return Case(mlp(torch), lr=0.01, momentum=0.0, steps=200, random_labels=True)


def weights_not_updating(torch: ModuleType) -> Case:
    """Layer ``0`` is left out of the optimizer (but still gets gradients)."""
    return Case(mlp(torch), steps=100, params=lambda model: list(model[2:].parameters()))


def activation_scale_with_depth(torch: ModuleType) -> Case:
    """Eight ReLU layers with weights of std 1 (He would be about 0.25): the scale grows ~4x
    per layer."""
    return Case(scale_weights(torch, mlp(torch, depth=8), 1.0), lr=1e-7, momentum=0.0, steps=60)


def diagnosed(torch: ModuleType, name: str, **attach: Any) -> tuple[list, ikkuna.Monitor]:
    """Train the case called ``name`` with the live doctor warning after every step; return
    the stored run's findings and the monitor (``monitor.doctor.detected_at`` holds the step
    after which each finding was first warned). Trained once per process and remembered."""
    import warnings

    key = (name, tuple(sorted((k, repr(v)) for k, v in attach.items())))
    if key in _DIAGNOSED:
        return _DIAGNOSED[key]
    torch.manual_seed(0)
    case = globals()[name](torch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ikkuna.TrainingWarning)
        monitor = train(torch, case, run=name, doctor="warn", doctor_every=1, **attach)
    _DIAGNOSED[key] = (ikkuna.diagnose(name), monitor)
    return _DIAGNOSED[key]


_DIAGNOSED: dict[tuple, tuple[list, ikkuna.Monitor]] = {}
#: Each broken case, the rule that must name it and the layers it must name (None: any).
BROKEN = {
    "learning_rate_too_high": ("learning_rate_too_high", None),
    "learning_rate_too_low": ("learning_rate_too_low", ("0", "2", "4")),
    "vanishing_gradients": ("vanishing_gradients", ("0", "2", "4", "6", "8", "10")),
    "exploding_gradients": ("exploding_gradients", None),
    # ReLU 3 gets only Linear 2's bias (its input is all zero): the units of negative bias die
    "dead_units": ("dead_units", ("1", "3")),
    "saturated_activations": ("saturated_activations", ("1",)),
    "nan_or_inf": ("nan_or_inf", ("2",)),
    "loss_diverging": ("loss_diverging", ()),
    "loss_flat": ("loss_flat", ()),
    "weights_not_updating": ("weights_not_updating", ("0",)),
    "activation_scale_with_depth": ("activation_scale_with_depth", ("0", "16")),
}
HEALTHY = ("healthy_mlp", "healthy_cnn")
