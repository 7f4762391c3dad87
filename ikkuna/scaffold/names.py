"""The names of a new plugin package, derived from the one name its author gives."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_][A-Za-z0-9]+)*$")


@dataclass(frozen=True)
class PluginNames:
    """``grad-noise`` -> distribution ``ikkuna-grad-noise``, module ``ikkuna_grad_noise``,
    entry point ``grad_noise``, metric ``grad_noise_gradient_rms``."""

    slug: str

    @property
    def distribution(self) -> str:
        return "ikkuna-" + self.slug.replace("_", "-")

    @property
    def module(self) -> str:
        return "ikkuna_" + self.slug

    @property
    def entry_point(self) -> str:
        return self.slug

    @property
    def metric(self) -> str:
        return f"{self.slug}_gradient_rms"


def plugin_names(name: str) -> PluginNames:
    """Names for the plugin ``name`` (letters, digits, ``-`` or ``_``; a leading ``ikkuna-``
    is dropped). A name that cannot make a Python package is a ValueError saying so."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"plugin name {name!r} is not accepted: use letters, digits and single '-' or '_' "
            "between them, starting with a letter (for example: grad-noise)"
        )
    slug = re.sub(r"^ikkuna[-_]", "", name.lower()).replace("-", "_")
    if slug == "ikkuna" or not slug[0].isalpha():
        raise ValueError(
            f"plugin name {name!r} is not accepted: after 'ikkuna-' it must still start with a "
            "letter and say what the plugin measures (for example: grad-noise)"
        )
    return PluginNames(slug)
