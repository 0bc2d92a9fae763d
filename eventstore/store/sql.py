"""The event log in SQL (SQLite or PostgreSQL) through SQLAlchemy Core.

Appends are serialised: SQLite's `BEGIN IMMEDIATE` and, on PostgreSQL, a transaction-scoped
advisory lock taken before the head of the log is read. Positions are therefore handed out
in commit order, with no gaps: a reader that has seen position n has seen every position
below it, and the hash chain can link each row to the one committed before it. The lock is
held for reading the head, inserting and committing, nothing else (no projection runs in an
append), and is released by COMMIT or ROLLBACK, so a crashed writer cannot leave it behind.

Why this holds on PostgreSQL (the classic failure is a sequence value committing after a
larger one, so a reader checkpoints past it and never sees it):

1. Positions are not drawn from a sequence: each append computes head + 1 while holding
   `pg_advisory_xact_lock(APPEND_LOCK_ID)`, so at most one append is between reading the
   head and committing.
2. The append runs at READ COMMITTED (the engine says so on every BEGIN, whatever the
   server's default), where each statement takes a fresh snapshot. The head is read by a
   statement that starts after the lock was granted. (The known event ids are read just
   before the lock; an id committed in between fails the INSERT on the unique constraint,
   and the append is retried, so dedupe is still exact.)
3. PostgreSQL makes a transaction visible to new snapshots before it releases its locks at
   COMMIT. So when writer B gets the lock from writer A, A's rows are visible to B's next
   statement: B's positions start after A's last one, B's dedupe sees A's event ids, and
   B's first hash links to A's last row.
4. B commits only after A did, so any snapshot that sees B's rows also sees A's. A reader
   that has seen position n has seen 1..n, whatever its own isolation level; a catch-up
   projection may checkpoint at the largest position it saw.

The cost is that appends do not overlap; each holds the lock for the head's read, the
hashing, one round trip for INSERT and COMMIT (see pg_append.py: pipelined). A
lost connection rolls the append back on the server (nothing is half-stored) and surfaces
as StorageError; if it is lost during COMMIT the outcome is unknown, and the retry is safe
because event ids are unique: what committed is counted as duplicates.
tests/integration/test_concurrency.py is the proof under load.
"""

import heapq
import logging
import sqlite3
from collections.abc import Collection, Generator, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError

from eventstore.core.events import EVENT_COLUMNS, NewEvent, StoredEvent
from eventstore.core.hashing import (
    Anchor,
    PendingRow,
    UnreadableRow,
    VerifyResult,
    verify_chain,
)
from eventstore.core.objectstate import CatalogEntry, ObjectState
from eventstore.core.parsing import MAX_SEQUENCER_CHARS
from eventstore.errors import BadCursorError, StorageError
from eventstore.store import base
from eventstore.store.base import AppendResult, EventQuery, HistoryCursor, prefix_upper_bound
from eventstore.store.database import (
    APPEND_LOCK_ID,
    WRITE,
    create_engine,
    ensure_schema,
    resolve_url,
)
from eventstore.store.schema import UTCDateTime, events
from eventstore.store.sqlite_append import Known, append_sqlite
from eventstore.store.sqlite_append import known_ids as sqlite_known_ids

logger = logging.getLogger(__name__)

_TIME = UTCDateTime()
_ID_CHUNK = 500
_RETRIES = 3  # an id stored by another writer between our check and our insert

_SELECT_COLUMNS = sa.select(*(events.c[name] for name in EVENT_COLUMNS))


