"""Header floods are refused before Pillow parses them; ordinary headers of any size are not."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scenery.errors import ImageRejected
from scenery.image_headers import MAX_HEADER_STEPS, MAX_PNG_CHUNKS, check_structure
from scenery.imaging import decode
from tests import badfiles

LIMIT = 100_000_000


@pytest.mark.parametrize(
    ("flood", "limit", "unit"),
    [
        (badfiles.flooded_png, MAX_PNG_CHUNKS, "chunks"),
        (badfiles.flooded_jpeg, MAX_HEADER_STEPS, "segments"),
        (badfiles.flooded_gif, MAX_HEADER_STEPS, "blocks"),
    ],
    ids=["png", "jpeg", "gif"],
)
def test_a_flood_is_refused_and_a_header_within_the_limit_decodes(
    flood: Callable[[int], bytes], limit: int, unit: str
) -> None:
    with pytest.raises(ImageRejected, match=f"structure guard: more than {limit:,} {unit}"):
        decode(flood(limit + 10), LIMIT)
    assert decode(flood(limit // 2), LIMIT).image.size == (64, 64)


def test_a_png_written_in_small_idat_chunks_is_not_a_flood() -> None:
    data = badfiles.png(2000, 2000, colour_type=2)  # one IDAT chunk
    idat_at = data.index(b"IDAT") - 4
    body = data[idat_at + 8 : -12 - 4]  # the deflate stream, without CRC and IEND
    pieces = [body[i : i + 8] for i in range(0, len(body), 8)]
    assert 1000 < len(pieces) < MAX_PNG_CHUNKS
    chunked = data[:idat_at] + b"".join(badfiles.png_chunk(b"IDAT", p) for p in pieces)
    chunked += badfiles.png_chunk(b"IEND", b"")
    check_structure(chunked)
    assert decode(chunked, LIMIT).width == 2000


def test_junk_between_jpeg_segments_counts_a_step_a_byte() -> None:
    plain = badfiles.flooded_jpeg(0)
    with pytest.raises(ImageRejected, match="structure guard"):
        check_structure(plain[:2] + b"\x00" * (MAX_HEADER_STEPS + 1) + plain[2:])
    check_structure(plain[:2] + b"\x00" * 100 + plain[2:])
