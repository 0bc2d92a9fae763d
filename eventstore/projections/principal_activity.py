"""Per-principal activity: how many events of each name a principal caused, first and last seen."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from eventstore.core.events import StoredEvent
from eventstore.projections.base import Fold, Projection, ProjectionContext
from eventstore.store.bulk import write_rows
from eventstore.store.schema import UTCDateTime, projection_metadata

UNKNOWN_PRINCIPAL = "unknown"  # records from S3-compatible producers carry no identity

principal_activity = sa.Table(
    "principal_activity",
    projection_metadata,
    sa.Column("principal_id", sa.Text(), primary_key=True),
    sa.Column("event_name", sa.Text(), primary_key=True),
    sa.Column("events", sa.BigInteger(), nullable=False),
    sa.Column("first_seen", UTCDateTime(), nullable=False),
    sa.Column("last_seen", UTCDateTime(), nullable=False),
)

Key = tuple[str, str]


class PrincipalActivityProjection(Projection):
    """Events by (principal, event name), with the first and last event time seen."""

    name = "principal_activity"
    version = 1
    description = "events per principal and event name, first and last seen"
    tables = (principal_activity,)

    def start(self) -> "ActivityFold":
        return ActivityFold()


class ActivityFold(Fold):
    """Tallies since the last flush, added to the stored rows when flushed."""

    def __init__(self) -> None:
        self.tallies: dict[Key, _Tally] = {}

    @property
    def held(self) -> int:
        return len(self.tallies)

    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        tallies = self.tallies
        for stored in events:
            event = stored.event
            key = (event.principal_id or UNKNOWN_PRINCIPAL, event.event_name)
            tally = tallies.get(key)
            if tally is None:
                tallies[key] = _Tally(1, event.event_time, event.event_time)
            else:
                tally.add(1, event.event_time, event.event_time)

    def flush(self, context: ProjectionContext) -> None:
        if not self.tallies:
            return
        table = context.table("principal_activity")
        tallies, self.tallies = self.tallies, {}
        if not context.fresh:
            columns = sa.tuple_(table.c.principal_id, table.c.event_name)
            keys = list(tallies)
            for start in range(0, len(keys), 400):
                chunk = keys[start : start + 400]
                for row in context.connection.execute(sa.select(table).where(columns.in_(chunk))):
                    tallies[(row.principal_id, row.event_name)].add(
                        row.events, row.first_seen, row.last_seen
                    )
        rows = [(p, name, t.events, t.first, t.last) for (p, name), t in tallies.items()]
        write_rows(context.connection, table, rows, upsert=True)


@dataclass(slots=True)
class _Tally:
    events: int
    first: datetime
    last: datetime

    def add(self, events: int, first: datetime, last: datetime) -> None:
        self.events += events
        self.first = min(self.first, first)
        self.last = max(self.last, last)
