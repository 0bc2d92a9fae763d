"""The object catalog: the current state of every key, kept by the rules in core.objectstate."""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from eventstore.core.events import Effect, StoredEvent
from eventstore.core.objectstate import ObjectState, VersionState
from eventstore.core.ordering import OrderKey
from eventstore.projections.base import Projection, ProjectionContext
from eventstore.store.schema import object_catalog, object_versions

_CHUNK = 400  # keys per IN clause: well under SQLite's variable limit

Key = tuple[str, str]


class ObjectCatalogProjection(Projection):
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
        for stored in relevant:
            event = stored.event
            state = states.setdefault(
                (event.bucket, event.key), ObjectState(event.bucket, event.key)
            )
            state.apply(event, stored.position)
        save_states(context.connection, catalog, versions, states.values())


def _chunks(keys: Iterable[Key]) -> Iterator[dict[str, str | list[str]]]:
    """The parameters of the statements below: one bucket and up to _CHUNK of its keys.

    Not a (bucket, key) row-value IN list: SQLite (3.40) answers that with a scan of the
    whole table, so every batch would cost as much as the catalog is large."""
    by_bucket: dict[str, list[str]] = defaultdict(list)
    for bucket, key in keys:
        by_bucket[bucket].append(key)
    for bucket, names in by_bucket.items():
        for start in range(0, len(names), _CHUNK):
            yield {"bucket": bucket, "keys": names[start : start + _CHUNK]}


@dataclass(frozen=True, slots=True)
class _Statements:
    """The statements over one pair of catalog tables (live, shadow or a projection's copy),
    built once: building them costs more than running them for a small batch."""

    select_versions: sa.Select[Any]
    select_catalog: sa.Select[Any]
    delete_versions: sa.Delete
    delete_catalog: sa.Delete
    insert_versions: sa.Insert
    insert_catalog: sa.Insert


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
        delete_versions=sa.delete(versions).where(of_keys(versions)),
        delete_catalog=sa.delete(catalog).where(of_keys(catalog)),
        insert_versions=sa.insert(versions),
        insert_catalog=sa.insert(catalog),
    )


def load_states(
    connection: Connection, catalog: sa.Table, versions: sa.Table, keys: Iterable[Key]
) -> dict[Key, ObjectState]:
    statements = _statements(catalog, versions)
    states: dict[Key, ObjectState] = {}
    version_rows: dict[Key, list[Any]] = defaultdict(list)
    for chunk in _chunks(keys):
        for row in connection.execute(statements.select_versions, chunk):
            version_rows[(row.bucket, row.key)].append(row)
        catalog_rows = connection.execute(statements.select_catalog, chunk)
        for row in catalog_rows:
            state = ObjectState(row.bucket, row.key)
            state.last_event_name = row.last_event_name
            state.last_event_version = row.last_event_version_id
            state.last_order = OrderKey(row.sequencer, row.last_event_time, row.last_position)
            states[(row.bucket, row.key)] = state
    for key, rows in version_rows.items():
        state = states.setdefault(key, ObjectState(*key))
        for row in rows:
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
    connection: Connection, catalog: sa.Table, versions: sa.Table, states: Iterable[ObjectState]
) -> None:
    """Replace the stored rows of these keys with their folded state."""
    statements = _statements(catalog, versions)
    states = list(states)
    for chunk in _chunks((s.bucket, s.key) for s in states):
        connection.execute(statements.delete_versions, chunk)
        connection.execute(statements.delete_catalog, chunk)
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
        for state in states
        for slot, v in state.versions.items()
    ]
    catalog_rows = []
    for state in states:
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
    if version_rows:
        connection.execute(statements.insert_versions, version_rows)
    if catalog_rows:
        connection.execute(statements.insert_catalog, catalog_rows)
