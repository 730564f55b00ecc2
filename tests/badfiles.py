"""Hostile and broken image files, made on the fly from real photos."""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image


def corrupt_jpeg(source: Path) -> bytes:
    """A JPEG whose header survives but whose entropy-coded data is noise and cut short."""
    data = source.read_bytes()
    rng = random.Random(7)
    return data[:1500] + bytes(rng.randrange(256) for _ in range(3000))


def truncated_png(source: Path) -> bytes:
    """A real PNG cut off halfway."""
    buffer = io.BytesIO()
    Image.open(source).save(buffer, "PNG")
    data = buffer.getvalue()
    return data[: len(data) // 2]


def text_file() -> bytes:
    return b"This is not an image, whatever its name says.\n" * 20


def decompression_bomb(side: int = 30_000) -> bytes:
    """A tiny PNG that would decode to side x side pixels."""
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def write_bad_files(folder: Path, photo: Path) -> dict[str, Path]:
    """Write one file of each bad kind into ``folder``; return them by kind."""
    files = {
        "corrupt": folder / "corrupt.jpg",
        "truncated": folder / "truncated.png",
        "text": folder / "notes.jpg",
        "bomb": folder / "bomb.png",
    }
    files["corrupt"].write_bytes(corrupt_jpeg(photo))
    files["truncated"].write_bytes(truncated_png(photo))
    files["text"].write_bytes(text_file())
    files["bomb"].write_bytes(decompression_bomb())
    return files


# -- hostile images: small files that decode to huge work ---------------------------------------
# PNGs and GIFs are written by hand, so that a file of 100 million pixels costs milliseconds to
# make: a deflate stream of repeated rows is one compressed chunk repeated (each ends in a full
# flush, so it does not depend on what came before).

ADAM7 = [
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
]
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type
CHUNK_BYTES = 1 << 20


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _repeated_deflate(segments: list[tuple[bytes, int]]) -> bytes:
    """A zlib stream of each ``(unit, count)``: ``unit`` repeated ``count`` times, in order."""
    parts, checksum = [b"\x78\xda"], 1
    for unit, count in segments:
        per_chunk = max(1, CHUNK_BYTES // len(unit))
        for times, repeat in ((per_chunk, count // per_chunk), (count % per_chunk, 1)):
            if not times or not repeat:
                continue
            chunk = unit * times
            body = zlib.compressobj(9, zlib.DEFLATED, -15)
            block = body.compress(chunk) + body.flush(zlib.Z_FULL_FLUSH)
            parts.append(block * repeat)
            for _ in range(repeat):
                checksum = zlib.adler32(chunk, checksum)
    parts.append(b"\x03\x00" + struct.pack(">I", checksum))  # an empty final block
    return b"".join(parts)


def png(
    width: int,
    height: int,
    *,
    colour_type: int = 0,
    depth: int = 8,
    interlaced: bool = False,
    palette_size: int = 0,
    transparent: bool = False,
    exif: Image.Exif | None = None,
) -> bytes:
    """A uniform PNG of any size, depth and colour type, interlaced (Adam7) or not."""
    channels = PNG_CHANNELS[colour_type]
    passes = ADAM7 if interlaced else [(0, 0, 1, 1)]
    segments = []
    for x0, y0, dx, dy in passes:
        pass_width, pass_height = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if pass_width > 0 and pass_height > 0:
            row = bytes(1 + -(-pass_width * channels * depth // 8))  # filter 0, then zeros
            segments.append((row, pass_height))
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, int(interlaced))
    chunks = [png_chunk(b"IHDR", header)]
    if colour_type == 3:
        entries = palette_size or 256
        chunks.append(png_chunk(b"PLTE", bytes(range(256))[:entries] * 3))
        if transparent:
            chunks.append(png_chunk(b"tRNS", bytes([0]) + bytes([255] * (entries - 1))))
    if exif is not None:
        chunks.append(png_chunk(b"eXIf", exif.tobytes()[6:]))  # without the "Exif\0\0" mark
    chunks.append(png_chunk(b"IDAT", _repeated_deflate(segments)))
    chunks.append(png_chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def gif(width: int, height: int, frames: int) -> bytes:
    """A GIF with a ``width`` x ``height`` screen and ``frames`` frames of one pixel each."""
    screen = (
        b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    )
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    control = b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # 1/100 s per frame
    # one pixel of colour 0: LZW codes clear (4), 0, end (5) at 3 bits, packed from the low bit
    pixel = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return screen + loop + (control + pixel) * frames + b"\x3b"


def flooded_png(chunks: int) -> bytes:
    """A 64x64 PNG with ``chunks`` empty private chunks before its pixels (18 MB for 1.5 M)."""
    plain = png(64, 64)
    return plain[:33] + png_chunk(b"scNy", b"") * chunks + plain[33:]


def flooded_jpeg(comments: int) -> bytes:
    """A 64x64 JPEG with ``comments`` empty comment segments before its frame."""
    plain = saved(Image.new("RGB", (64, 64)), "JPEG")
    return plain[:2] + b"\xff\xfe\x00\x02" * comments + plain[2:]


def flooded_gif(blocks: int) -> bytes:
    """A 64x64 GIF whose one comment extension has ``blocks`` one-byte sub-blocks."""
    plain = gif(64, 64, 1)
    screen = 13 + 6  # header, screen descriptor, two-colour table
    comment = b"\x21\xfe" + b"\x01 " * blocks + b"\x00"
    return plain[:screen] + comment + plain[screen:]


def saved(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


@dataclass(frozen=True)
class Hostile:
    """One hostile file: its name, how to make it, and whether it must be refused."""

    name: str
    make: Callable[[], bytes]
    refused: bool  # False: within the budget, so it must be answered normally
    heavy: bool = False  # seconds to make (Pillow encodes every pixel): the full benchmark only


HOSTILE = [
    Hostile("tall strip 100x1000000 PNG", lambda: png(100, 1_000_000, depth=1), True),
    Hostile("tall strip 1x100000000 PNG", lambda: png(1, 100_000_000, depth=1), True),
    Hostile("tall strip 10x10000000 PNG", lambda: png(10, 10_000_000), True),
    Hostile("wide strip 1000000x100 PNG", lambda: png(1_000_000, 100, depth=1), True),
    Hostile("20:1 strip 2236x44720 PNG", lambda: png(2236, 44_720), False),
    Hostile("20:1 strip 44720x2236 RGB PNG", lambda: png(44_720, 2236, colour_type=2), True),
    Hostile("bilevel 10000x10000 PNG", lambda: png(10_000, 10_000, depth=1), False),
    Hostile(
        "palette 10000x10000 PNG, tRNS",
        lambda: png(10_000, 10_000, colour_type=3, transparent=True),
        False,
    ),
    Hostile("16-bit grey 10000x10000 PNG", lambda: png(10_000, 10_000, depth=16), False),
    Hostile("16-bit RGB 7000x7000 PNG", lambda: png(7000, 7000, colour_type=2, depth=16), True),
    Hostile(
        "16-bit RGBA 4800x4800 interlaced PNG",
        lambda: png(4800, 4800, colour_type=6, depth=16, interlaced=True),
        False,
    ),
    Hostile(
        "16-bit RGBA 10000x10000 interlaced PNG",
        lambda: png(10_000, 10_000, colour_type=6, depth=16, interlaced=True),
        True,
    ),
    Hostile(
        "EXIF-rotated 10000x10000 PNG",
        lambda: png(10_000, 10_000, exif=orientation(6)),
        False,
    ),
    Hostile("GIF, 200000 frames", lambda: gif(64, 64, 200_000), False),
    Hostile("PNG of 1500000 empty chunks", lambda: flooded_png(1_500_000), True),
    Hostile("JPEG of 4500000 comments", lambda: flooded_jpeg(4_500_000), True),
    Hostile("GIF of 6000000 comment blocks", lambda: flooded_gif(6_000_000), True),
    Hostile("GIF, 10000x10000 screen", lambda: gif(10_000, 10_000, 2), False),
    Hostile(
        "EXIF-rotated 10000x10000 JPEG",
        lambda: saved(Image.new("L", (10_000, 10_000)), "JPEG", exif=orientation(6)),
        False,
        heavy=True,
    ),
    Hostile(
        "progressive 4:4:4 10000x10000 JPEG",
        lambda: saved(Image.new("RGB", (10_000, 10_000)), "JPEG", progressive=True, subsampling=0),
        True,
        heavy=True,
    ),
    Hostile(
        "lossless 10000x9000 WebP",
        lambda: saved(Image.new("RGB", (10_000, 9000)), "WEBP", lossless=True),
        True,
        heavy=True,
    ),
    Hostile(
        "deflate 10000x10000 TIFF",
        lambda: saved(Image.new("L", (10_000, 10_000)), "TIFF", compression="tiff_deflate"),
        False,
        heavy=True,
    ),
]
