"""The digits data set as float32 numpy arrays, split once, the same for every framework."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Digits:
    """8x8 grey images scaled to [0, 1], shape (N, 8, 8), and integer labels 0..9."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def load(test_fraction: float = 0.2, seed: int = 0) -> Digits:
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError("the demo needs scikit-learn: pip install 'ikkuna[demo]'") from error
    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    labels = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    cut = int(len(labels) * (1 - test_fraction))
    train, test = order[:cut], order[cut:]
    return Digits(images[train], labels[train], images[test], labels[test])


def batches(count: int, batch_size: int, rng: np.random.Generator):
    """Shuffled index batches covering ``count`` samples once."""
    order = rng.permutation(count)
    for start in range(0, count, batch_size):
        yield order[start:start + batch_size]
