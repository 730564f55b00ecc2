"""Image records: lookups, listing, embeddings, and status changes (which feed the index log)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import BigInteger, ColumnElement, cast, func, select
from sqlalchemy.orm import Session

from scenery.errors import NotFound
from scenery.models import Embedding, Image, ImageStatus, ImageTag, PublicationEvent, utcnow

MAX_ID = 2**31 - 1
"""The largest row id: id columns are INTEGER, 32 bits on PostgreSQL, which refuses to compare
them with anything larger (SQLite stops at 2**63 - 1). Larger ids name nothing."""


def is_row_id(value: int) -> bool:
    """Whether ``value`` can be a row id; lookups answer NotFound for any other number."""
    return 0 < value <= MAX_ID


def set_status(session: Session, image: Image, status: ImageStatus) -> None:
    """Change an image's status, logging a publication event when visibility changes."""
    was_published = image.status == ImageStatus.PUBLISHED
    image.status = status
    now_published = status == ImageStatus.PUBLISHED
    if now_published and not was_published:
        image.published_at = utcnow()
    if now_published != was_published:
        session.flush()  # assigns image.id to new rows
        session.add(PublicationEvent(image_id=image.id, published=now_published))


def get_image(session: Session, image_id: int, *, published_only: bool = True) -> Image:
    """Fetch one image, or raise NotFound (unpublished images count as missing by default)."""
    image = session.get(Image, image_id) if is_row_id(image_id) else None
    if image is None or (published_only and image.status != ImageStatus.PUBLISHED):
        raise NotFound(f"no image {image_id}")
    return image


def find_by_sha(session: Session, sha256s: Sequence[str]) -> dict[str, int]:
    """Map the given content hashes that are already stored to their image ids."""
    if not sha256s:
        return {}
    rows = session.execute(select(Image.sha256, Image.id).where(Image.sha256.in_(sha256s)))
    return {sha: image_id for sha, image_id in rows}


def published_page(
    session: Session,
    page: int,
    per_page: int,
    where: Sequence[ColumnElement[bool]] = (),
    shuffle: int | None = None,
) -> tuple[list[Image], int]:
    """Published images (those meeting ``where``, e.g. an ``ImageFilter``'s conditions), newest
    first, or in the order ``shuffle`` (a seed) gives: one page of them and their total count.

    A seed always gives the same order, so the pages of one visit neither repeat nor skip."""
    total = count_published(session, where)
    order = (
        (Image.published_at.desc(), Image.id.desc())
        if shuffle is None
        else (shuffled(shuffle), Image.id)
    )
    query = (
        select(Image)
        .where(Image.status == ImageStatus.PUBLISHED, *where)
        .order_by(*order)
        .offset(max(page - 1, 0) * per_page)
        .limit(per_page)
    )
    return list(session.scalars(query)), total


SHUFFLE_MODULUS = 4_294_967_311  # a prime above 2**32: distinct ids get distinct keys


def shuffled(seed: int) -> ColumnElement[int]:
    """A sort key that orders ids pseudo-randomly for ``seed``, the same on every database:
    ``(id * a + seed) mod p`` with ``a`` drawn from the seed (below 2**31, so the product of
    a 32-bit id stays inside a signed 64-bit integer)."""
    multiplier = 1 + (seed * 2_654_435_761) % (2**31 - 1)
    return (cast(Image.id, BigInteger) * multiplier + seed) % SHUFFLE_MODULUS


def count_published(session: Session, where: Sequence[ColumnElement[bool]] = ()) -> int:
    query = (
        select(func.count()).select_from(Image).where(Image.status == ImageStatus.PUBLISHED, *where)
    )
    return int(session.scalar(query) or 0)


def published_sources(session: Session) -> dict[str, int]:
    """Published images per subreddit and ``local`` for imported files, most first. Names that
    differ only in case are one subreddit, shown as most of its images spell it."""
    name = func.coalesce(Image.reddit_subreddit, "local")
    rows = session.execute(
        select(name, func.count()).where(Image.status == ImageStatus.PUBLISHED).group_by(name)
    )
    spellings: dict[str, list[tuple[int, str]]] = {}
    for source, n in rows:
        spellings.setdefault(str(source).casefold(), []).append((int(n), str(source)))
    merged = {max(found)[1]: sum(n for n, _ in found) for found in spellings.values()}
    return dict(sorted(merged.items(), key=lambda item: (-item[1], item[0].casefold())))


def status_counts(session: Session) -> dict[ImageStatus, int]:
    """How many images have each status (statuses with none are left out)."""
    rows = session.execute(select(Image.status, func.count()).group_by(Image.status))
    return {status: int(n) for status, n in rows}


def published_by_ids(session: Session, ids: Sequence[int]) -> dict[int, Image]:
    """The published images among ``ids``, keyed by id."""
    if not len(ids):
        return {}
    query = select(Image).where(Image.id.in_(ids), Image.status == ImageStatus.PUBLISHED)
    return {image.id: image for image in session.scalars(query)}


def add_embedding(session: Session, image: Image, model: str, vector: np.ndarray) -> None:
    """Attach a float32 embedding for one model to an image."""
    vector = np.asarray(vector, dtype=np.float32)
    image.embeddings.append(
        Embedding(model=model, dim=int(vector.shape[0]), vector=vector.tobytes())
    )


def get_embedding(session: Session, image_id: int, model: str) -> np.ndarray:
    """An image's stored embedding for a model, or NotFound."""
    row = session.get(Embedding, (image_id, model)) if is_row_id(image_id) else None
    if row is None:
        raise NotFound(f"image {image_id} has no embedding for {model}")
    return np.frombuffer(row.vector, dtype=np.float32)


def tag_counts(session: Session) -> dict[str, int]:
    """How many published images carry each auto tag."""
    rows = session.execute(
        select(ImageTag.tag, func.count())
        .join(Image, Image.id == ImageTag.image_id)
        .where(Image.status == ImageStatus.PUBLISHED)
        .group_by(ImageTag.tag)
    )
    return {str(tag): int(n) for tag, n in rows}
