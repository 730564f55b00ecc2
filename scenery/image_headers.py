"""A bound on the header parsing Pillow does in Python, checked before it starts.

Pillow reads a PNG's chunks, a JPEG's marker segments up to its first scan and a GIF's blocks
up to its first image one at a time in Python (a byte at a time across junk between them), so
an 18 MB file of empty chunks or comments holds a worker for seconds before a pixel is decoded.
This walks the same structure with slices and ``find`` and stops at the limit, so what it
costs is bounded too.
"""

from __future__ import annotations

import re

from scenery.errors import ImageRejected

MAX_PNG_CHUNKS = 65_536  # a 60 MB PNG written in 1 KB chunks has 60,000
MAX_HEADER_STEPS = 10_000  # segments or blocks before the pixels; photos have tens
JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})  # markers without a length
GIF_BLOCK = re.compile(rb"[!,;]")  # extension, image, trailer: Pillow skips other bytes singly


def check_structure(data: bytes) -> None:
    """Refuse (ImageRejected) a PNG, JPEG or GIF whose header Pillow would take too long to
    parse; other formats are parsed by their C libraries or have fixed headers."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        steps, limit, unit = _png_chunks(data, MAX_PNG_CHUNKS), MAX_PNG_CHUNKS, "chunks"
    elif data.startswith(b"\xff\xd8"):
        steps, limit, unit = _jpeg_steps(data, MAX_HEADER_STEPS), MAX_HEADER_STEPS, "segments"
    elif data.startswith(b"GIF8"):
        steps, limit, unit = _gif_steps(data, MAX_HEADER_STEPS), MAX_HEADER_STEPS, "blocks"
    else:
        return
    if steps > limit:
        raise ImageRejected(f"structure guard: more than {limit:,} {unit} to parse")


def _png_chunks(data: bytes, limit: int) -> int:
    """Chunks up to IEND (or the end of the data), counting no further than ``limit + 1``."""
    at, chunks = 8, 0
    while at + 8 <= len(data) and chunks <= limit:
        chunks += 1
        if data[at + 4 : at + 8] == b"IEND":
            break
        at += 12 + int.from_bytes(data[at : at + 4], "big")
    return chunks


def _jpeg_steps(data: bytes, limit: int) -> int:
    """Pillow's reads before the first scan: a segment or marker each, and a byte of junk."""
    at, steps = 2, 0
    while at + 1 < len(data) and steps <= limit:
        if data[at] != 0xFF:
            found = data.find(b"\xff", at)
            end = len(data) if found < 0 else found
            steps, at = steps + end - at, end
            continue
        marker = data[at + 1]
        steps += 1
        if marker == 0xDA:  # start of scan: libjpeg reads on from here
            break
        if marker in (0x00, 0xFF) or marker in JPEG_STANDALONE:
            at += 1 if marker in (0x00, 0xFF) else 2
            continue
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return steps


def _gif_steps(data: bytes, limit: int) -> int:
    """Pillow's reads before the first image: an extension's sub-blocks, a byte of junk."""
    if len(data) < 13:
        return 0
    flags = data[10]
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    steps = 0
    while at < len(data) and steps <= limit:
        found = GIF_BLOCK.search(data, at)
        end = len(data) if found is None else found.start()
        steps, at = steps + end - at, end
        if at >= len(data) or data[at] in b",;":
            break
        at += 2  # "!" and its label, then sub-blocks up to an empty one
        while at < len(data) and data[at] and steps <= limit:
            steps += 1
            at += 1 + data[at]
        at += 1
        steps += 1
    return steps
