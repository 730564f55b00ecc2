"""Dropping the files of long-rejected images; their rows (and hashes) stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from scenery.context import Context
from scenery.db import transaction
from scenery.models import Image, ImageStatus, utcnow


def purge_rejected_files(ctx: Context, older_than_days: int) -> int:
    """Delete files of images rejected over ``older_than_days`` ago; return how many."""
    cutoff = utcnow() - timedelta(days=older_than_days)
    with transaction(ctx.sessions) as session:
        images = session.scalars(
            select(Image).where(
                Image.status == ImageStatus.REJECTED,
                Image.purged_at.is_(None),
                Image.created_at < cutoff,
            )
        ).all()
        for image in images:
            # The row keeps sha256 and phash, so the same file is never fetched and judged again.
            ctx.storage.remove(image.sha256, image.extension)
            image.purged_at = utcnow()
        return len(images)
