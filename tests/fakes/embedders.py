"""A deterministic embedder whose geometry a test can reason about: colour names and colours."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from scenery.embed import normalise

COLOURS = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "white": (1.0, 1.0, 1.0),
}


class ColourEmbedder:
    """Images embed as their mean colour; text as the colours it names (3-d space)."""

    name = "fake-colour"
    dim = 3

    def __init__(self) -> None:
        self.image_calls = 0

    def load(self) -> None:
        pass  # nothing to load

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.image_calls += 1
        rows = [np.asarray(img.convert("RGB"), np.float32).reshape(-1, 3).mean(0) for img in images]
        # A small constant keeps black images from being the zero vector.
        return normalise(np.array(rows, np.float32).reshape(-1, 3) + 1.0)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            named = [COLOURS[w] for w in text.lower().split() if w in COLOURS]
            rows.append(np.mean(named, axis=0) if named else (1.0, 1.0, 1.0))
        return normalise(np.array(rows, np.float32))


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Image.Image:
    return Image.new("RGB", size, colour)
