"""images.colour and images.colour_shares: the leading named colour and every named colour's
share (``scenery.colours``), computed here for the images already stored, from their grid
thumbnails (an image whose thumbnail is gone is left without, and filters by colour skip it)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00
"""

import logging
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from PIL import Image, UnidentifiedImageError

from scenery.colours import colour_shares, dominant
from scenery.config import GRID_THUMB
from scenery.storage import Storage

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)
BATCH = 500


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("colour", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("colour_shares", sa.LargeBinary(), nullable=True))
        batch.create_index("ix_images_colour", ["colour"])
    root = op.get_context().config.attributes.get("data_root")  # type: ignore[union-attr]
    if root is not None:
        backfill(Storage(Path(root)))


def backfill(storage: Storage) -> None:
    """Summarise the colours of every stored image from its grid thumbnail, a batch at a time."""
    bind = op.get_bind()
    images = sa.table(
        "images",
        sa.column("id", sa.Integer),
        sa.column("sha256", sa.String),
        sa.column("colour", sa.String),
        sa.column("colour_shares", sa.LargeBinary),
    )
    last, done = 0, 0
    while True:
        rows = bind.execute(
            sa.select(images.c.id, images.c.sha256)
            .where(images.c.id > last)
            .order_by(images.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        for image_id, sha256 in rows:
            last = image_id
            try:
                with Image.open(storage.thumb_path(sha256, GRID_THUMB)) as thumb:
                    shares = colour_shares(thumb)
            except (OSError, UnidentifiedImageError, ValueError):
                continue
            bind.execute(
                images.update()
                .where(images.c.id == image_id)
                .values(colour=dominant(shares), colour_shares=shares)
            )
            done += 1
    log.info("colours summarised for %d stored images", done)


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_index("ix_images_colour")
        batch.drop_column("colour_shares")
        batch.drop_column("colour")
