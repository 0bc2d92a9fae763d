"""Reactor outcomes, one row per `Reactor:*` event of the log: what `trace` follows from an
upload to what was derived from it (and back), and what `reactors status` counts."""

from collections.abc import Sequence

import sqlalchemy as sa

from eventstore.core.events import Source, StoredEvent
from eventstore.core.timeutil import parse_time
from eventstore.projections.base import Projection, ProjectionContext
from eventstore.reactors.outcomes import read_outcome
from eventstore.store.bulk import write_rows
from eventstore.store.schema import UTCDateTime, projection_metadata

reactor_outcomes = sa.Table(
    "reactor_outcomes",
    projection_metadata,
    sa.Column("position", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(32), nullable=False),  # Reactor:Processed / Produced / Failed
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("reactor", sa.Text(), nullable=False),
    sa.Column("reactor_version", sa.Integer(), nullable=False),
    sa.Column("event_id", sa.String(32), nullable=False),  # of the outcome event
    sa.Column("cause_event_id", sa.String(32), nullable=False),
    sa.Column("cause_bucket", sa.Text(), nullable=False),
    sa.Column("cause_key", sa.Text(), nullable=False),
    sa.Column("cause_version_id", sa.Text(), nullable=True),
    sa.Column("cause_event_time", UTCDateTime(), nullable=False),
    sa.Column("bucket", sa.Text(), nullable=False),  # the output for Produced, else the cause
    sa.Column("key", sa.Text(), nullable=False),
    sa.Column("version_id", sa.Text(), nullable=True),
    sa.Column("etag", sa.Text(), nullable=True),
    sa.Column("size", sa.BigInteger(), nullable=True),
    sa.Column("duration_ms", sa.Float(), nullable=True),
    sa.Column("attempt", sa.Integer(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Index(None, "cause_event_id"),
    sa.Index(None, "bucket", "key"),
    sa.Index(None, "reactor", "kind", "at"),
)


class ReactorOutcomesProjection(Projection):
    """Every reactor outcome with its cause, indexed by cause and by the object it concerns."""

    name = "reactor_outcomes"
    version = 1
    description = "reactor outcomes (processed, produced, failed) with their causes"
    tables = (reactor_outcomes,)

    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        rows = []
        for stored in events:
            if stored.event.source is not Source.REACTOR:
                continue
            o = read_outcome(stored)
            rows.append((
                o.position, str(o.kind), o.at, o.reactor, o.reactor_version, stored.event.event_id,
                o.cause_event_id, o.cause_bucket, o.cause_key, o.cause_version_id,
                parse_time(o.cause_event_time), o.bucket, o.key, o.version_id, o.etag, o.size,
                None if o.duration_ms is None else float(o.duration_ms), o.attempt, o.reason,
            ))  # fmt: skip
        write_rows(context.connection, context.table("reactor_outcomes"), rows, upsert=False)
