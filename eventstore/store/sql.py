"""The event log in SQL (SQLite or PostgreSQL) through SQLAlchemy Core.

Appends are serialised: SQLite's `BEGIN IMMEDIATE` and, on PostgreSQL, a transaction-scoped
advisory lock taken before the head of the log is read. Positions are therefore handed out
in commit order, with no gaps: a reader that has seen position n has seen every position
below it, and the hash chain can link each row to the one committed before it. The lock is
held only for the append and the inline projections (milliseconds), and is released by
COMMIT or ROLLBACK, so a crashed writer cannot leave it behind.

Why this holds on PostgreSQL (the classic failure is a sequence value committing after a
larger one, so a reader checkpoints past it and never sees it):

1. Positions are not drawn from a sequence: each append computes head + 1 while holding
   `pg_advisory_xact_lock(APPEND_LOCK_ID)`, so at most one append is between reading the
   head and committing.
2. The append runs at READ COMMITTED (the engine says so on every BEGIN, whatever the
   server's default), where each statement takes a fresh snapshot. The head and the known
   event ids are read by statements that start after the lock was granted.
3. PostgreSQL makes a transaction visible to new snapshots before it releases its locks at
   COMMIT. So when writer B gets the lock from writer A, A's rows are visible to B's next
   statement: B's positions start after A's last one, B's dedupe sees A's event ids, and
   B's first hash links to A's last row.
4. B commits only after A did, so any snapshot that sees B's rows also sees A's. A reader
   that has seen position n has seen 1..n, whatever its own isolation level; a catch-up
   projection may checkpoint at the largest position it saw.

The cost is that appends do not overlap; each holds the lock for two round trips (see
pg_append.py: the statements are pipelined) and the hashing and folding between them. A
lost connection rolls the append back on the server (nothing is half-stored) and surfaces
as StorageError; if it is lost during COMMIT the outcome is unknown, and the retry is safe
because event ids are unique: what committed is counted as duplicates.
tests/integration/test_concurrency.py is the proof under load.
"""

import json
import logging
from collections.abc import Collection, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from eventstore.core.events import NewEvent, Source, StoredEvent
from eventstore.core.hashing import (
    GENESIS_HASH,
    Anchor,
    PendingRow,
    UnreadableRow,
    VerifyResult,
    seal_all,
    verify_chain,
)
from eventstore.core.objectstate import CatalogEntry, ObjectState
from eventstore.core.ordering import sort_events_of_one_key
from eventstore.errors import StorageError
from eventstore.projections.base import (
    InlineProjectionError,
    Projection,
    ProjectionContext,
    describe_error,
)
from eventstore.store.base import AppendResult, EventQuery, prefix_upper_bound
from eventstore.store.bulk import write_rows
from eventstore.store.database import WRITE, create_engine, ensure_schema, resolve_url
from eventstore.store.schema import UTCDateTime, events, object_catalog, projection_checkpoints

logger = logging.getLogger(__name__)

APPEND_LOCK_ID = 0x5E7E_0001  # the advisory lock that serialises appends on PostgreSQL
_PAGE = 1000
_TIME = UTCDateTime()
_ID_CHUNK = 500

# The append path's statements, built once: building a statement and its cache key costs
# more than executing it for a batch of a few events.
_SELECT_KNOWN_IDS = sa.select(events.c.event_id).where(
    events.c.event_id.in_(sa.bindparam("event_ids", expanding=True))
)
_SELECT_HEAD = (
    sa.select(events.c.position, events.c.hash).order_by(events.c.position.desc()).limit(1)
)
# The head and which of a batch's ids the log already holds, in one round trip (the append
# lock is held meanwhile, so every round trip saved is throughput).
_head = _SELECT_HEAD.subquery()
_SELECT_HEAD_AND_KNOWN = sa.union_all(
    sa.select(_head.c.position, _head.c.hash, sa.cast(sa.null(), sa.String).label("event_id")),
    sa.select(
        sa.cast(sa.null(), sa.BigInteger), sa.cast(sa.null(), sa.String), events.c.event_id
    ).where(events.c.event_id.in_(sa.bindparam("event_ids", expanding=True))),
)
_checkpoint = projection_checkpoints.c
# Claims the new events for an inline projection in one round trip: the checkpoint moves only
# if the projection is live, of this version, healthy and exactly at the previous head.
_CLAIM_INLINE = (
    sa.update(projection_checkpoints)
    .where(
        _checkpoint.name == sa.bindparam("checkpoint_name"),
        _checkpoint.version == sa.bindparam("code_version"),
        _checkpoint.rebuild_version.is_(None),
        _checkpoint.last_error.is_(None),
        _checkpoint.position == sa.bindparam("previous_head"),
    )
    .values(position=sa.bindparam("new_head"), updated_at=sa.bindparam("now"))
    .returning(_checkpoint.live_filter)
)
_RECORD_INLINE_FAILURE = (
    sa.update(projection_checkpoints)
    .where(_checkpoint.name == sa.bindparam("checkpoint_name"))
    .values(last_error=sa.bindparam("error"), error_position=sa.bindparam("failed_at"))
)


