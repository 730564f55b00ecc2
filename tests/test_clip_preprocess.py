"""Torch-free image preprocessing equals open_clip's (scenery.clip_preprocess)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import pytest
from PIL import Image
from torchvision import transforms as tv

from scenery.clip_preprocess import read_transform
from scenery.embed import model_view


@pytest.fixture(scope="module")
def transform() -> tv.Compose:
    _, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    return preprocess


def test_pixels_equal_open_clips_on_real_photos_and_odd_sizes(
    transform: tv.Compose, photos: list[Path]
) -> None:
    ours = read_transform(transform)
    assert ours is not None and ours.side == 224
    pictures = [model_view(Image.open(p), 224) for p in photos[:5]]
    rng = np.random.default_rng(3)
    for size in [(224, 224), (225, 224), (300, 100), (100, 700), (223, 500), (1, 1), (5, 3)]:
        noise = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        pictures.append(Image.fromarray(noise))
    pictures.append(Image.new("L", (400, 300), 128))  # grey: converted to RGB like open_clip
    for picture in pictures:
        expected = transform(picture).numpy()
        assert np.array_equal(ours.pixels(picture), expected), picture.size


def test_a_transform_it_does_not_reproduce_is_refused() -> None:
    squash = tv.Compose([tv.Resize((224, 224)), tv.ToTensor(), tv.Normalize([0.5] * 3, [0.5] * 3)])
    assert read_transform(squash) is None
