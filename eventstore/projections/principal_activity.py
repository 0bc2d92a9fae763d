"""Per-principal activity: how many events of each name a principal caused, first and last seen."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from eventstore.core.events import StoredEvent
from eventstore.projections.base import Projection, ProjectionContext
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


class PrincipalActivityProjection(Projection):
    """Events by (principal, event name), with the first and last event time seen."""

    name = "principal_activity"
    version = 1
    description = "events per principal and event name, first and last seen"
    tables = (principal_activity,)

    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        if not events:
            return
        table = context.table("principal_activity")
        tallies: dict[tuple[str, str], _Tally] = {}
        for stored in events:
            event = stored.event
            key = (event.principal_id or UNKNOWN_PRINCIPAL, event.event_name)
            tally = tallies.get(key)
            if tally is None:
                tallies[key] = _Tally(1, event.event_time, event.event_time)
            else:
                tally.add(1, event.event_time, event.event_time)
        connection = context.connection
        keys = list(tallies)
        columns = sa.tuple_(table.c.principal_id, table.c.event_name)
        chunks = [keys[start : start + 400] for start in range(0, len(keys), 400)]
        for chunk in chunks:
            for row in connection.execute(sa.select(table).where(columns.in_(chunk))):
                tallies[(row.principal_id, row.event_name)].add(
                    row.events, row.first_seen, row.last_seen
                )
            connection.execute(sa.delete(table).where(columns.in_(chunk)))
        connection.execute(
            sa.insert(table),
            [
                {"principal_id": principal, "event_name": name, "events": t.events,
                 "first_seen": t.first, "last_seen": t.last}
                for (principal, name), t in tallies.items()
            ],
        )  # fmt: skip


@dataclass(slots=True)
class _Tally:
    events: int
    first: datetime
    last: datetime

    def add(self, events: int, first: datetime, last: datetime) -> None:
        self.events += events
        self.first = min(self.first, first)
        self.last = max(self.last, last)