class SqlEventStore:
    """The event log and its inline projections on one SQLAlchemy engine."""

    append_lock_id = APPEND_LOCK_ID

    def __init__(self, engine: Engine, *, projections: Sequence[Projection] | None = None) -> None:
        self.engine = engine
        if projections is None:
            from eventstore.projections.registry import load_projections

            projections = load_projections()
        self.projections: tuple[Projection, ...] = tuple(projections)

    # -- writing ------------------------------------------------------------------------

    def append(
        self, new_events: Sequence[NewEvent], *, correlation_id: str | None = None
    ) -> AppendResult:
        """Store the events not already in the log, in one transaction, and fold them into
        the inline projections in that same transaction."""
        # Everything of a row but its position, time and hash is built before the lock.
        unique: dict[str, PendingRow] = {}
        for given in new_events:
            if given.event_id in unique:
                continue
            event = given
            if correlation_id is not None and event.correlation_id is None:
                event = replace(event, correlation_id=correlation_id)
            unique[event.event_id] = PendingRow.of(event)
        in_batch_duplicates = len(new_events) - len(unique)
        # Inline projections run without savepoints (two round trips less under the append
        # lock). If one raises, the transaction is rolled back whole and the append is made
        # again without it, its error recorded on its checkpoint for the runner to retry.
        failed: dict[str, str] = {}
        while True:
            try:
                if self.engine.dialect.name == "postgresql":
                    from eventstore.store.pg_append import append_pipelined  # needs psycopg

                    stored, known = append_pipelined(self, unique, failed)
                else:
                    stored, known = self._append_generic(unique, failed)
                break
            except InlineProjectionError as failure:
                logger.warning("inline projection %s failed: %s", failure.name, failure.reason)
                failed[failure.name] = failure.reason
            except DBAPIError as error:
                raise StorageError(f"append failed, nothing was stored: {error.orig}") from error
        return AppendResult(tuple(stored), in_batch_duplicates + known)

    def _append_generic(
        self, unique: dict[str, PendingRow], failed: dict[str, str]
    ) -> tuple[list[StoredEvent], int]:
        """The append through SQLAlchemy, a statement at a time (SQLite: no round trips)."""
        with self.write() as connection:
            self.lock_appends(connection)
            head, head_hash, known = self._head_and_known(connection, list(unique))
            fresh = [row for event_id, row in unique.items() if event_id not in known]
            stored = self._insert(connection, fresh, head, head_hash)
            if stored:
                self._project_inline(connection, stored, failed)
        return stored, len(unique) - len(fresh)

    @staticmethod
    def lock_appends(connection: Connection) -> None:
        """Hold off appends until this transaction ends (SQLite: every writer already does).

        The lock order everywhere is the append lock first, then checkpoint rows: a runner
        that held a checkpoint row while it waited for appends would deadlock with an append
        that waits for that row."""
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(APPEND_LOCK_ID)))

    def write(self) -> "_WriteTransaction":
        """A connection in a write transaction: `with store.write() as connection: ...`."""
        return _WriteTransaction(self.engine)

    @staticmethod
    def _head_and_known(connection: Connection, event_ids: list[str]) -> tuple[int, str, set[str]]:
        """The head's position and hash, and the ids of `event_ids` already in the log."""
        chunks = [event_ids[i : i + _ID_CHUNK] for i in range(0, len(event_ids), _ID_CHUNK)]
        head, head_hash, known = 0, GENESIS_HASH, set()
        for row in connection.execute(
            _SELECT_HEAD_AND_KNOWN, {"event_ids": chunks[0] if chunks else []}
        ):
            if row.event_id is None:
                head, head_hash = row.position, row.hash
            else:
                known.add(row.event_id)
        for chunk in chunks[1:]:
            known.update(connection.execute(_SELECT_KNOWN_IDS, {"event_ids": chunk}).scalars())
        return head, head_hash, known

    @staticmethod
    def _insert(
        connection: Connection, fresh: list[PendingRow], head: int, head_hash: str
    ) -> list[StoredEvent]:
        if not fresh:
            return []
        stored = seal_all(fresh, head, head_hash, datetime.now(UTC))
        write_rows(connection, events, [row_of(s) for s in stored], upsert=False)
        return stored

    def _project_inline(
        self, connection: Connection, stored: list[StoredEvent], failed: dict[str, str]
    ) -> None:
        """Fold the new events into every inline projection that is live and caught up.

        A projection that raises fails this attempt (see append), and in the next one is only
        marked failed; the runner retries it later. A projection that is behind, rebuilding
        or re-versioned is left to the runner."""
        inline = [p for p in self.projections if p.inline]
        if not inline:
            return
        first, now = stored[0].position, datetime.now(UTC)
        for projection in inline:
            if projection.name in failed:
                connection.execute(
                    _RECORD_INLINE_FAILURE,
                    {
                        "checkpoint_name": projection.name,
                        "error": failed[projection.name],
                        "failed_at": first,
                    },
                )
                continue
            claimed = connection.execute(
                _CLAIM_INLINE,
                {
                    "checkpoint_name": projection.name,
                    "code_version": projection.effective_version,
                    "previous_head": first - 1,
                    "new_head": stored[-1].position,
                    "now": now,
                },
            ).first()
            if claimed is None:  # behind, rebuilding, failed or re-versioned: the runner's job
                continue
            event_filter = EventQuery.from_json(claimed.live_filter)
            chosen = [s for s in stored if event_filter.matches(s.event)]
            if not chosen:
                continue
            try:
                tables = {t.name: t for t in projection.tables}
                projection.apply(ProjectionContext(connection, tables), chosen)
            except Exception as error:  # a projection's bug must not stop ingestion
                if isinstance(error, DBAPIError) and error.connection_invalidated:
                    raise
                raise InlineProjectionError(projection.name, describe_error(error)) from error

    def rebuild_projections(self) -> int:
        """Rebuild every projection from position 0 and swap it in; return events folded."""
        from eventstore.projections.runner import ProjectionRunner

        runner = ProjectionRunner(self)
        reports = runner.rebuild([p.name for p in self.projections])
        return max((r.applied for r in reports), default=0)

    # -- reading --------------------------------------------------------------------------

    def head_position(self) -> int:
        with self.engine.connect() as connection:
            return self.head_position_in(connection)

    @staticmethod
    def head_position_in(connection: Connection) -> int:
        return int(connection.execute(sa.select(sa.func.max(events.c.position))).scalar() or 0)

    def read(self, *, after: int = 0, limit: int | None = None) -> Iterator[StoredEvent]:
        """Events in position order after `after`, read page by page."""
        with self.engine.connect() as connection:
            yield from self.read_in(connection, after=after, limit=limit)

    def read_in(
        self, connection: Connection, *, after: int, limit: int | None
    ) -> Iterator[StoredEvent]:
        """Events after `after` in position order, read through `connection` page by page."""
        remaining = limit
        while remaining is None or remaining > 0:
            page = _PAGE if remaining is None else min(_PAGE, remaining)
            rows = connection.execute(
                sa.select(events)
                .where(events.c.position > after)
                .order_by(events.c.position)
                .limit(page)
            ).all()
            for row in rows:
                yield _stored_of(row)
            if len(rows) < page:
                return
            after = rows[-1].position
            if remaining is not None:
                remaining -= len(rows)

    def history(self, bucket: str, key: str) -> list[StoredEvent]:
        """Every event of one object, in S3's order (sequencer, then event time)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(events)
                .where(events.c.bucket == bucket, events.c.key == key)
                .order_by(events.c.position)
            ).all()
        return sort_events_of_one_key([_stored_of(r) for r in rows], lambda s: s.order_key)

    def select_events(self, query: EventQuery) -> list[StoredEvent]:
        """The audit query: events matching every filter, in position order."""
        statement = sa.select(events).where(*_event_filters(query)).order_by(events.c.position)
        if query.limit is not None:
            statement = statement.limit(query.limit)
        with self.engine.connect() as connection:
            return [_stored_of(r) for r in connection.execute(statement)]

    def objects(
        self, *, bucket: str | None = None, prefix: str | None = None, include_deleted: bool = False
    ) -> list[CatalogEntry]:
        """The object catalog now."""
        conditions = _key_filters(object_catalog.c.bucket, object_catalog.c.key, bucket, prefix)
        if not include_deleted:
            conditions.append(object_catalog.c.deleted.is_(False))
        statement = (
            sa.select(object_catalog)
            .where(*conditions)
            .order_by(object_catalog.c.bucket, object_catalog.c.key)
        )
        with self.engine.connect() as connection:
            return [
                CatalogEntry(
                    bucket=r.bucket,
                    key=r.key,
                    version_id=r.version_id,
                    size=r.size,
                    etag=r.etag,
                    sequencer=r.sequencer,
                    last_event_name=r.last_event_name,
                    last_event_time=r.last_event_time,
                    deleted=r.deleted,
                    last_position=r.last_position,
                )
                for r in connection.execute(statement)
            ]

    def objects_as_of(
        self,
        when: datetime,
        *,
        bucket: str | None = None,
        prefix: str | None = None,
        include_deleted: bool = False,
    ) -> list[CatalogEntry]:
        """The object catalog as it stood at `when`: the log folded up to that event time."""
        conditions = _key_filters(events.c.bucket, events.c.key, bucket, prefix)
        conditions.append(events.c.event_time <= when)
        states: dict[tuple[str, str], ObjectState] = {}
        with self.engine.connect() as connection:
            rows = connection.execution_options(yield_per=_PAGE).execute(
                sa.select(events).where(*conditions).order_by(events.c.position)
            )
            for row in rows:
                stored = _stored_of(row)
                event = stored.event
                state = states.setdefault(
                    (event.bucket, event.key), ObjectState(event.bucket, event.key)
                )
                state.apply(event, stored.position)
        entries = [e for e in (s.entry() for s in states.values()) if e is not None]
        return sorted(
            (e for e in entries if include_deleted or not e.deleted),
            key=lambda e: (e.bucket, e.key),
        )

    def known_versions(
        self, bucket: str, keys: Collection[str]
    ) -> set[tuple[str, str | None, str | None]]:
        """(key, version_id, etag) of every existence-changing event (ObjectCreated:*,
        ObjectRemoved:*, LifecycleExpiration:*) the log holds for these keys of `bucket`.

        What a back-fill from ListObjectVersions checks so as never to add a version twice.
        """
        names = events.c.event_name
        changes_existence = sa.or_(
            names.startswith("ObjectCreated:"),
            names.startswith("ObjectRemoved:"),
            names.startswith("LifecycleExpiration:"),
        )
        wanted = sorted(set(keys))
        found: set[tuple[str, str | None, str | None]] = set()
        with self.engine.connect() as connection:
            for start in range(0, len(wanted), _ID_CHUNK):
                chunk = wanted[start : start + _ID_CHUNK]
                rows = connection.execute(
                    sa.select(events.c.key, events.c.version_id, events.c.etag)
                    .where(events.c.bucket == bucket, events.c.key.in_(chunk), changes_existence)
                    .distinct()
                )
                found.update((row.key, row.version_id, row.etag) for row in rows)
        return found

    def verify(self, *, anchor: Anchor | None = None) -> VerifyResult:
        """Recompute the hash chain over every stored column of every row (and check the
        anchor, when one is given)."""
        with self.engine.connect() as connection:
            # Times are fetched unconverted and converted row by row in _checked_rows: a
            # corrupted time must be reported at its position, not raised mid-fetch.
            columns = [
                sa.type_coerce(c, sa.Text()).label(c.name) if isinstance(c.type, UTCDateTime) else c
                for c in events.c
            ]
            rows = connection.execution_options(yield_per=_PAGE).execute(
                sa.select(*columns).order_by(events.c.position)
            )
            return verify_chain(_checked_rows(rows, connection.dialect), anchor=anchor)


class _WriteTransaction:
    """A connection with a write transaction open (BEGIN IMMEDIATE on SQLite)."""

    def __init__(self, engine: Engine) -> None:
        self._connection = engine.connect().execution_options(**{WRITE: True})
        self._transaction = self._connection.begin()

    def __enter__(self) -> Connection:
        return self._connection

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self._transaction.commit()
            else:
                self._transaction.rollback()
        finally:
            self._connection.close()


def open_store(url: str | None = None, *, auto_upgrade_sqlite: bool = True) -> SqlEventStore:
    """A store on `url` (or $EVENTSTORE_DB_URL, or ./eventstore.db) with its schema checked."""
    engine = create_engine(resolve_url(url))
    ensure_schema(engine, auto_upgrade_sqlite=auto_upgrade_sqlite)
    return SqlEventStore(engine)


def row_of(stored: StoredEvent) -> dict[str, Any]:
    """The `events` row of a stored event."""
    event = stored.event
    return {
        "position": stored.position,
        "event_id": event.event_id,
        "stream": event.stream,
        "event_name": event.event_name,
        "event_time": event.event_time,
        "bucket": event.bucket,
        "key": event.key,
        "version_id": event.version_id,
        "sequencer": event.sequencer,
        "size": event.size,
        "etag": event.etag,
        "principal_id": event.principal_id,
        "source_ip": event.source_ip,
        "request_id": event.request_id,
        "region": event.region,
        "source": str(event.source),
        "causation_id": event.causation_id,
        "correlation_id": event.correlation_id,
        "record": stored.record_json,
        "recorded_at": stored.recorded_at,
        "hash": stored.hash,
    }


def _stored_of(row: Any) -> StoredEvent:
    event = NewEvent(
        event_id=row.event_id,
        event_name=row.event_name,
        event_time=row.event_time,
        bucket=row.bucket,
        key=row.key,
        version_id=row.version_id,
        sequencer=row.sequencer,
        size=row.size,
        etag=row.etag,
        principal_id=row.principal_id,
        source_ip=row.source_ip,
        request_id=row.request_id,
        region=row.region,
        source=Source(row.source),
        record=json.loads(row.record),
        causation_id=row.causation_id,
        correlation_id=row.correlation_id,
    )
    return StoredEvent(row.position, event, row.record, row.recorded_at, row.hash)


def _checked_rows(rows: Any, dialect: Dialect) -> Iterator[StoredEvent | UnreadableRow]:
    time_columns = [c.name for c in events.c if isinstance(c.type, UTCDateTime)]
    for row in rows:
        try:
            values = row._asdict()
            for name in time_columns:
                values[name] = _TIME.process_result_value(values[name], dialect)
            stored = _stored_of(SimpleNamespace(**values))
        except (ValueError, TypeError) as error:
            yield UnreadableRow(row.position, f"row cannot be read back: {error}")
            return
        if row.stream != stored.event.stream:
            yield UnreadableRow(row.position, "stream column does not match bucket and key")
            return
        yield stored


def _key_filters(
    bucket_column: Any, key_column: Any, bucket: str | None, prefix: str | None
) -> list[Any]:
    conditions: list[Any] = []
    if bucket is not None:
        conditions.append(bucket_column == bucket)
    if prefix:
        conditions.append(key_column >= prefix)
        upper = prefix_upper_bound(prefix)
        if upper is not None:
            conditions.append(key_column < upper)
    return conditions


def _event_filters(query: EventQuery) -> list[Any]:
    conditions = _key_filters(events.c.bucket, events.c.key, query.bucket, query.prefix)
    if query.since is not None:
        conditions.append(events.c.event_time >= query.since)
    if query.until is not None:
        conditions.append(events.c.event_time < query.until)
    if query.principal is not None:
        conditions.append(events.c.principal_id == query.principal)
    alternatives: list[Any] = []
    for pattern in query.types:
        name = pattern[3:] if pattern.startswith("s3:") else pattern
        if name.endswith("*"):
            stem = name[:-1]
            upper = prefix_upper_bound(stem) if stem else None
            clause = events.c.event_name >= stem
            alternatives.append(sa.and_(clause, events.c.event_name < upper) if upper else clause)
        else:
            alternatives.append(events.c.event_name == name)
    if alternatives:
        conditions.append(sa.or_(*alternatives))
    return conditions
