"""Dropping the files of long-rejected images; their rows (and hashes) stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from scenery.context import Context
from scenery.db import transaction
from scenery.models import Image, ImageStatus, utcnow
from scenery.review import remove_files


def purge_rejected_files(ctx: Context, older_than_days: int) -> int:
    """Delete files of images rejected over ``older_than_days`` ago; return how many.

    The rows are locked and marked purged first; the files go once that has committed, so an
    approval racing the purge either comes first (and the image is no longer a candidate) or
    finds it purged, and a purge that rolls back keeps its files."""
    cutoff = utcnow() - timedelta(days=older_than_days)
    with transaction(ctx.sessions) as session:
        images = session.scalars(
            select(Image)
            .where(
                Image.status == ImageStatus.REJECTED,
                Image.purged_at.is_(None),
                Image.created_at < cutoff,
            )
            .order_by(Image.id)
            .with_for_update(skip_locked=True)  # one being decided on now is not long-rejected
        ).all()
        for image in images:
            # The row keeps sha256 and phash, so the same file is never fetched and judged again.
            image.purged_at = utcnow()
        files = [(image.sha256, image.extension) for image in images]
    remove_files(ctx.storage, files)
    return len(files)
