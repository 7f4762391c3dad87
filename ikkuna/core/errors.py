"""Errors ikkuna raises for bad input, each naming what was given and what is accepted."""

from __future__ import annotations


class IkkunaError(Exception):
    """Base class of ikkuna's own errors."""


class UnsupportedModelError(IkkunaError, TypeError):
    """``attach`` got an object no adapter accepts."""


class UnknownMetricError(IkkunaError, ValueError):
    """A metric name that no plugin provides."""


class UnknownSinkError(IkkunaError, ValueError):
    """A sink name that no plugin provides."""


class PluginConflictError(IkkunaError):
    """Two plugins provide the same name."""


class RunNotFoundError(IkkunaError, LookupError):
    """A run name that is not in the store."""


class UnsupportedMetricError(IkkunaError, ValueError):
    """A metric that requires an adapter capability the model's adapter lacks."""


class IncompatiblePluginError(IkkunaError):
    """A plugin declares a plugin API version this ikkuna does not provide."""
