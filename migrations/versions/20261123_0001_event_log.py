"""The event log, the object catalog and projection checkpoints.

Revision ID: 20261123_0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from eventstore.store.schema import UTCDateTime

revision: str = "20261123_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

key_text = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("position", position, autoincrement=False, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("stream", key_text, nullable=False),
        sa.Column("event_name", key_text, nullable=False),
        sa.Column("event_time", UTCDateTime(), nullable=False),
        sa.Column("bucket", key_text, nullable=False),
        sa.Column("key", key_text, nullable=False),
        sa.Column("version_id", sa.Text(), nullable=True),
        sa.Column("sequencer", sa.String(64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("principal_id", sa.Text(), nullable=True),
        sa.Column("source_ip", sa.Text(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("region", sa.Text(), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("causation_id", sa.Text(), nullable=True),
        sa.Column("correlation_id", sa.Text(), nullable=True),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_events"),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
    )
    op.create_index("ix_events_bucket_key_position", "events", ["bucket", "key", "position"])
    op.create_index("ix_events_bucket_event_time", "events", ["bucket", "event_time"])
    op.create_index("ix_events_event_time", "events", ["event_time"])
    op.create_index("ix_events_principal_id_event_time", "events", ["principal_id", "event_time"])

    op.create_table(
        "object_versions",
        sa.Column("bucket", key_text, nullable=False),
        sa.Column("key", key_text, nullable=False),
        sa.Column("slot", sa.Text(), nullable=False),
        sa.Column("version_id", sa.Text(), nullable=True),
        sa.Column("exists", sa.Boolean(), nullable=False),
        sa.Column("delete_marker", sa.Boolean(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_sequencer", sa.String(64), nullable=True),
        sa.Column("last_time", UTCDateTime(), nullable=False),
        sa.Column("last_position", position, nullable=False),
        sa.Column("created_sequencer", sa.String(64), nullable=True),
        sa.Column("created_time", UTCDateTime(), nullable=True),
        sa.Column("created_position", position, nullable=True),
        sa.PrimaryKeyConstraint("bucket", "key", "slot", name="pk_object_versions"),
    )

    op.create_table(
        "object_catalog",
        sa.Column("bucket", key_text, nullable=False),
        sa.Column("key", key_text, nullable=False),
        sa.Column("version_id", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("sequencer", sa.String(64), nullable=True),
        sa.Column("last_event_name", sa.Text(), nullable=False),
        sa.Column("last_event_time", UTCDateTime(), nullable=False),
        sa.Column("last_event_version_id", sa.Text(), nullable=True),
        sa.Column("last_position", position, nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "key", name="pk_object_catalog"),
    )

    op.create_table(
        "projection_checkpoints",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", position, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("error_position", position, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_projection_checkpoints"),
    )


def downgrade() -> None:
    op.drop_table("projection_checkpoints")
    op.drop_table("object_catalog")
    op.drop_table("object_versions")
    op.drop_index("ix_events_principal_id_event_time", table_name="events")
    op.drop_index("ix_events_event_time", table_name="events")
    op.drop_index("ix_events_bucket_event_time", table_name="events")
    op.drop_index("ix_events_bucket_key_position", table_name="events")
    op.drop_table("events")
