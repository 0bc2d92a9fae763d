"""Projection rebuild state: a shadow build's version, position and event filter.

Also seeds the object catalog's checkpoint (version 1 at position 0), so a new database
starts with the catalog live and kept inline by every append.

Revision ID: 20261124_0002
Revises: 20261123_0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from eventstore.store.schema import UTCDateTime

revision: str = "20261124_0002"
down_revision: str | None = "20261123_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("projection_checkpoints") as batch:
        batch.add_column(sa.Column("live_filter", sa.Text(), nullable=True))
        batch.add_column(sa.Column("rebuild_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rebuild_position", position, nullable=True))
        batch.add_column(sa.Column("rebuild_filter", sa.Text(), nullable=True))
    checkpoints = sa.table(
        "projection_checkpoints",
        sa.column("name", sa.String()),
        sa.column("version", sa.Integer()),
        sa.column("position", position),
        sa.column("updated_at", UTCDateTime()),
    )
    connection = op.get_bind()
    seeded = connection.execute(
        sa.select(sa.func.count())
        .select_from(checkpoints)
        .where(checkpoints.c.name == "object_catalog")
    ).scalar()
    if not seeded:
        head = connection.execute(sa.text("SELECT max(position) FROM events")).scalar() or 0
        if head == 0:
            op.bulk_insert(
                checkpoints,
                [
                    {
                        "name": "object_catalog",
                        "version": 1,
                        "position": 0,
                        "updated_at": datetime.now(UTC),
                    }
                ],
            )


def downgrade() -> None:
    with op.batch_alter_table("projection_checkpoints") as batch:
        batch.drop_column("rebuild_filter")
        batch.drop_column("rebuild_position")
        batch.drop_column("rebuild_version")
        batch.drop_column("live_filter")
