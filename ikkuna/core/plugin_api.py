"""Whether a plugin was written for the plugin API this ikkuna provides."""

from __future__ import annotations

import re
from typing import Any

from ikkuna.core.hookspecs import PLUGIN_API_ATTRIBUTE, PLUGIN_API_VERSION

_VERSION = re.compile(r"^(\d+)\.(\d+)$")


def parse_api_version(text: str) -> tuple[int, int]:
    """``"1.0"`` -> ``(1, 0)``; anything else is a ValueError naming the accepted form."""
    found = _VERSION.match(text) if isinstance(text, str) else None
    if found is None:
        raise ValueError(f"a plugin API version is a string 'MAJOR.MINOR' such as "
                         f"{PLUGIN_API_VERSION!r}, got {text!r}")
    return int(found.group(1)), int(found.group(2))


def accepted_range() -> str:
    """The versions this ikkuna loads, in words (``"1.0"``, ``"1.0 to 1.3"``)."""
    major, minor = parse_api_version(PLUGIN_API_VERSION)
    return f"{major}.0" if minor == 0 else f"{major}.0 to {major}.{minor}"


def api_refusal(plugin: Any, name: str, origin: str = "") -> str | None:
    """Why ``plugin`` must not load (a message naming what it declares and what is
    accepted), or None if it may: it declares no version, or a compatible one."""
    declared = getattr(plugin, PLUGIN_API_ATTRIBUTE, None)
    if declared is None:
        return None
    where = f"plugin {name!r}{f' ({origin})' if origin else ''}"
    try:
        major, minor = parse_api_version(declared)
    except ValueError as error:
        return f"ikkuna: {where} is not loaded: its {PLUGIN_API_ATTRIBUTE} is invalid: {error}"
    ours_major, ours_minor = parse_api_version(PLUGIN_API_VERSION)
    if major == ours_major and minor <= ours_minor:
        return None
    advice = ("upgrade ikkuna" if (major, minor) > (ours_major, ours_minor)
              else "install a release of the plugin made for this ikkuna")
    return (
        f"ikkuna: {where} is not loaded: it was written for plugin API {declared}, and this "
        f"ikkuna provides plugin API {PLUGIN_API_VERSION} (it loads plugins for "
        f"{accepted_range()}); {advice}"
    )
