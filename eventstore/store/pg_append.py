"""The append on PostgreSQL in two round trips, with psycopg's pipeline mode.

Appends are serialised by the advisory lock (see sql.py for why that makes position order
commit order), so the time an append holds the lock bounds the whole system's throughput:
at one round trip per statement an append held it for about ten. Here the statements that
must see the log under the lock go out together, and so do the ones that write:

1. timeouts, `pg_advisory_xact_lock`, the head and which of the batch's ids are known, the
   inline projections' checkpoints, and the rows their fold needs;
2. the INSERT of the new events, each inline projection's writes and its checkpoint, COMMIT.

The server runs a pipeline's statements in order, so everything in the first one runs after
the lock is granted and sees every append committed before it. Between the two round trips
only the hashes are computed and the projections folded, in memory; the rows' JSON and most
of what is hashed were built before the lock was requested.

An inline projection's live checkpoint and live tables are written only by a holder of the
append lock (appends, the runner's catch-up of an inline projection, swaps), so the rows
read in the first round trip are still current in the second. Inline projections that do not
implement PipelinedProjection are folded through `apply` between the two round trips.
"""

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import Connection

from eventstore.core.events import StoredEvent
from eventstore.core.hashing import GENESIS_HASH, PendingRow, seal_all
from eventstore.errors import StorageError
from eventstore.projections.base import (
    Batch,
    InlineProjectionError,
    PipelinedProjection,
    Projection,
    ProjectionContext,
    describe_error,
)
from eventstore.store.base import EventQuery
from eventstore.store.bulk import unnest_insert
from eventstore.store.database import database_timeouts
from eventstore.store.schema import events

if TYPE_CHECKING:
    from eventstore.store.sql import SqlEventStore

_SET_TIMEOUTS = (
    "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)"
)
_LOCK = "SELECT pg_advisory_xact_lock(%s)"
# The head (position, hash) and the batch's ids already stored, in one statement.
_HEAD_AND_KNOWN = """
SELECT position, hash, NULL AS event_id
  FROM (SELECT position, hash FROM events ORDER BY position DESC LIMIT 1) AS head
UNION ALL
SELECT NULL, NULL, event_id FROM events WHERE event_id = ANY(%s)
"""
_CHECKPOINTS = """
SELECT name, version, position, rebuild_version, last_error, live_filter
  FROM projection_checkpoints WHERE name = ANY(%s)
"""
_CLAIM = """
UPDATE projection_checkpoints SET position = %s, updated_at = %s
 WHERE name = %s AND position = %s
"""
_RECORD_FAILURE = """
UPDATE projection_checkpoints SET last_error = %s, error_position = %s WHERE name = %s
"""


def _row(stored: StoredEvent) -> tuple[Any, ...]:
    """The `events` row of a stored event, in the table's column order."""
    event = stored.event
    return (
        stored.position, event.event_id, event.stream, event.event_name, event.event_time,
        event.bucket, event.key, event.version_id, event.sequencer, event.size, event.etag,
        event.principal_id, event.source_ip, event.request_id, event.region, str(event.source),
        event.causation_id, event.correlation_id, stored.record_json, stored.recorded_at,
        stored.hash,
    )  # fmt: skip


def append_pipelined(
    store: "SqlEventStore", unique: dict[str, PendingRow], failed: dict[str, str]
) -> tuple[list[StoredEvent], int]:
    """Append the rows not already in the log; return what was stored and how many were
    already there. Raises InlineProjectionError when an inline projection not in `failed`
    raises (nothing is stored then), StorageError when the database fails."""
    with store.engine.connect() as connection:
        driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
        append = _Append(store, connection, driver, failed)
        try:
            head, head_hash, known = append.read(unique)
            fresh = [row for event_id, row in unique.items() if event_id not in known]
            if not fresh:
                driver.rollback()
                return [], len(unique)
            stored = append.write(fresh, head, head_hash)
            return stored, len(unique) - len(fresh)
        except psycopg.Error as error:
            _abandon(connection, driver)
            raise StorageError(f"append failed, nothing was stored: {error}") from error
        except BaseException:
            _abandon(connection, driver)
            raise