class SqlEventStore:
    """The event log on one SQLAlchemy engine (SQLite or PostgreSQL); knows no projection."""

    append_lock_id = APPEND_LOCK_ID

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- writing ------------------------------------------------------------------------

    def append(
        self, new_events: Sequence[NewEvent], *, correlation_id: str | None = None
    ) -> AppendResult:
        """Store the events not already in the log, in one transaction, and nothing else."""
        # Everything of a row but its position, time and hash is built before the lock.
        unique: dict[str, PendingRow] = {}
        for given in new_events:
            if given.event_id in unique:
                continue
            event = given
            if correlation_id is not None and event.correlation_id is None:
                event = event.correlated(correlation_id)
            unique[event.event_id] = PendingRow.of(event)
        in_batch_duplicates = len(new_events) - len(unique)
        for attempt in range(_RETRIES):
            try:
                if self.engine.dialect.name == "postgresql":
                    from eventstore.store.pg_append import append_pipelined  # needs psycopg

                    stored, known = append_pipelined(
                        self.engine, unique, ids_under_lock=attempt > 0
                    )
                else:
                    stored, known = append_sqlite(self.engine, unique)
                break
            except IntegrityError as error:
                # Only the PostgreSQL path checks ids before the lock; a writer that stored one
                # of them meanwhile makes the insert fail whole, and the retry counts it.
                if attempt == _RETRIES - 1:
                    raise StorageError(
                        f"append failed, nothing was stored: {error.orig}"
                    ) from error
            except DBAPIError as error:
                raise StorageError(f"append failed, nothing was stored: {error.orig}") from error
        conflicts = _conflicts(unique, known)
        return AppendResult(tuple(stored), in_batch_duplicates + len(known), conflicts)

    @staticmethod
    def lock_appends(connection: Connection) -> None:
        """Hold off appends until this transaction ends (SQLite: every writer already does).

        A swap of a projection's shadow tables takes it, so that the head stays put while
        the last events are folded; the lock is always taken before any checkpoint row."""
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(APPEND_LOCK_ID)))

    def write(self) -> "_WriteTransaction":
        """A connection in a write transaction: `with store.write() as connection: ...`."""
        return _WriteTransaction(self.engine)

    # -- reading --------------------------------------------------------------------------

    @staticmethod
    def hashes_at(connection: Connection, positions: Collection[int]) -> dict[int, str]:
        """The hash of the row at each of `positions` that the log holds."""
        wanted = sorted(set(positions))
        found: dict[int, str] = {}
        for start in range(0, len(wanted), _ID_CHUNK):
            rows = connection.execute(
                sa.select(events.c.position, events.c.hash).where(
                    events.c.position.in_(wanted[start : start + _ID_CHUNK])
                )
            )
            found.update((row.position, row.hash) for row in rows)
        return found

    def known_ids(self, event_ids: Collection[str]) -> set[str]:
        """Which of `event_ids` the log holds (a reactor's check for outcomes already
        recorded, so a redelivered event is not processed twice); through the driver, as it
        runs once per reactor invocation."""
        wanted = list(set(event_ids))
        if not wanted:
            return set()
        postgres = self.engine.dialect.name == "postgresql"
        with self.engine.connect() as connection:
            if postgres:
                rows = connection.exec_driver_sql(
                    "SELECT event_id FROM events WHERE event_id = ANY(%s)", (wanted,)
                )
                return {row[0] for row in rows}
            driver: sqlite3.Connection = connection.connection.driver_connection  # type: ignore[assignment]
            return set(sqlite_known_ids(driver, wanted))

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
        """Events after `after` in position order, read through `connection` page by page.

        Read through the driver: projections fold every event of the log through here, and
        SQLAlchemy's per-row result processing cost more than the fold itself."""
        sql, to_time = _read_page_sql(connection.dialect)
        remaining = limit
        while remaining is None or remaining > 0:
            page = base.PAGE_ROWS if remaining is None else min(base.PAGE_ROWS, remaining)
            rows = connection.exec_driver_sql(sql, (after, page)).all()
            for row in rows:
                values = list(row)
                values[4], values[19] = to_time(values[4]), to_time(values[19])
                yield StoredEvent.of_values(values)
            if len(rows) < page:
                return
            after = rows[-1][0]
            if remaining is not None:
                remaining -= len(rows)

    def history(self, bucket: str, key: str) -> list[StoredEvent]:
        """Every event of one object, in S3's order (sequencer, then event time)."""
        return list(self.iter_history(bucket, key))

    def iter_history(
        self, bucket: str, key: str, *, after: HistoryCursor | None = None
    ) -> Generator[StoredEvent, None, None]:
        """Every event of one object in S3's order, streamed (after `after`, for paging).

        The order of core.ordering.sort_events_of_one_key without holding the history: the
        database sorts the events with a sequencer by it (right-padded with zeros to the
        column's width, which orders them as padding to their longest does) and those
        without by event time, each a stream read a page at a time, and the two are merged
        here by event time, the sequenced first on a tie, as that function merges them."""
        after = after or HistoryCursor()
        with self.engine.connect() as connection:
            streams = [
                self._history_stream(connection, bucket, key, sequenced=True, after=after),
                self._history_stream(connection, bucket, key, sequenced=False, after=after),
            ]
            yield from heapq.merge(*streams, key=_event_time)

    @staticmethod
    def _history_stream(
        connection: Connection, bucket: str, key: str, *, sequenced: bool, after: HistoryCursor
    ) -> Iterator[StoredEvent]:
        order: tuple[Any, Any]
        conditions = [events.c.bucket == bucket, events.c.key == key]
        if sequenced:
            order = (_padded_sequencer(connection.dialect), events.c.position)
            conditions.append(events.c.sequencer.is_not(None))
            last = after.sequenced
        else:
            order = (events.c.event_time, events.c.position)
            conditions.append(events.c.sequencer.is_(None))
            last = after.unsequenced
        if last:
            mark = connection.execute(
                sa.select(*order).where(events.c.position == last)
            ).one_or_none()
            if mark is None:
                raise BadCursorError(f"history cursor position {last} is not in the log")
            first, position = order
            conditions.append(
                sa.or_(first > mark[0], sa.and_(first == mark[0], position > mark[1]))
            )
        statement = _SELECT_COLUMNS.where(*conditions).order_by(*order)
        rows = connection.execution_options(yield_per=base.PAGE_ROWS).execute(statement)
        for row in rows:
            yield StoredEvent.of_values(row)

    def select_events(self, query: EventQuery) -> list[StoredEvent]:
        """The audit query: events matching every filter, in position order."""
        return list(self.iter_events(query))

    def iter_events(self, query: EventQuery, *, after: int = 0) -> Iterator[StoredEvent]:
        """The audit query, streamed: events matching every filter, in position order (after
        position `after`: a cursor for reading page by page, `limit` rows at a time, with no
        connection held between pages)."""
        conditions = _event_filters(query)
        if after:
            conditions.append(events.c.position > after)
        statement = _SELECT_COLUMNS.where(*conditions).order_by(events.c.position)
        if query.limit is not None:
            statement = statement.limit(query.limit)
        with self.engine.connect() as connection:
            rows = connection.execution_options(yield_per=base.PAGE_ROWS).execute(statement)
            for row in rows:
                yield StoredEvent.of_values(row)

    def objects_as_of(
        self,
        when: datetime,
        *,
        bucket: str | None = None,
        prefix: str | None = None,
        include_deleted: bool = False,
    ) -> Iterator[CatalogEntry]:
        """The object catalog as it stood at `when`, in (bucket, key) order: the log up to
        that event time, folded one key at a time (read by key, then position), so only one
        object's state is held whatever the size of the log."""
        conditions = _key_filters(events.c.bucket, events.c.key, bucket, prefix)
        conditions.append(events.c.event_time <= when)
        statement = _SELECT_COLUMNS.where(*conditions).order_by(
            events.c.bucket, events.c.key, events.c.position
        )
        state: ObjectState | None = None
        with self.engine.connect() as connection:
            for row in connection.execution_options(yield_per=base.PAGE_ROWS).execute(statement):
                stored = StoredEvent.of_values(row)
                event = stored.event
                if state is None or (state.bucket, state.key) != (event.bucket, event.key):
                    yield from _entry_of(state, include_deleted)
                    state = ObjectState(event.bucket, event.key)
                state.apply(event, stored.position)
        yield from _entry_of(state, include_deleted)

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
            rows = connection.execution_options(yield_per=base.PAGE_ROWS).execute(
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


def _entry_of(state: ObjectState | None, include_deleted: bool) -> Iterator[CatalogEntry]:
    entry = state.entry() if state is not None else None
    if entry is not None and (include_deleted or not entry.deleted):
        yield entry


def _read_page_sql(dialect: Dialect) -> tuple[str, Any]:
    """A page of the log as the driver runs it, and how the driver's times become aware UTC."""
    quote = dialect.identifier_preparer.quote
    columns = ", ".join(quote(name) for name in EVENT_COLUMNS)
    mark = "%s" if dialect.name == "postgresql" else "?"
    sql = f"SELECT {columns} FROM events WHERE position > {mark} ORDER BY position LIMIT {mark}"
    if dialect.name == "sqlite":  # SQLAlchemy stores naive UTC as ISO text
        return sql, _sqlite_time
    return sql, _aware_utc


def _event_time(stored: StoredEvent) -> datetime:
    return stored.event.event_time


def _padded_sequencer(dialect: Dialect) -> Any:
    """The sequencer, upper-case and right-padded with zeros to the column's width, compared
    bytewise (PostgreSQL's "C" collation; SQLite's default)."""
    width = MAX_SEQUENCER_CHARS
    padded = sa.func.substr(sa.func.upper(events.c.sequencer).concat("0" * width), 1, width)
    return sa.collate(padded, "C") if dialect.name == "postgresql" else padded


def _sqlite_time(value: str) -> datetime:
    return datetime.fromisoformat(value + "+00:00")  # a third of parsing, then replace()


def _aware_utc(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _conflicts(unique: dict[str, PendingRow], known: Known) -> int:
    """Count (and log) events whose id the log holds with another size or etag: the same S3
    change cannot have two contents, so a producer is broken or someone forges events. The
    first one stays; the log is append-only."""
    conflicts = 0
    for event_id, (size, etag) in known.items():
        pending = unique.get(event_id)
        if pending is None:
            continue
        event = pending.event
        if (event.size, event.etag) != (size, etag):
            conflicts += 1
            logger.warning(
                "event %s arrived again with other contents; the first is kept",
                event_id,
                extra={
                    "event_id": event_id, "stream": event.stream,
                    "stored": {"size": size, "etag": etag},
                    "received": {"size": event.size, "etag": event.etag},
                    "causation_id": event.causation_id,
                },
            )  # fmt: skip
    return conflicts


def _checked_rows(rows: Any, dialect: Dialect) -> Iterator[StoredEvent | UnreadableRow]:
    time_columns = [c.name for c in events.c if isinstance(c.type, UTCDateTime)]
    for row in rows:
        try:
            values = row._asdict()
            for name in time_columns:
                values[name] = _TIME.process_result_value(values[name], dialect)
            stored = StoredEvent.of_values([values[name] for name in EVENT_COLUMNS])
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
