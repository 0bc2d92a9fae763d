"""The object catalog: the current state of every key, kept by the rules in core.objectstate."""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql

from eventstore.core.events import Effect, NewEvent, StoredEvent
from eventstore.core.objectstate import ObjectState, VersionState
from eventstore.core.ordering import OrderKey
from eventstore.projections.base import (
    Batch,
    PipelinedProjection,
    Projection,
    ProjectionContext,
    Query,
)
from eventstore.store.bulk import column_arrays, unnest_insert, write_rows
from eventstore.store.schema import object_catalog, object_versions

_CHUNK = 400  # keys per IN clause: well under SQLite's variable limit

Key = tuple[str, str]


class ObjectCatalogProjection(Projection, PipelinedProjection):
    """Current state per (bucket, key), last writer wins by sequencer."""

    name = "object_catalog"
    version = 1
    description = "current state of every key: version, size, etag, deleted, last event"
    tables = (object_catalog, object_versions)
    inline = True

    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        relevant = [s for s in events if s.event.effect is not Effect.NONE]
        if not relevant:
            return
        catalog, versions = context.table("object_catalog"), context.table("object_versions")
        keys = {(s.event.bucket, s.event.key) for s in relevant}
        states = load_states(context.connection, catalog, versions, keys)
        changed = fold(states, relevant)
        save_states(context.connection, catalog, versions, states, changed)

    def pipeline_reads(self, events: Sequence[NewEvent]) -> list[Query]:
        keys = {(e.bucket, e.key) for e in events if e.effect is not Effect.NONE}
        sql = _postgres_sql()
        queries: list[Query] = []
        for chunk in _chunks(keys, limit=None):
            params = (chunk["keys"], chunk["bucket"])
            queries += [(sql.select_versions, params), (sql.select_catalog, params)]
        return queries

    def pipeline_writes(
        self, events: Sequence[StoredEvent], rows: Sequence[Sequence[Any]]
    ) -> list[Batch]:
        relevant = [s for s in events if s.event.effect is not Effect.NONE]
        if not relevant:
            return []
        states = states_of_rows(
            (row for result in rows[0::2] for row in result),
            (row for result in rows[1::2] for row in result),
        )
        version_rows, catalog_rows = upsert_rows(states, fold(states, relevant))
        sql = _postgres_sql()
        writes: list[Batch] = []
        if version_rows:
            writes.append((sql.upsert_versions, [column_arrays(object_versions, version_rows)]))
        if catalog_rows:
            writes.append((sql.upsert_catalog, [column_arrays(object_catalog, catalog_rows)]))
        return writes


def fold(states: dict[Key, ObjectState], events: Sequence[StoredEvent]) -> dict[Key, set[str]]:
    """Apply events to the states (adding keys not seen before); return, per key, the
    version slots that changed ("" for the key's summary)."""
    changed: dict[Key, set[str]] = defaultdict(set)
    for stored in events:
        event = stored.event
        key = (event.bucket, event.key)
        state = states.get(key)
        if state is None:
            state = states[key] = ObjectState(event.bucket, event.key)
        changed[key] |= state.apply(event, stored.position)
    return {key: slots for key, slots in changed.items() if slots}


def _chunks(
    keys: Iterable[Key], limit: int | None = _CHUNK
) -> Iterator[dict[str, str | list[str]]]:
    """The parameters of the statements below: one bucket and up to `limit` of its keys.

    Not a (bucket, key) row-value IN list: SQLite (3.40) answers that with a scan of the
    whole table, so every batch would cost as much as the catalog is large."""
    by_bucket: dict[str, list[str]] = defaultdict(list)
    for bucket, key in keys:
        by_bucket[bucket].append(key)
    for bucket, names in by_bucket.items():
        step = limit or len(names)
        for start in range(0, len(names), step):
            yield {"bucket": bucket, "keys": names[start : start + step]}


@dataclass(frozen=True, slots=True)
class _Statements:
    """The statements over one pair of catalog tables (live, shadow or a projection's copy),
    built once: building them costs more than running them for a small batch."""

    select_versions: sa.Select[Any]
    select_catalog: sa.Select[Any]


@cache
def _statements(catalog: sa.Table, versions: sa.Table) -> _Statements:
    def of_keys(table: sa.Table) -> sa.ColumnElement[bool]:
        return sa.and_(
            table.c.bucket == sa.bindparam("bucket"),
            table.c.key.in_(sa.bindparam("keys", expanding=True)),
        )

    return _Statements(
        select_versions=sa.select(versions).where(of_keys(versions)),
        select_catalog=sa.select(catalog).where(of_keys(catalog)),
    )


@dataclass(frozen=True, slots=True)
class _PostgresSql:
    """The live tables' statements as psycopg runs them (no IN-list limit: an array)."""

    select_versions: str
    select_catalog: str
    upsert_versions: str
    upsert_catalog: str


