"""Reading back what a report wrote: its HTML structure and its PNGs."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """The start tags (with attributes) and the text of an HTML page, as a browser reads them."""

    def __init__(self, path: Path) -> None:
        super().__init__(convert_charrefs=True)
        self.raw = path.read_text(encoding="utf-8")
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self.feed(self.raw)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.texts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def embedded_images(self) -> list[bytes]:
        prefix = "data:image/png;base64,"
        sources = [attrs["src"] for attrs in self.all("img")]
        assert all(source.startswith(prefix) for source in sources), sources
        return [base64.b64decode(source[len(prefix):]) for source in sources]


def read_png(path: Path) -> np.ndarray:
    """The image as floats in [0, 1], rows x columns x RGBA, after checking the signature."""
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return imread(path)


def has_colour(image: np.ndarray, rgb: tuple[float, float, float], tolerance: float = 0.03) -> bool:
    """Whether any pixel is ``rgb`` (within ``tolerance`` per channel)."""
    return bool(np.any(np.all(np.abs(image[..., :3] - np.array(rgb)) <= tolerance, axis=-1)))
