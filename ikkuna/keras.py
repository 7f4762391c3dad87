"""Keras conveniences: ``ikkuna.keras.Callback`` for ``model.fit``.

Importing this module imports Keras (and TensorFlow); ``import ikkuna`` alone does not.
"""

from __future__ import annotations

from ikkuna.adapters.keras import make_callback_class

Callback = make_callback_class()

__all__ = ["Callback"]
