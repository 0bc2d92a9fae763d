"""The one place where the log, the projections and their runner are put together.

The CLI, the Lambda consumers, replay and the demo all open their event store here, so each
gets the same projections (built-ins, `@projection`, the `eventstore.projections` entry-point
group) and the same catch-up rules. The log knows nothing of projections; this module is
what connects them.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from eventstore.core.objectstate import CatalogEntry
from eventstore.projections.base import Projection
from eventstore.projections.catalog import ObjectCatalogProjection, catalog_entries
from eventstore.projections.registry import load_projections
from eventstore.projections.runner import ProjectionRunner, ProjectionStatus, RunReport
from eventstore.store.database import create_engine, ensure_schema, resolve_url
from eventstore.store.sql import SqlEventStore


@dataclass(frozen=True, slots=True)
class EventStore:
    """The log and the projections kept from it."""

    log: SqlEventStore
    runner: ProjectionRunner

    @property
    def projections(self) -> tuple[Projection, ...]:
        return self.runner.projections

    def catch_up(self) -> list[RunReport]:
        """Bring every projection to the head of the log before returning (read-your-writes
        for a person: `ingest`, `replay`, the demo)."""
        return self.runner.catch_up()

    def status(self, name: str) -> ProjectionStatus:
        self.runner.get(name)  # a clear error for an unknown name
        return next(s for s in self.runner.status() if s.name == name)

    def objects(
        self, *, bucket: str | None = None, prefix: str | None = None, include_deleted: bool = False
    ) -> Iterator[CatalogEntry]:
        """The object catalog now (see `status(ObjectCatalogProjection.name)` for its lag)."""
        return catalog_entries(
            self.log.engine, bucket=bucket, prefix=prefix, include_deleted=include_deleted
        )

    def objects_as_of(
        self,
        when: datetime,
        *,
        bucket: str | None = None,
        prefix: str | None = None,
        include_deleted: bool = False,
    ) -> Iterator[CatalogEntry]:
        """The object catalog at a past time, folded from the log itself (never behind)."""
        return self.log.objects_as_of(
            when, bucket=bucket, prefix=prefix, include_deleted=include_deleted
        )


CATALOG = ObjectCatalogProjection.name


def open_event_store(
    url: str | None = None,
    *,
    projections: Sequence[Projection] | None = None,
    auto_upgrade_sqlite: bool = True,
    pool: str | None = None,
) -> EventStore:
    """The event store on `url` (else $EVENTSTORE_DB_URL, else ./eventstore.db) with its
    schema checked, and every registered projection (or `projections`)."""
    engine = create_engine(resolve_url(url), pool=pool)
    ensure_schema(engine, auto_upgrade_sqlite=auto_upgrade_sqlite)
    return event_store_on(SqlEventStore(engine), projections)


def event_store_on(
    log: SqlEventStore, projections: Sequence[Projection] | None = None
) -> EventStore:
    chosen = list(projections) if projections is not None else load_projections()
    return EventStore(log, ProjectionRunner(log, chosen))
