"""The results of `eventstore verify`, for `eventstore status` (when the chain last passed,
and its anchor).

Revision ID: 20261129_0005
Revises: 20261129_0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from eventstore.store.schema import Position, UTCDateTime

revision: str = "20261129_0005"
down_revision: str | None = "20261129_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "verify_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("checked", Position, nullable=False),
        sa.Column("head_position", Position, nullable=True),
        sa.Column("head_hash", sa.String(64), nullable=True),
        sa.Column("anchor", sa.Text(), nullable=True),
        sa.Column("first_bad_position", Position, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_verify_runs"),
    )


def downgrade() -> None:
    op.drop_table("verify_runs")
