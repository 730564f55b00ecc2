"""image_tags: auto tags from the tag vocabulary with their zero-shot probabilities
(``scenery.tags``). Images stored before it get theirs from ``scenery retag``, which needs the
CLIP model (a migration does not load it).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 10:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "image_tags",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=48), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("image_id", "tag"),
    )
    op.create_index("ix_image_tags_tag", "image_tags", ["tag"])


def downgrade() -> None:
    op.drop_index("ix_image_tags_tag", table_name="image_tags")
    op.drop_table("image_tags")
