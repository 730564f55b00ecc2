"""One file into the library, the same way for ``scenery import`` and ingest.

One rule for both: decode the bytes (JPEGs at the scale just above what is looked at),
make the grid thumbnail, hash it (perceptual hash and its mirror's), and write the original
and the thumbnail under their content address at once, before the model runs and before any
row names them; then one image row with its embedding, attached before the flush. A crash
between the files and the commit leaves orphans, which ``scenery doctor --fix`` removes once
they are older than ``scenery.orphans.GRACE_SECONDS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from scenery.colours import colour_shares, dominant
from scenery.config import GRID_THUMB
from scenery.imaging import (
    ImageLimits,
    decode,
    encode_thumbnail,
    perceptual_hashes,
    thumbnail,
)
from scenery.library import add_embedding, set_status
from scenery.models import Image, ImageStatus, ImageTag
from scenery.storage import Storage


@dataclass
class StoredFile:
    """A decoded file whose original and grid thumbnail are on disk; no row names it yet."""

    sha256: str
    data: bytes
    extension: str
    format: str
    width: int
    height: int
    small: PILImage.Image  # the grid thumbnail: what the model embeds
    detail: PILImage.Image | None  # an extra view for a filter, when asked for
    phash: str
    mirrored_phash: str
    colours: bytes = b""  # ``scenery.colours.colour_shares`` of the grid thumbnail


def store_file(
    data: bytes,
    sha256: str,
    storage: Storage,
    limits: ImageLimits | int,
    *,
    edge: int = GRID_THUMB,
    detail: Callable[[PILImage.Image], PILImage.Image] | None = None,
    timings: dict[str, float] | None = None,
) -> StoredFile:
    """Decode, thumbnail and hash one file's bytes and write its files; raises
    ``ImageRejected`` with the reason for bytes that are not a usable image or are past
    ``limits`` (``ImageLimits.from_settings``; a bare pixel cap keeps the default budget)."""
    timings = {} if timings is None else timings
    started = time.perf_counter()
    decoded = decode(data, limits, edge=edge)
    small = thumbnail(decoded.image, GRID_THUMB)
    timings["decode + thumbnail"] = time.perf_counter() - started
    started = time.perf_counter()
    phash, mirrored_phash = perceptual_hashes(small)
    shares = colour_shares(small)
    stored = StoredFile(
        sha256=sha256,
        data=data,
        extension=decoded.extension,
        format=decoded.format,
        width=decoded.width,
        height=decoded.height,
        small=small,
        detail=detail(decoded.image) if detail else None,
        phash=phash,
        mirrored_phash=mirrored_phash,
        colours=shares,
    )
    storage.save_original(sha256, decoded.extension, data)
    storage.save_thumbnail(sha256, GRID_THUMB, encode_thumbnail(small))
    timings["hash + encode + write"] = time.perf_counter() - started
    return stored


def add_image(
    session: Session,
    stored: StoredFile,
    storage: Storage,
    *,
    status: ImageStatus,
    model: str,
    vector: np.ndarray,
    tags: Sequence[tuple[str, float]] = (),
    **fields: Any,
) -> Image:
    """The image row of a stored file, with its embedding, auto tags and status (and
    publication event); flushed, so it has its id. ``fields`` are the source's columns."""
    image = Image(
        sha256=stored.sha256,
        path=storage.original_relpath(stored.sha256, stored.extension),
        width=stored.width,
        height=stored.height,
        bytes=len(stored.data),
        format=stored.format,
        phash=stored.phash,
        colour=dominant(stored.colours) if stored.colours else None,
        colour_shares=stored.colours or None,
        **fields,
    )
    add_embedding(session, image, model, vector)  # before the flush: no lazy load
    image.tags = [ImageTag(tag=name, score=score) for name, score in tags]
    session.add(image)
    set_status(session, image, status)
    session.flush()
    return image
