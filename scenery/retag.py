"""Tag every stored image again from its embedding: after the vocabulary file was edited or
the CLIP model changed (``scenery retag``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sqlalchemy import delete, select

from scenery.context import Context
from scenery.db import transaction
from scenery.errors import SceneryError
from scenery.models import Embedding, ImageTag

BATCH = 1000


def retag(ctx: Context, progress: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Replace every image's auto tags with the vocabulary's verdict on its embedding under the
    current model; (images tagged, tags given). Images without such an embedding are left."""
    tagger = ctx.tagger
    if tagger is None:
        raise SceneryError("auto tags are off (SCENERY_AUTO_TAGS=false)")
    tagger.vocabulary()  # a bad vocabulary file stops here, before anything changes
    model, last, images, given = ctx.embedder.name, 0, 0, 0
    while True:
        with ctx.sessions() as session:
            rows = session.execute(
                select(Embedding.image_id, Embedding.vector)
                .where(Embedding.model == model, Embedding.image_id > last)
                .order_by(Embedding.image_id)
                .limit(BATCH)
            ).all()
        if not rows:
            return images, given
        ids = [int(image_id) for image_id, _ in rows]
        vectors = np.stack([np.frombuffer(vector, np.float32) for _, vector in rows])
        tags = tagger.tags(vectors)
        with transaction(ctx.sessions) as session:
            session.execute(delete(ImageTag).where(ImageTag.image_id.in_(ids)))
            session.add_all(
                ImageTag(image_id=image_id, tag=name, score=score)
                for image_id, tagged in zip(ids, tags, strict=True)
                for name, score in tagged
            )
        last, images = ids[-1], images + len(ids)
        given += sum(len(t) for t in tags)
        if progress is not None:
            progress(len(ids))
