"""The append on PostgreSQL in two round trips, with psycopg's pipeline mode.

Appends are serialised by the advisory lock (see sql.py for why that makes position order
commit order), so the time an append holds the lock bounds the whole system's throughput.
The lock covers nothing but the log:

1. timeouts, which of the batch's ids are known, `pg_advisory_xact_lock`, the head;
2. the INSERT of the new events (one `INSERT ... SELECT FROM` a JSON document or arrays), COMMIT.

The server runs a pipeline's statements in order: the known ids are read *before* the lock
is granted (so that query is not part of the lock's hold time) and the head after it. An id
that another writer commits between the two makes the INSERT fail on the unique constraint;
the transaction is rolled back whole and the caller retries with `ids_under_lock`, which
reads the known ids after the lock is granted, so the retry cannot meet the same race (many
writers sharing ids under load could otherwise lose it again and again). Between
the round trips only the hashes and the INSERT's parameters are computed; the rows' JSON and
most of what is hashed were built before the lock was requested. A batch of up to JSON_ROWS
events (a Lambda batch of 10) is inserted from one JSON document that orjson writes in
microseconds; a larger one from one binary array per column, which psycopg builds in Python
(about 120 us of client CPU per 10 rows, so every column but position, time and hash is
dumped before the lock: under it, that took about 90 us per 10 events, 0.9 ms per 100).

psycopg's pipeline mode can hang when a message larger than the socket buffers is sent in a
pipeline (psycopg issue #685): a large INSERT is therefore sent on its own and COMMIT after
it, one round trip more; tests append batches of 1,000 and 2,300 events on PostgreSQL.
"""

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg.adapt import Dumper, PyFormat, Transformer
from psycopg.pq import Format
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from eventstore.core.events import EVENT_COLUMNS, StoredEvent
from eventstore.core.hashing import GENESIS_HASH, PendingRow, seal_all
from eventstore.errors import StorageError
from eventstore.store.bulk import column_arrays, unnest_insert
from eventstore.store.database import APPEND_LOCK_ID, database_timeouts
from eventstore.store.schema import events

_SET_TIMEOUTS = (
    "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)"
)
_KNOWN = "SELECT event_id, size, etag FROM events WHERE event_id = ANY(%s)"
_LOCK = "SELECT pg_advisory_xact_lock(%s)"
_HEAD = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
# Larger INSERTs are not pipelined with their COMMIT: psycopg #685 (measured: 2,300 events of
# ~0.7 KB hung in COMMIT; a Lambda batch of 10 is ~10 KB).
_PIPELINED_BYTES = 64 * 1024
# A batch of up to this many rows goes in as one JSON document (orjson's, which the server
# turns into rows): psycopg builds binary arrays in Python, which for a Lambda batch of 10
# cost more client CPU than everything else of the append. Past about 25 rows the server's
# JSON parsing costs more than the arrays save (measured on 10, 25, 50, 100 and 1,000 rows).
JSON_ROWS = 25
_NAMES = ", ".join(f'"{name}"' for name in EVENT_COLUMNS)
_INSERT_JSON = (
    f"INSERT INTO events ({_NAMES})"
    f" SELECT {_NAMES} FROM json_populate_recordset(NULL::events, %s::json)"
)


# The columns known only under the lock; every other one is dumped before it is requested.
_POSITION, _RECORDED_AT, _HASH = (
    EVENT_COLUMNS.index(name) for name in ("position", "recorded_at", "hash")
)
_SEALED = {_POSITION, _RECORDED_AT, _HASH}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Dumped:
    """A parameter psycopg has already turned into its binary form (with its type's oid)."""

    __slots__ = ("data", "oid")

    def __init__(self, data: Any, oid: int) -> None:
        self.data, self.oid = data, oid


class _DumpedDumper(Dumper):
    """Hands a _Dumped parameter over as it is, with its own oid."""

    format = Format.BINARY

    def get_key(self, obj: Any, format: PyFormat) -> Any:
        return (type(obj), obj.oid)

    def upgrade(self, obj: Any, format: PyFormat) -> "_DumpedDumper":
        dumper = type(self)(type(obj))
        dumper.oid = obj.oid
        return dumper

    def dump(self, obj: Any) -> Any:
        return obj.data


