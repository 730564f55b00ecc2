"""Inputs for bench/load.py: a gallery of many published images, and fresh photos to ingest.

The gallery is written the way ``scenery.importer`` writes an import: content-addressed
originals and 400 px grid thumbnails through ``Storage`` (so thumbnail requests read real
files), then published ``Image`` rows with their publication events and ``add_embedding``.
What is not real: the images are crops, mirrors and colour shifts of the 15 sample photos at
400 px, and their embeddings are random unit vectors near the tiny model's embedding of the
photo each one came from (embedding 10,000 images one by one would take most of the run).
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageOps

from bench._photos import PHOTOS
from scenery.cli_support import progress_bar
from scenery.config import GRID_THUMB
from scenery.context import Context
from scenery.db import transaction
from scenery.embed import normalise
from scenery.imaging import encode_thumbnail, perceptual_hash, thumbnail
from scenery.library import add_embedding
from scenery.models import Image, ImageStatus, PublicationEvent, utcnow

SOURCE_EDGE = 560  # the sample photos are cut down to this; gallery images are windows of them
SPREAD = 0.03  # per-dimension noise around a photo's embedding: cosine about 0.97 at 64 dims
BATCH = 200  # rows per transaction


@dataclass(frozen=True)
class Made:
    """One generated gallery image."""

    n: int
    source: int  # which sample photo it came from
    sha256: str
    original: bytes
    thumb: bytes
    width: int
    height: int
    phash: str


@cache
def _sources() -> list[PILImage.Image]:
    """The sample photos at SOURCE_EDGE px (loaded once per process)."""
    paths = sorted(PHOTOS.glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no sample photos in {PHOTOS}")
    return [thumbnail(PILImage.open(p).convert("RGB"), SOURCE_EDGE) for p in paths]


def make_image(n: int) -> Made:
    """Image ``n``: a random 400 px window of a sample photo, maybe mirrored, colours shifted.

    The original is as small as its grid thumbnail (the same JPEG bytes): only thumbnails are
    requested, and one resize per image keeps 10,000 of them quick to make."""
    sources = _sources()
    source = n % len(sources)
    rng = np.random.default_rng(n)
    image = sources[source]
    w, h = image.size
    cw, ch = w * GRID_THUMB // SOURCE_EDGE, h * GRID_THUMB // SOURCE_EDGE
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    image = image.crop((left, top, left + cw, top + ch))  # no resize: resizing is the slow part
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    pixels = np.asarray(image, dtype=np.float32) * rng.uniform(0.8, 1.2, 3).astype(np.float32)
    image = PILImage.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")
    jpeg = encode_thumbnail(image)
    return Made(
        n=n,
        source=source,
        sha256=hashlib.sha256(jpeg).hexdigest(),
        original=jpeg,
        thumb=jpeg,
        width=image.width,
        height=image.height,
        phash=perceptual_hash(image),
    )


def build_gallery(ctx: Context, count: int) -> None:
    """Store ``count`` published images with files, rows and embeddings (no index yet)."""
    embedder = ctx.embedder
    centres = embedder.encode_images([thumbnail(s, GRID_THUMB) for s in _sources()])
    rng = np.random.default_rng(20240601)
    # spawn, not fork: this process has torch's thread pools running by now
    makers = ProcessPoolExecutor(mp_context=multiprocessing.get_context("spawn"))
    try:
        with (
            ThreadPoolExecutor(8) as writers,  # each write ends in an fsync: overlap them
            progress_bar() as progress,
        ):
            task = progress.add_task(f"building {count:,} gallery images", total=count)
            # The makers work ahead while this process writes files and rows.
            made_all = makers.map(make_image, range(count), chunksize=20)
            for made in _batches(made_all, BATCH):
                list(writers.map(lambda m: _save_files(ctx, m), made))
                noise = rng.normal(0, SPREAD, (len(made), embedder.dim)).astype(np.float32)
                vectors = normalise(centres[[m.source for m in made]] + noise)
                _insert(ctx, embedder.name, made, vectors)
                progress.advance(task, len(made))
    finally:  # interrupted: drop the images not yet made rather than wait for them
        makers.shutdown(wait=True, cancel_futures=True)


def _save_files(ctx: Context, made: Made) -> None:
    ctx.storage.save_original(made.sha256, "jpg", made.original)
    ctx.storage.save_thumbnail(made.sha256, GRID_THUMB, made.thumb)


def _insert(ctx: Context, model: str, made: list[Made], vectors: np.ndarray) -> None:
    """The rows ``Importer._insert`` writes, with ``set_status``'s effects (published now,
    one publication event each) written for the whole batch at once: ``set_status`` flushes
    every row by itself, which made the rows the slowest part of building 10,000."""
    now = utcnow()
    with transaction(ctx.sessions) as session:
        images = []
        for item, vector in zip(made, vectors, strict=True):
            image = Image(
                sha256=item.sha256,
                path=ctx.storage.original_relpath(item.sha256, "jpg"),
                width=item.width,
                height=item.height,
                bytes=len(item.original),
                format="JPEG",
                phash=item.phash,
                source="local",
                source_name=f"load-{item.n:05d}.jpg",
                curation={},
                status=ImageStatus.PUBLISHED,
                published_at=now,
            )
            add_embedding(session, image, model, vector)
            images.append(image)
        session.add_all(images)
        session.flush()
        session.add_all(PublicationEvent(image_id=i.id, published=True) for i in images)


def _batches(items: Iterator[Made], size: int) -> Iterator[list[Made]]:
    batch: list[Made] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def fresh_photo(seed: int, size: tuple[int, int] = (1600, 1067)) -> bytes:
    """A distinct landscape-sized JPEG for the ingest to find (gradient sky, random shapes):
    unlike every gallery image, so it passes the duplicate checks and is published."""
    rng = np.random.default_rng(1_000_000 + seed)
    w, h = size
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = (top * (1 - ramp) + bottom * ramp).astype(np.uint8)
    image = PILImage.fromarray(np.broadcast_to(sky, (h, w, 3)).copy(), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        rx, ry = int(rng.integers(40, w // 3)), int(rng.integers(40, h // 3))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=colour)
        else:
            draw.rectangle((x - rx, y - ry, x + rx, y + ry), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()
