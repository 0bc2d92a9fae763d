"""The tables, as SQLAlchemy Core metadata. Alembic migrations create them; this module
only describes them for queries (and for the test that the two agree)."""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from eventstore.core.parsing import MAX_SEQUENCER_CHARS

# The migration that matches this metadata; the store refuses an older database.
SCHEMA_REVISION = "20261129_0006"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The event store's own tables: created and changed only by the Alembic migrations.
metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# Tables of projections other than the catalog: the projection runner creates them (as
# shadow tables, swapped in when built), since projections come and go with code.
projection_metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out: naive UTC in SQLite, timestamptz in PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


def copy_table(table: sa.Table, target: sa.MetaData, name: str) -> sa.Table:
    """The same columns and indexes under another name, with constraint and index names
    derived afresh from the new name (PostgreSQL wants them unique per schema)."""
    columns = [
        sa.Column(
            column.name,
            column.type,
            primary_key=column.primary_key,
            nullable=column.nullable,
            autoincrement=column.autoincrement,
        )
        for column in table.columns
    ]
    indexes = [
        sa.Index(None, *(column.name for column in index.columns), unique=bool(index.unique))
        for index in table.indexes
    ]
    uniques = [
        sa.UniqueConstraint(*(column.name for column in constraint.columns))
        for constraint in table.constraints
        if isinstance(constraint, sa.UniqueConstraint)
    ]
    return sa.Table(name, target, *columns, *indexes, *uniques)


# Keys compare bytewise ("C" collation on PostgreSQL) so prefix ranges use the index.
KeyText = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

events = sa.Table(
    "events",
    metadata,
    sa.Column("position", Position, primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("stream", KeyText, nullable=False),
    sa.Column("event_name", KeyText, nullable=False),
    sa.Column("event_time", UTCDateTime(), nullable=False),
    sa.Column("bucket", KeyText, nullable=False),
    sa.Column("key", KeyText, nullable=False),
    sa.Column("version_id", sa.Text(), nullable=True),
    sa.Column("sequencer", sa.String(MAX_SEQUENCER_CHARS), nullable=True),
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
    sa.Index(None, "bucket", "key", "event_time"),
    sa.Index(None, "event_time"),
    sa.Index(None, "principal_id", "event_time"),
)

object_versions = sa.Table(
    "object_versions",
    metadata,
    sa.Column("bucket", KeyText, primary_key=True),
    sa.Column("key", KeyText, primary_key=True),
    sa.Column("slot", sa.Text(), primary_key=True),  # version id, or "null" when there is none
    sa.Column("version_id", sa.Text(), nullable=True),
    sa.Column("exists", sa.Boolean(), nullable=False),
    sa.Column("delete_marker", sa.Boolean(), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=True),
    sa.Column("etag", sa.Text(), nullable=True),
    sa.Column("last_sequencer", sa.String(64), nullable=True),
    sa.Column("last_time", UTCDateTime(), nullable=False),
    sa.Column("last_position", Position, nullable=False),
    sa.Column("created_sequencer", sa.String(64), nullable=True),
    sa.Column("created_time", UTCDateTime(), nullable=True),
    sa.Column("created_position", Position, nullable=True),
)

object_catalog = sa.Table(
    "object_catalog",
    metadata,
    sa.Column("bucket", KeyText, primary_key=True),
    sa.Column("key", KeyText, primary_key=True),
    sa.Column("version_id", sa.Text(), nullable=True),
    sa.Column("size", sa.BigInteger(), nullable=True),
    sa.Column("etag", sa.Text(), nullable=True),
    sa.Column("sequencer", sa.String(64), nullable=True),
    sa.Column("last_event_name", sa.Text(), nullable=False),
    sa.Column("last_event_time", UTCDateTime(), nullable=False),
    sa.Column("last_event_version_id", sa.Text(), nullable=True),
    sa.Column("last_position", Position, nullable=False),
    sa.Column("deleted", sa.Boolean(), nullable=False),
)

projection_checkpoints = sa.Table(
    "projection_checkpoints",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("position", Position, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("error_position", Position, nullable=True),
    sa.Column("live_filter", sa.Text(), nullable=True),
    sa.Column("rebuild_version", sa.Integer(), nullable=True),
    sa.Column("rebuild_position", Position, nullable=True),
    sa.Column("rebuild_filter", sa.Text(), nullable=True),
    # The hash of the log row at `position`: rows cut off the end of the log and positions
    # reused by later appends show as a different hash there.
    sa.Column("position_hash", sa.String(64), nullable=True),
)

# Each `eventstore verify` run's result, so `eventstore status` can say when the chain last
# verified and against which anchor. Operational bookkeeping, not evidence: the evidence is
# the anchor kept outside the database (infra/keep-anchor.sh).
verify_runs = sa.Table(
    "verify_runs",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("checked_at", UTCDateTime(), nullable=False),
    sa.Column("ok", sa.Boolean(), nullable=False),
    sa.Column("checked", Position, nullable=False),
    sa.Column("head_position", Position, nullable=True),
    sa.Column("head_hash", sa.String(64), nullable=True),
    sa.Column("anchor", sa.Text(), nullable=True),  # the --anchor it was checked against
    sa.Column("first_bad_position", Position, nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
)

# How far each `eventstore export` destination holds the log (eventstore/export/).
export_checkpoints = sa.Table(
    "export_checkpoints",
    metadata,
    sa.Column("destination", sa.Text(), primary_key=True),
    sa.Column("position", Position, nullable=False),
    # The hash of the log row at `position`: a log cut back and appended to again shows here.
    sa.Column("position_hash", sa.String(64), nullable=True),
    # The end of the range a run announced before writing its files: a run after a crash
    # writes exactly that range again (same file names), never an overlapping one.
    sa.Column("pending_until", Position, nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
