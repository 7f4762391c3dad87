"""Small torch models, batches and a recording metric for the torch adapter tests.

Nothing here imports torch: every builder takes the ``torch`` module from the test's fixture,
so the test modules collect (and skip) where torch is not installed.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

CLASSES = 3
BATCH = 4
IMAGE = (3, 5, 5)  # channels, height, width
SEQUENCE = 3
VOCABULARY = 10


# -- models ------------------------------------------------------------------------------------


def small_cnn(torch: ModuleType, *, inplace: bool = False) -> Any:
    """Conv2d -> BatchNorm2d -> ReLU under ``encoder``, then Flatten and a Linear ``head``.

    Layers: ``encoder.0`` (conv2d), ``encoder.1`` (norm), ``encoder.2`` (other), ``flatten``
    (other), ``head`` (dense). Input: ``image_batch``.
    """
    nn = torch.nn

    class SmallCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(
                nn.Conv2d(IMAGE[0], 4, kernel_size=3, padding=1),
                nn.BatchNorm2d(4),
                nn.ReLU(inplace=inplace),
            )
            self.flatten = nn.Flatten()
            self.head = nn.Linear(4 * IMAGE[1] * IMAGE[2], CLASSES)

        def forward(self, images: Any) -> Any:
            return self.head(self.flatten(self.encoder(images)))

    return SmallCNN()


def deeper_cnn(torch: ModuleType) -> Any:
    """Two conv blocks with BatchNorm and in-place ReLUs, then a Linear classifier."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(IMAGE[0], 4, kernel_size=3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.Conv2d(4, 4, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.Flatten(),
        nn.Linear(4 * IMAGE[1] * IMAGE[2], CLASSES),
    )


def embedding_model(torch: ModuleType) -> Any:
    """Embedding ``embed`` -> LayerNorm ``norm`` -> Flatten -> Linear ``head``.

    Input: ``token_batch`` (integer ids of shape (batch, SEQUENCE)).
    """
    nn = torch.nn

    class EmbeddingModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(VOCABULARY, 4)
            self.norm = nn.LayerNorm(4)
            self.flatten = nn.Flatten()
            self.head = nn.Linear(4 * SEQUENCE, CLASSES)

        def forward(self, tokens: Any) -> Any:
            return self.head(self.flatten(self.norm(self.embed(tokens))))

    return EmbeddingModel()


def mlp(torch: ModuleType, features: int = 4) -> Any:
    """``Sequential(Linear, ReLU, Linear)``: layers ``0``, ``1`` and ``2``."""
    nn = torch.nn
    return nn.Sequential(nn.Linear(features, 8), nn.ReLU(), nn.Linear(8, CLASSES))


def shared_linear_model(torch: ModuleType) -> Any:
    """One Linear ``shared`` applied to two inputs in every forward pass."""
    nn = torch.nn

    class SharedLinear(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = nn.Linear(4, CLASSES)

        def forward(self, first: Any, second: Any) -> Any:
            return self.shared(first) + self.shared(second)

    return SharedLinear()


# -- batches -----------------------------------------------------------------------------------


def image_batch(torch: ModuleType, seed: int, size: int = BATCH) -> tuple[Any, Any]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(size, *IMAGE, generator=generator)
    labels = torch.randint(0, CLASSES, (size,), generator=generator)
    return images, labels


def token_batch(torch: ModuleType, seed: int, size: int = BATCH) -> tuple[Any, Any]:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, VOCABULARY, (size, SEQUENCE), generator=generator)
    labels = torch.randint(0, CLASSES, (size,), generator=generator)
    return tokens, labels


def vector_batch(torch: ModuleType, seed: int, size: int = BATCH, features: int = 4):
    generator = torch.Generator().manual_seed(seed)
    vectors = torch.randn(size, features, generator=generator)
    labels = torch.randint(0, CLASSES, (size,), generator=generator)
    return vectors, labels


def train_step(torch: ModuleType, model: Any, optimizer: Any, inputs: Any, labels: Any,
               monitor: Any = None) -> Any:
    """One ordinary step; logs labels and loss to ``monitor`` after the optimizer step."""
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(inputs), labels)
    loss.backward()
    optimizer.step()
    if monitor is not None:
        monitor.log(labels=labels, loss=loss)
    return loss


# -- hooks -------------------------------------------------------------------------------------


def module_hook_counts(model: Any) -> dict[str, int]:
    """How many hooks of each sort are installed on ``model`` and its submodules, in total."""
    sorts = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return {
        sort: sum(len(getattr(module, sort)) for module in model.modules()) for sort in sorts
    }
