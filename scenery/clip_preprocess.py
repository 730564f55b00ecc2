"""open_clip's image preprocessing in PIL and numpy, for runtimes that do not load torch.

open_clip's default transform (``resize_mode="shortest"``) is torchvision's ``Resize(side,
bicubic)`` on a PIL image (PIL's own resize of the short side to ``side``), ``CenterCrop(side)``,
RGB, ``ToTensor`` and ``Normalize(mean, std)``. The export records the transform's parameters
and checks this reproduction against open_clip's on a real photo before it is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

INTERPOLATIONS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


@dataclass(frozen=True)
class Preprocess:
    """What an image tower expects: a ``side`` x ``side`` crop, normalised per channel."""

    side: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocess:
        return cls(
            side=int(data["side"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            interpolation=str(data["interpolation"]),
        )

    def pixels(self, image: Image.Image) -> np.ndarray:
        """One image as a float32 CHW array, as open_clip's transform makes it."""
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        if short != self.side:
            new_long = int(self.side * long / short)
            size = (self.side, new_long) if width <= height else (new_long, self.side)
            image = image.resize(size, INTERPOLATIONS[self.interpolation])
        width, height = image.size
        top = round((height - self.side) / 2.0)
        left = round((width - self.side) / 2.0)
        image = image.crop((left, top, left + self.side, top + self.side)).convert("RGB")
        scaled = np.asarray(image, dtype=np.float32) / np.float32(255.0)
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        return np.ascontiguousarray(((scaled - mean) / std).transpose(2, 0, 1))

    def batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Images as one float32 NCHW batch."""
        return np.stack([self.pixels(image) for image in images])


def read_transform(transform: Any) -> Preprocess | None:
    """The parameters of an open_clip ``Compose`` this module reproduces, or None."""
    from torchvision import transforms as tv

    steps = list(getattr(transform, "transforms", []))
    kinds = [type(step).__name__ for step in steps]
    if kinds[:2] != ["Resize", "CenterCrop"] or not isinstance(steps[-1], tv.Normalize):
        return None
    resize, crop, normalize = steps[0], steps[1], steps[-1]
    if not isinstance(resize.size, int) and len(resize.size) != 1:
        return None
    side = resize.size if isinstance(resize.size, int) else resize.size[0]
    if resize.max_size is not None or tuple(crop.size) != (side, side):
        return None
    interpolation = resize.interpolation.value
    if interpolation not in INTERPOLATIONS:
        return None
    return Preprocess(
        side=int(side),
        mean=tuple(float(v) for v in normalize.mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in normalize.std),  # type: ignore[arg-type]
        interpolation=interpolation,
    )
