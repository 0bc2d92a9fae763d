"""The object catalog: the current state of every key, kept by the rules in core.objectstate."""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

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
        changed = fold(states, relevant)
        save_states(context.connection, catalog, versions, states, changed)


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
    connection: Connection,
    catalog: sa.Table,
    versions: sa.Table,
    states: Mapping[Key, ObjectState],
    changed: Mapping[Key, set[str]],
) -> None:
    """Write what changed: the changed version slots and the catalog rows of changed keys,
    each as one INSERT ... ON CONFLICT DO UPDATE (an upsert) for the whole batch."""
    if not changed:
        return
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
    dialect = connection.dialect.name
    if version_rows:
        connection.execute(_upsert(versions, dialect), version_rows)
    if catalog_rows:
        connection.execute(_upsert(catalog, dialect), catalog_rows)


@cache
def _upsert(table: sa.Table, dialect: str) -> sa.Insert:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE SET every other column."""
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    keys = [column.name for column in table.primary_key.columns]
    return insert.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys},
    )
