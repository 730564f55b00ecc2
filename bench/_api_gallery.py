"""A large synthetic gallery for bench/api_latency.py, in a real SQLite data dir.

The sample photos are imported the ordinary way (``scenery import``), so their originals,
thumbnails and embeddings exist; then published image rows with synthetic CLIP-like embeddings
(``bench._search_data``) are inserted in bulk until the gallery holds the number asked for, and
each vector space's HNSW snapshot is built once here, so a server starts by loading it. A data
dir built here carries a marker (``bench-gallery.json``) and is reused when it matches.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select

from bench._photos import PHOTOS
from bench._search_data import image_like, make_world
from scenery.config import Settings
from scenery.context import Context
from scenery.embed import load_embedder
from scenery.models import Embedding, Image, ImageStatus, PublicationEvent

BIN = Path(sys.executable).parent
MARKER = "bench-gallery.json"
CHUNK = 10_000
SEED = 20240611


@dataclass(frozen=True)
class Gallery:
    """A built data dir: how many published images, in which vector spaces, how it was made."""

    data_dir: Path
    images: int
    photos: int
    spaces: tuple[str, ...]
    dim: int
    reused: bool
    insert_seconds: float = 0.0
    index_seconds: float = 0.0


def space_of(settings: Settings) -> tuple[str, int]:
    """The vector space name and width a server with these settings searches (no model load)."""
    embedder = load_embedder(settings)
    return embedder.name, embedder.dim


def prepare(settings_by_path: list[Settings], images: int, env: dict[str, str]) -> Gallery:
    """Reuse the data dir if its marker matches, else build the gallery there (empty dir only)."""
    first = settings_by_path[0]
    data_dir = first.root
    spaces = sorted({space_of(s)[0] for s in settings_by_path})
    marker = data_dir / MARKER
    if marker.exists():
        made = json.loads(marker.read_text())
        if (
            made.get("images") == images
            and made.get("model") == first.clip_model
            and set(spaces) <= set(made.get("spaces", []))
        ):
            return Gallery(
                data_dir, images, made["photos"], tuple(made["spaces"]), made["dim"], True
            )
        raise SystemExit(
            f"{data_dir} holds a bench gallery of {made.get('images')} images of "
            f"{made.get('spaces')}; give another --data-dir (or delete it) for {images} of {spaces}"
        )
    if data_dir.exists() and any(data_dir.iterdir()):
        raise SystemExit(f"{data_dir} is not empty and was not made by this bench")
    return build(settings_by_path, images, env)


def build(settings_by_path: list[Settings], images: int, env: dict[str, str]) -> Gallery:
    """Import the sample photos (``env``: the first settings'), insert synthetic rows up to
    ``images`` in every space the settings search, and build each space's snapshot."""
    settings = settings_by_path[0]
    spaces = sorted({space_of(s)[0] for s in settings_by_path})
    photos = sorted(PHOTOS.glob("*.jpg"))
    if images < len(photos):
        raise SystemExit(f"--images must be at least the {len(photos)} sample photos")
    subprocess.run(
        [BIN / "scenery", "import", str(PHOTOS)], env=env, check=True, stdout=subprocess.DEVNULL
    )
    ctx = Context(settings)
    try:
        started = time.perf_counter()
        imported_space, dim = space_of(settings)
        with ctx.sessions() as session:
            stored = session.scalar(
                select(func.count()).select_from(Image).where(Image.status == ImageStatus.PUBLISHED)
            )
        if stored != len(photos):
            raise SystemExit(f"importing the sample photos published {stored}, not {len(photos)}")
        copy_photo_embeddings(ctx, imported_space, [s for s in spaces if s != imported_space])
        insert_synthetic(ctx, spaces, dim, images - len(photos))
        insert_seconds = time.perf_counter() - started
        started = time.perf_counter()
        build_snapshots(settings_by_path)
        index_seconds = time.perf_counter() - started
    finally:
        ctx.close()
    made = {"images": images, "photos": len(photos), "model": settings.clip_model}
    made |= {"spaces": spaces, "dim": dim, "seed": SEED}
    (settings.root / MARKER).write_text(json.dumps(made, indent=2))
    return Gallery(
        settings.root, images, len(photos), tuple(spaces), dim, False, insert_seconds, index_seconds
    )


def copy_photo_embeddings(ctx: Context, source: str, targets: list[str]) -> None:
    """Give the imported photos an embedding in each other space a server searches (a copy:
    what a search costs does not depend on the vector's values)."""
    if not targets:
        return
    with ctx.engine.begin() as conn:
        rows = conn.execute(
            select(Embedding.image_id, Embedding.dim, Embedding.vector).where(
                Embedding.model == source
            )
        ).all()
        for target in targets:
            conn.execute(
                insert(Embedding),
                [{"image_id": i, "model": target, "dim": d, "vector": v} for i, d, v in rows],
            )


def insert_synthetic(ctx: Context, spaces: list[str], dim: int, count: int) -> None:
    """Insert ``count`` published images with clustered unit embeddings, ``CHUNK`` per commit."""
    rng = np.random.default_rng(SEED)
    world = make_world(dim, rng)
    with ctx.sessions() as session:
        template = session.scalars(select(Image).order_by(Image.id).limit(1)).one()
        first_id = int(session.scalar(select(func.max(Image.id))) or 0) + 1
        fields = {
            "path": template.path,
            "width": template.width,
            "height": template.height,
            "bytes": template.bytes,
            "format": template.format,
            "phash": template.phash,
        }
    now = datetime.now(UTC)
    for start in range(0, count, CHUNK):
        ids = range(first_id + start, first_id + min(count, start + CHUNK))
        vectors = image_like(world, len(ids), rng)
        with ctx.engine.begin() as conn:
            conn.execute(insert(Image), list(image_rows(ids, fields, now)))
            for space in spaces:
                conn.execute(
                    insert(Embedding),
                    [
                        {"image_id": i, "model": space, "dim": dim, "vector": v.tobytes()}
                        for i, v in zip(ids, vectors, strict=True)
                    ],
                )
            conn.execute(
                insert(PublicationEvent),
                [{"image_id": i, "published": True, "at": now} for i in ids],
            )


def image_rows(ids: range, fields: dict[str, Any], now: datetime) -> Iterator[dict[str, Any]]:
    """Published image rows that point at a sample photo's original, each with its own hash."""
    for image_id in ids:
        moment = now - timedelta(seconds=image_id)
        yield fields | {
            "id": image_id,
            "sha256": hashlib.sha256(f"bench-synthetic-{image_id}".encode()).hexdigest(),
            "title": None,
            "status": ImageStatus.PUBLISHED,
            "source": "local",
            "source_name": f"synthetic-{image_id:07d}.jpg",
            "curation": {},
            "created_at": moment,
            "updated_at": moment,
            "published_at": moment,
        }


def build_snapshots(settings_by_path: list[Settings]) -> None:
    """Rebuild each space's index from the database once and save it as the current snapshot."""
    for current in settings_by_path[0].index_dir.glob("*/CURRENT"):
        current.unlink()  # the import's snapshot holds the photos only: rebuild, not catch up
    built: set[str] = set()
    for settings in settings_by_path:
        space = space_of(settings)[0]
        if space in built:
            continue
        built.add(space)
        ctx = Context(settings)
        try:
            ctx.index.save()  # no snapshot: opening the index rebuilds it from the database
        finally:
            ctx.close()
