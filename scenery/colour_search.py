"""Similar by colour: the published images whose colour summaries are nearest an image's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from scenery.colours import NAMES, as_vector, colour_distance
from scenery.index import best_of
from scenery.library import get_image, published_by_ids
from scenery.models import Image, ImageStatus
from scenery.search import Hit

MIN_ALIKE = 0.25  # photos sharing less of their colours than this are not "similar"
LEADING = 3  # candidates: photos led by one of the image's three largest colours


def similar_colours(
    session: Session,
    image_id: int,
    k: int,
    where: Sequence[ColumnElement[bool]] = (),
    page: int = 1,
) -> list[Hit]:
    """Published images (meeting ``where``) nearest in colour to a published image, nearest
    first, the image itself left out. A hit's score is the share of the photo alike (1 - the
    colour distance). An image without a colour summary has no such neighbours."""
    image = get_image(session, image_id)
    if image.colour_shares is None:
        return []
    # Only photos led by one of this one's main colours can share most of its colours: the
    # indexed leading colour keeps the scan to them instead of the whole gallery.
    leading = {NAMES[i] for i in np.argsort(-as_vector(image.colour_shares))[:LEADING]}
    rows = session.execute(
        select(Image.id, Image.colour_shares).where(
            Image.status == ImageStatus.PUBLISHED,
            Image.colour.in_(sorted(leading | {image.colour or ""})),
            Image.id != image_id,
            *where,
        )
    ).all()
    if not rows:
        return []
    ids = np.fromiter((row[0] for row in rows), np.int64, len(rows))
    shares = np.stack([as_vector(bytes(row[1] or b"")) for row in rows])
    alike = 1.0 - colour_distance(image.colour_shares, shares)
    close = alike >= MIN_ALIKE
    ids, alike = ids[close], alike[close]
    skip = (page - 1) * k
    best, scores = best_of(ids, alike.astype(np.float32), skip + k)
    images = published_by_ids(session, [int(i) for i in best])
    hits = [Hit(images[int(i)], float(s)) for i, s in zip(best, scores, strict=True)]
    return hits[skip:]