@cache
def _postgres_sql() -> _PostgresSql:
    return _PostgresSql(
        select_versions=_postgres_select(object_versions),
        select_catalog=_postgres_select(object_catalog),
        upsert_versions=unnest_insert(object_versions, upsert=True),
        upsert_catalog=unnest_insert(object_catalog, upsert=True),
    )


@cache
def _postgres_select(table: sa.Table) -> str:
    """The rows of one bucket's keys; parameters (keys, bucket).

    One index lookup per key, whatever the planner's statistics say. A plain
    `bucket = %s AND key = ANY(%s)` on a young table (not yet analysed) was planned as a
    scan of the whole bucket: every append cost as much as the catalog was large."""
    quote = postgresql.dialect().identifier_preparer.quote  # type: ignore[no-untyped-call]
    columns = ", ".join(quote(c.name) for c in table.columns)
    return (
        f"SELECT rows.* FROM unnest(%s::text[]) AS wanted(key) CROSS JOIN LATERAL"
        f" (SELECT {columns} FROM {quote(table.name)}"
        f" WHERE bucket = %s AND key = wanted.key OFFSET 0) AS rows"
    )


def load_states(
    connection: Connection, catalog: sa.Table, versions: sa.Table, keys: Iterable[Key]
) -> dict[Key, ObjectState]:
    version_rows: list[Any] = []
    catalog_rows: list[Any] = []
    if connection.dialect.name == "postgresql":
        for chunk in _chunks(keys, limit=None):
            params = (chunk["keys"], chunk["bucket"])
            version_rows.extend(connection.exec_driver_sql(_postgres_select(versions), params))
            catalog_rows.extend(connection.exec_driver_sql(_postgres_select(catalog), params))
        return states_of_rows(version_rows, catalog_rows)
    statements = _statements(catalog, versions)
    for chunk in _chunks(keys):
        version_rows.extend(connection.execute(statements.select_versions, chunk))
        catalog_rows.extend(connection.execute(statements.select_catalog, chunk))
    return states_of_rows(version_rows, catalog_rows)


def states_of_rows(
    version_rows: Iterable[Any], catalog_rows: Iterable[Any]
) -> dict[Key, ObjectState]:
    """The states of keys from their rows in the two tables (rows with named columns)."""
    states: dict[Key, ObjectState] = {}
    for row in catalog_rows:
        state = ObjectState(row.bucket, row.key)
        state.last_event_name = row.last_event_name
        state.last_event_version = row.last_event_version_id
        state.last_order = OrderKey(row.sequencer, row.last_event_time, row.last_position)
        states[(row.bucket, row.key)] = state
    for row in version_rows:
        key = (row.bucket, row.key)
        if key not in states:
            states[key] = ObjectState(row.bucket, row.key)
        state = states[key]
        created = None
        if row.created_time is not None:
            created = OrderKey(row.created_sequencer, row.created_time, row.created_position)
        state.versions[row.slot] = VersionState(
            version_id=row.version_id,
            exists=row.exists,
            delete_marker=row.delete_marker,
            size=row.size,
            etag=row.etag,
            last=OrderKey(row.last_sequencer, row.last_time, row.last_position),
            created=created,
        )
    return states


def save_states(
    connection: Connection,
    catalog: sa.Table,
    versions: sa.Table,
    states: Mapping[Key, ObjectState],
    changed: Mapping[Key, set[str]],
) -> None:
    """Write what changed: the changed version slots and the catalog rows of changed keys,
    each table in one upsert for the whole batch."""
    version_rows, catalog_rows = upsert_rows(states, changed)
    write_rows(connection, versions, version_rows, upsert=True)
    write_rows(connection, catalog, catalog_rows, upsert=True)


def upsert_rows(
    states: Mapping[Key, ObjectState], changed: Mapping[Key, set[str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows to upsert into the versions and the catalog tables: the changed version
    slots, and the catalog rows of the changed keys."""
    version_rows = [
        {
            "bucket": state.bucket,
            "key": state.key,
            "slot": slot,
            "version_id": v.version_id,
            "exists": v.exists,
            "delete_marker": v.delete_marker,
            "size": v.size,
            "etag": v.etag,
            "last_sequencer": v.last.sequencer,
            "last_time": v.last.event_time,
            "last_position": v.last.position,
            "created_sequencer": v.created.sequencer if v.created else None,
            "created_time": v.created.event_time if v.created else None,
            "created_position": v.created.position if v.created else None,
        }
        for key, slots in changed.items()
        for state in (states[key],)
        for slot, v in state.versions.items()
        if slot in slots
    ]
    catalog_rows = []
    for key in changed:
        state = states[key]
        entry = state.entry()
        if entry is None:
            continue
        catalog_rows.append(
            {
                "bucket": entry.bucket,
                "key": entry.key,
                "version_id": entry.version_id,
                "size": entry.size,
                "etag": entry.etag,
                "sequencer": entry.sequencer,
                "last_event_name": entry.last_event_name,
                "last_event_time": entry.last_event_time,
                "last_event_version_id": state.last_event_version,
                "last_position": entry.last_position,
                "deleted": entry.deleted,
            }
        )
    return version_rows, catalog_rows
