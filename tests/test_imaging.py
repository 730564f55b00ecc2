"""Decoding is defensive and converts every common mode to upright 8-bit RGB."""

from __future__ import annotations

import io
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from scenery.errors import ImageRejected
from scenery.imaging import decode, perceptual_hash, thumbnail, to_rgb
from tests import badfiles

LIMIT = 100_000_000


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def test_decodes_real_jpeg_with_its_facts(photos: list[Path]) -> None:
    data = photos[0].read_bytes()
    decoded = decode(data, LIMIT)
    original = Image.open(photos[0])
    assert (decoded.width, decoded.height) == original.size
    assert decoded.format == "JPEG" and decoded.extension == "jpg"
    assert decoded.image.mode == "RGB"


def test_rejects_corrupt_jpeg(photos: list[Path]) -> None:
    with pytest.raises(ImageRejected, match="corrupt"):
        decode(badfiles.corrupt_jpeg(photos[0]), LIMIT)


def test_rejects_truncated_png(photos: list[Path]) -> None:
    with pytest.raises(ImageRejected, match="truncated"):
        decode(badfiles.truncated_png(photos[0]), LIMIT)


def test_rejects_text_named_as_image() -> None:
    with pytest.raises(ImageRejected, match="not an image"):
        decode(badfiles.text_file(), LIMIT)


@pytest.mark.parametrize("side", [12_000, 30_000])
def test_rejects_decompression_bombs_before_decoding(side: int) -> None:
    with pytest.raises(ImageRejected, match="decompression bomb"):
        decode(badfiles.decompression_bomb(side), LIMIT)


def test_pixel_limit_is_a_setting() -> None:
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    assert decode(data, 10_000).width == 100
    with pytest.raises(ImageRejected, match="over 9,999 pixels"):
        decode(data, 9_999)


def test_rejects_unsupported_format() -> None:
    data = encode(Image.new("RGB", (32, 32), "red"), "ICO")
    with pytest.raises(ImageRejected, match="unsupported image format ICO"):
        decode(data, LIMIT)


def test_cmyk_jpeg_becomes_rgb_with_the_right_colour() -> None:
    cmyk = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # pure red in CMYK
    decoded = decode(encode(cmyk, "JPEG", quality=95), LIMIT)
    r, g, b = np.asarray(decoded.image).reshape(-1, 3).mean(0)
    assert decoded.image.mode == "RGB"
    assert r > 200 and g < 60 and b < 60


def test_palette_transparency_is_flattened_onto_white() -> None:
    image = Image.new("P", (20, 20), 0)
    image.putpalette([0, 0, 0] + [255, 0, 0] * 255)
    image.paste(1, (10, 0, 20, 20))
    data = encode(image, "PNG", transparency=0)
    pixels = np.asarray(decode(data, LIMIT).image)
    assert tuple(pixels[5, 2]) == (255, 255, 255)  # transparent half -> white
    assert tuple(pixels[5, 15]) == (255, 0, 0)


def test_alpha_is_composited_not_dropped() -> None:
    rgba = Image.new("RGBA", (10, 10), (0, 0, 255, 0))
    pixels = np.asarray(decode(encode(rgba, "PNG"), LIMIT).image)
    assert tuple(pixels[0, 0]) == (255, 255, 255)  # fully transparent blue is white, not blue


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)  # Pillow picks mode I;16
    decoded = decode(encode(image, "PNG"), LIMIT)
    row = np.asarray(decoded.image)[0, :, 0]
    assert list(row) == [0, 128, 255]


def test_animated_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ("green", "blue", "red")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    pixels = np.asarray(decode(data, LIMIT).image)
    r, g, b = pixels[8, 8]
    assert g > 100 and r < 50 and b < 50


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (60, 20), "white")
    image.paste((255, 0, 0), (0, 0, 10, 20))  # red stripe on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = decode(encode(image, "JPEG", exif=exif, quality=95), LIMIT)
    assert (decoded.width, decoded.height) == (20, 60)
    assert decoded.image.size == (20, 60)
    top = np.asarray(decoded.image)[:5].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[1] < 80  # the left edge is now on top


def test_large_jpeg_decodes_at_reduced_scale_but_reports_full_size() -> None:
    data = encode(Image.new("RGB", (6400, 4000), "gray"), "JPEG")
    decoded = decode(data, LIMIT)
    assert (decoded.width, decoded.height) == (6400, 4000)
    assert 1600 <= max(decoded.image.size) < 6400


def test_thumbnails_keep_aspect_and_never_upscale(photos: list[Path]) -> None:
    decoded = decode(photos[0].read_bytes(), LIMIT)
    small = thumbnail(decoded.image, 400)
    assert max(small.size) == 400
    ratio = decoded.width / decoded.height
    assert small.size[0] / small.size[1] == pytest.approx(ratio, rel=0.01)
    assert thumbnail(small, 1600).size == small.size


def test_perceptual_hash_survives_recompression_but_separates_photos(photos: list[Path]) -> None:
    first = decode(photos[0].read_bytes(), LIMIT).image
    recompressed = decode(encode(first.resize((800, 533)), "JPEG", quality=40), LIMIT).image
    other = decode(photos[1].read_bytes(), LIMIT).image
    h1, h2, h3 = (imagehash.hex_to_hash(perceptual_hash(i)) for i in (first, recompressed, other))
    assert len(perceptual_hash(first)) == 64
    assert h1 - h2 <= 20
    assert h1 - h3 > 60


def test_to_rgb_leaves_rgb_untouched() -> None:
    image = Image.new("RGB", (4, 4), "red")
    assert to_rgb(image) is image
