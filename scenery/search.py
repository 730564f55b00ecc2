"""Queries against the gallery: text, image and "similar images", ranked by CLIP similarity."""

from __future__ import annotations

import random
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from weakref import WeakKeyDictionary

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from scenery.config import GRID_THUMB
from scenery.embed import Embedder
from scenery.errors import ImageRejected
from scenery.fetch import Fetcher, FetchFailed
from scenery.filtered_search import search_among
from scenery.imaging import ImageLimits, decode, thumbnail
from scenery.index_sync import SyncedIndex
from scenery.library import get_embedding, get_image, published_by_ids
from scenery.modality_gap import query_across_gap
from scenery.models import Image, ImageStatus
from scenery.query_cache import TextQueryCache

# Extra candidates fetched so that images unpublished since the last index refresh can be dropped
# without returning a short page.
OVERFETCH = 8
MAX_URL = 2000


@dataclass(frozen=True)
class Hit:
    image: Image
    score: float


def search_vector(
    session: Session,
    index: SyncedIndex,
    vector: np.ndarray,
    k: int,
    ef: int,
    exclude: int | None = None,
    shift: np.ndarray | None = None,
    where: Sequence[ColumnElement[bool]] = (),
    page: int = 1,
) -> list[Hit]:
    """Rank published images by cosine similarity to a query vector, best first: page ``page``
    of ``k`` (pages of one query never overlap).

    A ``shift`` steers the graph search of a text query across the modality gap (its ``ef``
    candidates are then ranked by ``vector`` itself; ``scenery.modality_gap``). ``where``
    (``ImageFilter.conditions``) keeps only the images meeting it: the search is planned by how
    many do (``scenery.filtered_search``)."""
    index.refresh()
    skip = (page - 1) * k
    wanted = skip + k + OVERFETCH + (exclude is not None)
    if where:
        allowed = matching_ids(session, where, index)
        if shift is not None:
            index.use_text_shift(shift)
        ids, scores, _ = search_among(
            index.index, vector, allowed, wanted, ef, shifted=shift is not None, candidates=ef
        )
    elif shift is None:
        ids, scores = index.index.query(vector, wanted, ef=ef)
    else:
        index.use_text_shift(shift)
        ids, scores = query_across_gap(index.index, vector, shift, wanted, max(ef, wanted))
    images = published_by_ids(session, [int(i) for i in ids])
    hits = [
        Hit(images[int(i)], float(s))
        for i, s in zip(ids, scores, strict=True)
        if int(i) in images and int(i) != exclude
    ]
    return hits[skip : skip + k]


def matching_ids(
    session: Session, where: Sequence[ColumnElement[bool]], index: SyncedIndex | None = None
) -> np.ndarray:
    """The ids of the published images meeting ``where``, sorted.

    With an ``index``, kept beside it for ``MATCH_TTL`` seconds per query while its
    publication-event watermark stays (it moves whenever an image is published or withdrawn):
    a filter keeping half of a 100,000-image gallery costs ~50 ms to read on SQLite, and the
    pages of a search, or new queries under the same filters, ask for the same set again."""
    query = select(Image.id).where(Image.status == ImageStatus.PUBLISHED, *where)
    if index is None:
        return _read_ids(session, query)
    compiled = query.compile(session.get_bind())
    key = (str(compiled), repr(sorted(compiled.params.items())), index.watermark)
    now = time.monotonic()
    with _MATCH_LOCK:
        cache = _MATCHES.setdefault(index, OrderedDict())
        held = cache.get(key)
        if held is not None and now - held[0] < MATCH_TTL:
            cache.move_to_end(key)
            return held[1]
    found = _read_ids(session, query)
    with _MATCH_LOCK:
        cache[key] = (now, found)
        while len(cache) > MATCH_CACHE:
            cache.popitem(last=False)
    return found


def _read_ids(session: Session, query: Select[int]) -> np.ndarray:
    found = np.fromiter(session.scalars(query), np.int64)
    found.sort()
    found.flags.writeable = False
    return found


MATCH_TTL = 30.0  # seconds a filter's matching ids are reused (tags or colours change apart)
MATCH_CACHE = 32  # filters remembered per index
Matches = OrderedDict[tuple[str, str, int], tuple[float, np.ndarray]]
_MATCHES: WeakKeyDictionary[SyncedIndex, Matches] = WeakKeyDictionary()
_MATCH_LOCK = threading.Lock()


def search_text(
    session: Session,
    index: SyncedIndex,
    queries: TextQueryCache,
    text: str,
    k: int,
    ef: int,
    where: Sequence[ColumnElement[bool]] = (),
    page: int = 1,
) -> list[Hit]:
    """Images that best match a text query (``ef``: the candidates its search ranks)."""
    vector = queries.vector(text)
    return search_vector(session, index, vector, k, ef, None, queries.shift, where, page)


def search_image(
    session: Session,
    index: SyncedIndex,
    embedder: Embedder,
    image: PILImage.Image,
    k: int,
    ef: int,
    where: Sequence[ColumnElement[bool]] = (),
    page: int = 1,
) -> list[Hit]:
    """Images that look most like an uploaded picture.

    The picture is embedded as every library image is: as its grid thumbnail (which also keeps
    the model's work the same for a 400-pixel upload and a 100-megapixel one)."""
    try:
        vector = embedder.encode_images([thumbnail(image, GRID_THUMB)])[0]
    except (MemoryError, OverflowError) as exc:
        raise ImageRejected(f"image too large to embed ({type(exc).__name__})") from exc
    return search_vector(session, index, vector, k, ef, where=where, page=page)


def fetch_image(fetcher: Fetcher, url: str, limits: ImageLimits) -> PILImage.Image:
    """Download an image a visitor named by URL (``Fetcher``: public addresses only, size and
    type limits) and decode it with the upload limits; FetchFailed or ImageRejected say why
    not. Nothing is kept."""
    if len(url) > MAX_URL or not url.lower().startswith(("http://", "https://")):
        raise FetchFailed("bad_url", f"not an http(s) URL of at most {MAX_URL} characters")
    with tempfile.TemporaryDirectory(prefix="scenery-url-") as folder:
        fetched = fetcher.fetch(url, Path(folder))
        data = fetched.path.read_bytes()
    return decode(data, limits).image


def similar_images(
    session: Session,
    index: SyncedIndex,
    image_id: int,
    k: int,
    ef: int,
    where: Sequence[ColumnElement[bool]] = (),
    page: int = 1,
) -> list[Hit]:
    """Published images most like a published image, excluding the image itself."""
    get_image(session, image_id)
    vector = get_embedding(session, image_id, index.model)
    return search_vector(session, index, vector, k, ef, image_id, None, where, page)


def reorder(hits: list[Hit], sort: str, seed: int = 0) -> list[Hit]:
    """Search results in the order asked for: ``relevance`` as ranked, ``newest`` by
    publication, ``random`` shuffled by ``seed`` (the same seed, the same order)."""
    if sort == "newest":
        return sorted(hits, key=_published, reverse=True)
    if sort == "random":
        shuffled = list(hits)
        random.Random(seed).shuffle(shuffled)
        return shuffled
    return hits


def _published(hit: Hit) -> tuple[datetime, int]:
    at = hit.image.published_at
    return (at.replace(tzinfo=None) if at is not None else datetime.min), hit.image.id
