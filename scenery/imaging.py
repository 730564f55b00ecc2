"""Defensive decoding, colour and orientation fixes, thumbnails and perceptual hashes."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import imagehash
import numpy as np
import scipy.fft
from PIL import Image, UnidentifiedImageError

from scenery.config import (
    MAX_DECODE_MB,
    MAX_IMAGE_ASPECT,
    MAX_IMAGE_PIXELS,
    PAGE_THUMB,
    Settings,
)
from scenery.errors import ImageRejected
from scenery.image_headers import check_structure

FORMAT_EXTENSIONS = {
    "JPEG": "jpg",
    "MPO": "jpg",  # multi-picture JPEGs from phones; the first picture is an ordinary JPEG
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tiff",
}
ORIENTATION_TAG = 0x0112
TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}
ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
DECODE_EDGE = PAGE_THUMB
HASH_SIZE = 16
THUMB_EXT = "jpg"
MIB = 1024 * 1024
# Copies of Pillow's own buffer a full-size decode holds beside it: Pillow's WebP plugin
# decodes through libwebp's animation decoder (two canvases of its own), then copies the
# frame's bytes into the image (measured: 16 bytes a pixel); the others decode straight in.
FORMAT_COPIES = {"WEBP": 3}
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # samples per pixel, by IHDR colour type
BAND_PIXELS = 1 << 20  # pixels converted at a time when a full-size image is reduced
REDUCE_FIRST = frozenset(
    {"L", "RGB", "RGBX", "RGBA", "LA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F"}
)


@dataclass(frozen=True)
class ImageLimits:
    """How large an image may be, and how much work decoding it may take.

    ``max_pixels`` bounds the size an image says it has; ``max_decode_mb`` the bytes of work
    its decode may take (``decode_bytes``: the larger of the samples unpacked and the buffers
    held, judged from the header before any pixel is decoded; a baseline JPEG counts at the
    reduced scale it decodes at); ``max_aspect`` how many times its short side its long side
    may be.
    """

    max_pixels: int = MAX_IMAGE_PIXELS
    max_decode_mb: int = MAX_DECODE_MB
    max_aspect: float = MAX_IMAGE_ASPECT

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLimits:
        return cls(settings.max_image_pixels, settings.max_decode_mb, settings.max_image_aspect)

    @classmethod
    def of(cls, limits: ImageLimits | int) -> ImageLimits:
        """Limits as given, or the default ones with a pixel cap of their own."""
        return limits if isinstance(limits, ImageLimits) else cls(max_pixels=limits)


@dataclass(frozen=True)
class Decoded:
    """A validated image: upright RGB pixels whose longest edge is between ``edge`` and twice
    that (or the image's own, when smaller), and the full image's facts."""

    image: Image.Image
    width: int
    height: int
    format: str
    extension: str


def decode(data: bytes, limits: ImageLimits | int, edge: int = DECODE_EDGE) -> Decoded:
    """Decode image bytes into upright RGB, or raise ImageRejected with the reason.

    ``limits`` (or a pixel cap alone, with the default budget) are checked against the header
    before any pixel is decoded, once the header itself is known to be quick to parse
    (``check_structure``). JPEGs decode at the smallest DCT scale that keeps the longest edge
    at least ``edge``: every byte is still read (so truncation is caught), at a fraction of the
    cost. Other formats cannot be decoded smaller, so they decode at full size within the
    budget and are then box-reduced a band at a time; colour conversion and orientation work
    on the reduced image.
    """
    limits = ImageLimits.of(limits)
    try:
        check_structure(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        fmt = img.format or "unknown"
        if fmt not in FORMAT_EXTENSIONS:
            raise ImageRejected(f"unsupported image format {fmt}")
        width, height = img.size
        check_size(width, height, limits)
        img.seek(0)  # animated images: the first frame stands for the whole
        if fmt in ("JPEG", "MPO"):
            # Ask for the shorter side in proportion, so the longest edge lands near ``edge``.
            scale = edge / max(img.size)
            img.draft(
                "RGB", (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
            )
        needed = decode_bytes(img, width, height, data)
        if needed > limits.max_decode_mb * MIB:
            raise ImageRejected(
                f"decode budget: a {width}x{height} {fmt} ({img.mode}) takes about "
                f"{needed / MIB:,.0f} MB to decode, over {limits.max_decode_mb:,} MB"
            )
        orientation = img.getexif().get(ORIENTATION_TAG, 1)  # a PNG's may follow its pixels
        img.load()
        upright = _orient(reduced_rgb(img, edge), orientation)
        if orientation in TRANSPOSED_ORIENTATIONS:
            width, height = height, width
        return Decoded(upright, width, height, fmt, FORMAT_EXTENSIONS[fmt])
    except ImageRejected:
        raise
    except UnidentifiedImageError as exc:
        raise ImageRejected("not an image: the bytes are in no known image format") from exc
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"decompression bomb guard: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"truncated or corrupt image: {exc}") from exc
    except (MemoryError, OverflowError) as exc:
        raise ImageRejected(f"image too large to decode ({type(exc).__name__})") from exc


def check_size(width: int, height: int, limits: ImageLimits) -> None:
    """Refuse a size past the pixel cap or the aspect budget (ImageRejected)."""
    if width < 1 or height < 1:
        raise ImageRejected("image has no pixels")
    if width * height > limits.max_pixels:
        raise ImageRejected(
            f"decompression bomb guard: {width}x{height} is over {limits.max_pixels:,} pixels"
        )
    if max(width, height) > limits.max_aspect * min(width, height):
        raise ImageRejected(
            f"aspect guard: {width}x{height} is more than {limits.max_aspect:g} times as "
            f"{'wide as it is high' if width > height else 'high as it is wide'}"
        )


def decode_bytes(img: Image.Image, width: int, height: int, data: bytes) -> int:
    """Bytes of work decoding ``img`` takes, from its header alone: the larger of the samples
    the decoder unpacks and the buffers it holds (libwebp keeps canvases of its own).

    ``img.size`` is the size it decodes at (a JPEG's after ``draft``); ``width`` x ``height``
    its full size, at which a progressive JPEG's coefficients are kept whatever the scale.
    """
    pixels = img.size[0] * img.size[1]
    held = pixels * _bytes_per_pixel(img.mode) * (1 + FORMAT_COPIES.get(img.format or "", 0))
    work = max(held, pixels * _sample_bits(img, data) // 8)
    if img.format in ("JPEG", "MPO") and img.info.get("progressive"):
        work += _coefficient_bytes(getattr(img, "layer", []), width, height)
    return work


def _bytes_per_pixel(mode: str) -> int:
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def _sample_bits(img: Image.Image, data: bytes) -> int:
    """Bits per pixel in the file, where they can be more than Pillow keeps (16-bit samples)."""
    if img.format == "PNG" and data[12:16] == b"IHDR":  # always the first chunk
        depth, colour = data[24], data[25]
        return depth * PNG_CHANNELS.get(colour, 4)
    tags = getattr(img, "tag_v2", None)
    if img.format == "TIFF" and tags is not None:
        bits = tags.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        samples = int(tags.get(277, 1))
        return sum(int(b) for b in bits) if len(bits) > 1 else int(bits[0]) * samples
    return 0


def _coefficient_bytes(layers: list[tuple[str, int, int, int]], width: int, height: int) -> int:
    """libjpeg's whole-image coefficient buffer: 64 two-byte coefficients per 8x8 block of
    each component, at that component's sampling."""
    if not layers:
        return width * height * 3 * 2
    h_max = max(h for _, h, _, _ in layers) or 1
    v_max = max(v for _, _, v, _ in layers) or 1
    blocks = sum(
        -(-width * h // (h_max * 8)) * -(-height * v // (v_max * 8)) for _, h, v, _ in layers
    )
    return blocks * 64 * 2


def reduced_rgb(img: Image.Image, edge: int) -> Image.Image:
    """An RGB copy of a loaded image, box-reduced by the whole factor that keeps its longest
    edge at least ``edge``; a band at a time, so no second full-size buffer is made."""
    factor = max(1, max(img.size) // edge)
    if factor == 1:
        return to_rgb(img)
    extrema = _extrema(img)
    palette = _opaque_palette(img) if img.mode == "P" else None
    width, height = img.size
    out = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    rows = factor * max(1, BAND_PIXELS // (width * factor))  # whole boxes per band
    for top in range(0, height, rows):
        band = _reducible(img.crop((0, top, width, min(height, top + rows))), palette)
        out.paste(to_rgb(band.reduce(factor), extrema), (0, top // factor))
    return out


def _reducible(band: Image.Image, palette: bytes | None) -> Image.Image:
    """A band in a mode that box-reduces as it looks (any alpha and any depth kept)."""
    if band.mode in REDUCE_FIRST:
        return band
    if band.mode == "1":
        return band.convert("L")
    if band.mode == "P":
        if palette is not None:
            band.putpalette(palette, "RGB")
            band.info.pop("transparency", None)
        return band.convert("RGB")
    if band.mode.startswith("I;16"):
        return band.convert("I")
    return to_rgb(band)


def _opaque_palette(img: Image.Image) -> bytes | None:
    """A palette image's colours with its transparency blended onto white, so that a band
    converts to flattened RGB at once (256 colours blended, not every pixel); None when it
    has no transparency."""
    transparency = img.info.get("transparency")
    palette = img.getpalette("RGB")
    if transparency is None or not palette:
        return None
    colours = np.asarray(palette, dtype=np.int32).reshape(-1, 3)
    alpha = np.full(len(colours), 255, dtype=np.int32)
    if isinstance(transparency, int):
        alpha[transparency % len(colours)] = 0
    else:
        given = np.frombuffer(bytes(transparency), dtype=np.uint8)[: len(colours)]
        alpha[: len(given)] = given
    blended = (colours * alpha[:, None] + 255 * (255 - alpha[:, None]) + 127) // 255
    return blended.astype(np.uint8).tobytes()


def _extrema(img: Image.Image) -> tuple[float, float] | None:
    """The value range a single-channel image of more than 8 bits is scaled to 8 bits over, as
    a whole: 16-bit values over their whole range, 32-bit ones over their own."""
    if img.mode.startswith("I;16"):
        return 0.0, 65535.0
    if img.mode not in ("I", "F"):
        return None
    low, high = img.getextrema()
    return float(low), float(high)  # type: ignore[arg-type]


def _orient(image: Image.Image, orientation: int) -> Image.Image:
    method = ORIENTATION_TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image


def to_rgb(img: Image.Image, extrema: tuple[float, float] | None = None) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is flattened onto white.

    32-bit values are scaled to 8 bits over ``extrema`` (default: this image's own range), so
    that the bands of one image are scaled alike."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_scale_to_8bit(np.asarray(img), extrema), "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or img.mode == "RGBA":
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _scale_to_8bit(pixels: np.ndarray, extrema: tuple[float, float] | None) -> np.ndarray:
    if np.issubdtype(pixels.dtype, np.integer) and pixels.dtype.itemsize == 2:
        return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)  # v / 257, rounded
    values = pixels.astype(np.float64)
    low, high = extrema if extrema else (float(values.min()), float(values.max()))
    if high <= 255 and low >= 0:
        return values.astype(np.uint8)
    span = high - low or 1.0
    return ((values - low) * (255.0 / span)).round().clip(0, 255).astype(np.uint8)


def thumbnail(image: Image.Image, size: int) -> Image.Image:
    """A copy of an RGB image whose longest edge is at most ``size``."""
    thumb = image.copy()
    # reducing_gap: box-reduce first, then bicubic; as sharp as Lanczos here at a third the cost.
    thumb.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
    return thumb


def encode_thumbnail(image: Image.Image) -> bytes:
    """Encode a thumbnail as JPEG (THUMB_EXT).

    Measured on the bench photos at 400 px: JPEG quality 85 takes 0.4 ms and 24 KB, WebP
    (quality 82, method 1) 3.9 ms and 19 KB. Every candidate an ingest run keeps gets one,
    so the encoder's speed counts for more than a fifth of the bytes."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def perceptual_hashes(image: Image.Image) -> tuple[str, str]:
    """256-bit DCT hashes of an image and of its mirror image, as 64 hex digits each.

    The first equals ``imagehash.phash(image, hash_size=16)``. The mirror's comes from the same
    DCT: flipping a row negates its odd-frequency coefficients.
    """
    size = HASH_SIZE * 4
    grey = image.convert("L").resize((size, size), Image.Resampling.LANCZOS)
    dct = scipy.fft.dct(scipy.fft.dct(np.asarray(grey, dtype=np.float64), axis=0), axis=1)
    low = dct[:HASH_SIZE, :HASH_SIZE]
    mirrored = low * np.where(np.arange(HASH_SIZE) % 2, -1.0, 1.0)[None, :]
    return _hex(low > np.median(low)), _hex(mirrored > np.median(mirrored))


def perceptual_hash(image: Image.Image) -> str:
    """A 256-bit DCT hash (same as ``imagehash.phash(image, hash_size=16)``) as 64 hex digits."""
    return perceptual_hashes(image)[0]


def _hex(bits: np.ndarray) -> str:
    return str(imagehash.ImageHash(bits))