def _dumped_columns(driver: "psycopg.Connection[Any]", rows: Sequence[PendingRow]) -> list[Any]:
    """The INSERT's parameter of each column that does not depend on the head, dumped now
    (None in the places of the sealed columns; a column of nothing but NULLs, which psycopg
    types only from the query, is left to it)."""
    values = [StoredEvent(0, row.event, row.record_json, _EPOCH, "").values() for row in rows]
    transformer = Transformer(driver)
    dumped: list[Any] = []
    for index, column in enumerate(zip(*values, strict=True)):
        array = list(column)
        if index in _SEALED:
            dumped.append(None)
        elif all(value is None for value in array):
            dumped.append(array)
        else:
            dumper = transformer.get_dumper(array, PyFormat.BINARY)
            dumped.append(_Dumped(dumper.dump(array), dumper.oid))
    return dumped


def _insert(stored: Sequence[StoredEvent], dumped: Sequence[Any] | None) -> tuple[str, Any]:
    """The INSERT of the sealed rows, and its parameters: up to JSON_ROWS rows as one JSON
    document, more as one array per column (with the columns `dumped` before the lock,
    when they were)."""
    if len(stored) <= JSON_ROWS:
        document = orjson.dumps([dict(zip(EVENT_COLUMNS, s.values(), strict=True)) for s in stored])
        return _INSERT_JSON, (document.decode(),)
    if dumped is not None:
        return unnest_insert(events, upsert=False), _insert_parameters(stored, dumped)
    return unnest_insert(events, upsert=False), column_arrays([s.values() for s in stored])


def _insert_parameters(stored: Sequence[StoredEvent], dumped: Sequence[Any]) -> list[Any]:
    """The INSERT's parameters: the sealed columns now, the others as dumped before."""
    sealed = {
        _POSITION: [event.position for event in stored],
        _RECORDED_AT: [event.recorded_at for event in stored],
        _HASH: [event.hash for event in stored],
    }
    return [sealed[index] if d is None else d for index, d in enumerate(dumped)]


class LockHolds:
    """How long this process's appends held the append lock (seconds), when `enabled`:
    bench/bench_postgres.py reports it. From the head's arrival to COMMIT's answer."""

    enabled = False
    seconds: list[float] = []  # noqa: RUF012 - one process-wide record, on purpose


def append_pipelined(
    engine: Engine, unique: dict[str, PendingRow], *, ids_under_lock: bool = False
) -> tuple[list[StoredEvent], dict[str, tuple[int | None, str | None]]]:
    """Append the rows not already in the log; return what was stored and the known ids
    (with their stored size and etag). Raises IntegrityError when another writer stored one
    of the ids meanwhile (retry), StorageError when the database fails."""
    with engine.connect() as connection:
        driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
        try:
            driver.adapters.register_dumper(_Dumped, _DumpedDumper)
            dumped = (
                _dumped_columns(driver, list(unique.values())) if len(unique) > JSON_ROWS else None
            )
            with driver.pipeline():
                driver.execute(_SET_TIMEOUTS, database_timeouts())
                if ids_under_lock:
                    driver.execute(_LOCK, (APPEND_LOCK_ID,))
                known_cursor = driver.execute(_KNOWN, (list(unique),))
                if not ids_under_lock:
                    driver.execute(_LOCK, (APPEND_LOCK_ID,))
                head_cursor = driver.execute(_HEAD)
            locked_at = time.perf_counter()
            known = {row[0]: (row[1], row[2]) for row in known_cursor.fetchall()}
            head_row = head_cursor.fetchone()
            head, head_hash = head_row if head_row is not None else (0, GENESIS_HASH)
            fresh = [row for event_id, row in unique.items() if event_id not in known]
            if not fresh:
                driver.rollback()
                return [], known
            stored = seal_all(fresh, head, head_hash, datetime.now(UTC))
            insert, parameters = _insert(stored, dumped if len(fresh) == len(unique) else None)
            if sum(len(row.record_json) for row in fresh) < _PIPELINED_BYTES:
                with driver.pipeline():
                    driver.execute(insert, parameters)
                    driver.commit()
            else:  # one round trip more, rather than a pipeline that can hang (see above)
                driver.execute(insert, parameters)
                driver.commit()
            if LockHolds.enabled:
                LockHolds.seconds.append(time.perf_counter() - locked_at)
            return stored, known
        except psycopg.errors.UniqueViolation as error:
            _abandon(connection, driver)
            raise IntegrityError("append", None, error) from error
        except psycopg.Error as error:
            _abandon(connection, driver)
            raise StorageError(f"append failed, nothing was stored: {error}") from error
        except BaseException:
            _abandon(connection, driver)
            raise


def _abandon(connection: Connection, driver: "psycopg.Connection[Any]") -> None:
    """Roll back; a connection that broke is thrown away rather than pooled again."""
    if driver.broken:
        connection.invalidate()
        return
    try:
        driver.rollback()
    except psycopg.Error:
        connection.invalidate()
