"""posts: resolution retries (attempts, when to try again, the setting a post waits for)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREDENTIALS = {
    "imgur_client_id": "%needs SCENERY_IMGUR_CLIENT_ID",
    "flickr_api_key": "%needs SCENERY_FLICKR_API_KEY",
}


def upgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.add_column(
            sa.Column("resolve_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("needs", sa.String(length=64), nullable=True))
    # Posts skipped before for a missing credential wait for it now, and resolve again once
    # it is set; those skipped after an API outage are not told apart and stay skipped.
    for setting, pattern in CREDENTIALS.items():
        op.execute(
            sa.text(
                "UPDATE posts SET outcome = 'failed', needs = :setting "
                "WHERE outcome = 'skipped' AND reason LIKE :pattern"
            ).bindparams(setting=setting, pattern=pattern)
        )


def downgrade() -> None:
    op.execute("UPDATE posts SET outcome = 'skipped' WHERE outcome = 'failed'")
    with op.batch_alter_table("posts") as batch:
        batch.drop_column("needs")
        batch.drop_column("retry_at")
        batch.drop_column("resolve_attempts")
