"""Decoding is defensive and converts every common mode to upright 8-bit RGB."""

from __future__ import annotations

import io
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from scenery.config import Settings
from scenery.errors import ImageRejected
from scenery.imaging import ImageLimits, decode, perceptual_hash, thumbnail, to_rgb
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


# -- bounded work: limits judged from the header, full-size decodes reduced a band at a time --


def test_budget_refuses_from_the_header_before_any_pixel_is_decoded() -> None:
    # A PNG cut off where its pixels begin: they cannot be decoded, so the refusal names the
    # budget only if it was decided before decoding began.
    header_only = badfiles.png(44_720, 2236, colour_type=2)[:60]
    with pytest.raises(ImageRejected, match="decode budget: a 44720x2236 PNG"):
        decode(header_only, LIMIT)
    with pytest.raises(ImageRejected, match="aspect guard: 100x1000000 is more than 20 times"):
        decode(badfiles.png(100, 1_000_000, depth=1)[:60], LIMIT)


def test_aspect_and_decode_budget_are_settings() -> None:
    limits = ImageLimits(max_pixels=LIMIT, max_decode_mb=1, max_aspect=3)
    assert decode(encode(Image.new("RGB", (300, 100)), "PNG"), limits).width == 300
    with pytest.raises(ImageRejected, match="more than 3 times as wide"):
        decode(encode(Image.new("RGB", (301, 100)), "PNG"), limits)
    with pytest.raises(ImageRejected, match="over 1 MB"):
        decode(encode(Image.new("RGB", (600, 600)), "PNG"), limits)  # 1.4 MB of RGBX
    assert ImageLimits.from_settings(Settings(max_image_aspect=4)).max_aspect == 4


def test_work_counts_what_each_format_unpacks_and_holds() -> None:
    limits = ImageLimits(max_pixels=LIMIT, max_decode_mb=6)
    eight_bit = badfiles.png(1000, 1000, colour_type=6)  # 4 MB: decodes
    assert decode(eight_bit, limits).image.size == (1000, 1000)
    with pytest.raises(ImageRejected, match="takes about 8 MB"):  # 16-bit samples unpacked
        decode(badfiles.png(1000, 1000, colour_type=6, depth=16), limits)
    square = Image.new("RGB", (700, 700))
    assert decode(encode(square, "PNG"), limits).image.size == (700, 700)  # 2 MB
    with pytest.raises(ImageRejected, match="700x700 WEBP"):  # libwebp's canvases: 16 B/pixel
        decode(encode(square, "WEBP"), limits)


def test_progressive_jpegs_count_their_coefficients_at_full_size() -> None:
    image = Image.new("RGB", (2000, 2000), "gray")
    limits = ImageLimits(max_pixels=LIMIT, max_decode_mb=20)
    baseline = decode(encode(image, "JPEG", subsampling=0), limits, edge=400)
    assert baseline.image.size == (500, 500)  # DCT-scaled: 4 MB held
    with pytest.raises(ImageRejected, match="decode budget"):  # 24 MB of coefficients
        decode(encode(image, "JPEG", subsampling=0, progressive=True), limits, edge=400)


def test_full_size_decodes_are_reduced_as_one_box_reduce_would() -> None:
    grey = Image.effect_noise((1203, 901), 64)
    flip = Image.Transpose
    noise = Image.merge(
        "RGB", [grey, grey.transpose(flip.ROTATE_180), grey.point(lambda v: 255 - v)]
    )
    decoded = decode(encode(noise, "PNG"), LIMIT, edge=200)
    assert (decoded.width, decoded.height) == (1203, 901)
    assert decoded.image.size == (201, 151)  # reduced by 6 (the most keeping 200 px), not 1203
    assert decoded.image.tobytes() == noise.reduce(6).tobytes()  # bands join without seams


def test_reduced_palette_image_flattens_transparency_onto_white() -> None:
    image = Image.new("P", (2000, 1000), 0)
    image.putpalette([0, 0, 0] + [255, 0, 0] * 255)
    image.paste(1, (1000, 0, 2000, 1000))
    pixels = np.asarray(decode(encode(image, "PNG", transparency=0), LIMIT, edge=400).image)
    assert pixels.shape == (200, 400, 3)
    assert tuple(pixels[100, 50]) == (255, 255, 255) and tuple(pixels[100, 350]) == (255, 0, 0)


def test_reduced_deep_images_are_scaled_over_their_whole_range() -> None:
    sixteen = Image.fromarray(np.full((1000, 2000), 32768, dtype=np.uint16))
    assert np.asarray(decode(encode(sixteen, "PNG"), LIMIT, edge=400).image).max() == 128
    # 32-bit values: one range for the whole image, though it is converted a band at a time
    ramp = np.repeat(np.linspace(0, 100_000, 2000, dtype=np.int32)[:, None], 1000, axis=1)
    pixels = np.asarray(decode(encode(Image.fromarray(ramp, "I"), "TIFF"), LIMIT, edge=400).image)
    assert pixels.shape == (400, 200, 3)
    assert pixels[0].max() < 5 and pixels[-1].min() > 250 and 120 < pixels[200, 0, 0] < 135


def test_exif_orientation_is_applied_after_reducing() -> None:
    image = Image.new("L", (4000, 600), 255)
    image.paste(0, (0, 0, 400, 600))  # dark stripe on the left edge
    decoded = decode(encode(image, "PNG", exif=badfiles.orientation(6)), LIMIT, edge=400)
    assert (decoded.width, decoded.height) == (600, 4000)
    assert decoded.image.size == (60, 400)
    top = np.asarray(decoded.image)[:20].mean()
    assert top < 10  # the left edge is now on top


def test_a_gif_of_many_frames_decodes_its_first_only() -> None:
    decoded = decode(badfiles.gif(64, 48, 200_000), LIMIT)
    assert decoded.image.size == (64, 48) and decoded.format == "GIF"
