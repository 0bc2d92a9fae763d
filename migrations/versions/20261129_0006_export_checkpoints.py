"""Checkpoints of `eventstore export`: how far each destination (a directory, an S3 prefix)
holds the log as Parquet, and the range a run was writing when it stopped.

Not rows of `projection_checkpoints`: an export's effects are files outside the database, so
its checkpoint cannot commit with them; it is keyed by destination (one log may feed several
lakes), has no version, shadow tables or rebuilds, and must not show as a projection.

Revision ID: 20261129_0006
Revises: 20261129_0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261129_0006"
down_revision: str | None = "20261129_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "export_checkpoints",
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("position", position, nullable=False),
        sa.Column("position_hash", sa.String(64), nullable=True),
        sa.Column("pending_until", position, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("destination", name="pk_export_checkpoints"),
    )


def downgrade() -> None:
    op.drop_table("export_checkpoints")