class _Append:
    """One append's two round trips on one connection."""

    def __init__(
        self,
        store: "SqlEventStore",
        connection: Connection,
        driver: "psycopg.Connection[Any]",
        failed: dict[str, str],
    ) -> None:
        self.store = store
        self.connection = connection
        self.driver = driver
        self.failed = failed
        self.inline = [p for p in store.projections if p.inline]
        self._head: psycopg.Cursor[Any] | None = None
        self._checkpoints: psycopg.Cursor[Any] | None = None
        self._reads: dict[str, list[psycopg.Cursor[Any]]] = {}

    def read(self, unique: dict[str, PendingRow]) -> tuple[int, str, set[str]]:
        """First round trip: lock, then read the head, the known ids, the inline
        projections' checkpoints and the rows their folds need."""
        driver = self.driver
        new_events = [row.event for row in unique.values()]
        with driver.pipeline():
            driver.execute(_SET_TIMEOUTS, database_timeouts())
            driver.execute(_LOCK, (self.store.append_lock_id,))
            head_cursor = driver.execute(_HEAD_AND_KNOWN, (list(unique),))
            self._checkpoints = driver.cursor(row_factory=namedtuple_row)
            self._checkpoints.execute(_CHECKPOINTS, ([p.name for p in self.inline],))
            for projection in self.inline:
                if (
                    isinstance(projection, PipelinedProjection)
                    and projection.name not in self.failed
                ):
                    cursors = self._reads[projection.name] = []
                    for sql, params in projection.pipeline_reads(new_events):
                        cursors.append(driver.cursor(row_factory=namedtuple_row))
                        cursors[-1].execute(sql, params)
        head, head_hash, known = 0, GENESIS_HASH, set()
        for position, digest, event_id in head_cursor.fetchall():
            if event_id is None:
                head, head_hash = position, digest
            else:
                known.add(event_id)
        return head, head_hash, known

    def write(self, fresh: list[PendingRow], head: int, head_hash: str) -> list[StoredEvent]:
        """Seal the rows after the head, fold them, and send it all with COMMIT."""
        stored = seal_all(fresh, head, head_hash, datetime.now(UTC))
        assert self._checkpoints is not None
        checkpoints = {row.name: row for row in self._checkpoints.fetchall()}
        writes: list[Batch] = []
        for projection in self.inline:
            writes += self._inline_writes(projection, checkpoints.get(projection.name), stored)
        rows = [_row(s) for s in stored]
        driver = self.driver
        with driver.pipeline():
            driver.execute(
                unnest_insert(events, upsert=False), [list(c) for c in zip(*rows, strict=True)]
            )
            for sql, batch in writes:
                for params in batch:
                    driver.execute(sql, params)
            driver.commit()
        return stored

    def _inline_writes(
        self, projection: Projection, checkpoint: Any, stored: list[StoredEvent]
    ) -> list[Batch]:
        """The statements that fold `stored` into one inline projection and move its
        checkpoint; none when it is behind, rebuilding, failed or of another version (the
        runner's job then)."""
        first, last = stored[0].position, stored[-1].position
        if projection.name in self.failed:
            return [(_RECORD_FAILURE, [(self.failed[projection.name], first, projection.name)])]
        if (
            checkpoint is None
            or checkpoint.version != projection.effective_version
            or checkpoint.rebuild_version is not None
            or checkpoint.last_error is not None
            or checkpoint.position != first - 1
        ):
            return []
        claim: Batch = (_CLAIM, [(last, stored[0].recorded_at, projection.name, first - 1)])
        event_filter = EventQuery.from_json(checkpoint.live_filter)
        chosen = [s for s in stored if event_filter.matches(s.event)]
        if not chosen:
            return [claim]
        try:
            cursors = self._reads.get(projection.name)
            if isinstance(projection, PipelinedProjection) and cursors is not None:
                rows = [cursor.fetchall() for cursor in cursors]
                return [*projection.pipeline_writes(chosen, rows), claim]
            tables = {table.name: table for table in projection.tables}
            projection.apply(ProjectionContext(self.connection, tables), chosen)
        except psycopg.Error:
            raise
        except Exception as error:  # a projection's bug must not stop ingestion
            if getattr(error, "connection_invalidated", False):
                raise
            raise InlineProjectionError(projection.name, describe_error(error)) from error
        return [claim]


def _abandon(connection: Connection, driver: "psycopg.Connection[Any]") -> None:
    """Roll back; a connection that broke is thrown away rather than pooled again."""
    if driver.broken:
        connection.invalidate()
        return
    try:
        driver.rollback()
    except psycopg.Error:
        connection.invalidate()
