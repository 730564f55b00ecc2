"""Hostile and broken image files, made on the fly from real photos."""

from __future__ import annotations

import io
import random
from pathlib import Path

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
