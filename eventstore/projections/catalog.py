"""The object catalog: the current state of every key, kept by the rules in core.objectstate,
and the live objects and bytes per prefix that follow from it.

One fold feeds three tables: `object_catalog` (one row per key, what `eventstore objects`
shows), `object_versions` (every version of each key that has more than one: the state the
rules need to find the current version again when one is deleted) and `prefix_stats`
(objects and bytes per prefix at depth EVENTSTORE_PREFIX_DEPTH). A key with one version (every
key of an unversioned bucket, most keys of a versioned one) is all in its catalog row
(ObjectState.of_one_version): a version row for it would repeat the catalog row, and wrote
as many rows again. The prefix statistics used to be a projection of their own that folded
the same rules into a copy of the first two tables; deriving them from the catalog's fold
halves the work of both.
"""

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from eventstore.core.events import Effect, StoredEvent, effect_of
from eventstore.core.objectstate import CatalogEntry, ObjectState, VersionState
from eventstore.core.ordering import OrderKey
from eventstore.projections.base import Fold, Projection, ProjectionContext
from eventstore.store import base as store_base
from eventstore.store.base import prefix_upper_bound
from eventstore.store.bulk import time_param, write_rows
from eventstore.store.schema import object_catalog, object_versions, projection_metadata

_CHUNK = 400  # keys per IN clause: well under SQLite's variable limit
KEEP_AFTER_FLUSH = 25_000  # keys a fold keeps in memory after a flush; past it, it forgets

Key = tuple[str, str]
Contribution = tuple[int, int]  # (objects, bytes) a key adds to its prefix

prefix_stats = sa.Table(
    "prefix_stats",
    projection_metadata,
    sa.Column("bucket", object_catalog.c.bucket.type, primary_key=True),
    sa.Column("prefix", object_catalog.c.key.type, primary_key=True),
    sa.Column("objects", sa.BigInteger(), nullable=False),
    sa.Column("bytes", sa.BigInteger(), nullable=False),
)


def prefix_of(key: str, depth: int) -> str:
    """The first `depth` folders of `key`, with a trailing slash; "" for a top-level key."""
    cut = 0
    for _ in range(depth):
        slash = key.find("/", cut)
        if slash < 0:
            break
        cut = slash + 1
    return key[:cut]


def prefix_depth() -> int:
    depth = int(os.environ.get("EVENTSTORE_PREFIX_DEPTH", "2"))
    if depth < 1:
        raise ValueError("prefix depth must be at least 1")
    return depth


class ObjectCatalogProjection(Projection):
    """Current state per (bucket, key), last writer wins by sequencer; objects and bytes
    per prefix."""

    name = "object_catalog"
    version = 3  # 3: no version rows for a key with one version
    description = (
        "current state of every key (version, size, etag, deleted, last event) and live "
        "objects and bytes per prefix (depth from EVENTSTORE_PREFIX_DEPTH, default 2)"
    )
    tables = (object_catalog, object_versions, prefix_stats)

    def __init__(self, depth: int | None = None) -> None:
        self.depth = depth if depth is not None else prefix_depth()
        if self.depth < 1:
            raise ValueError("prefix depth must be at least 1")

    @property
    def effective_version(self) -> int:
        # The depth shapes every prefix row: a new depth is a new version.
        return self.version * 100 + self.depth

    def start(self) -> "CatalogFold":
        return CatalogFold(self.depth)


class CatalogFold(Fold):
    """The catalog rules over the keys a run touches, in memory; what changed is written at
    each flush, one upsert per table."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.states: dict[Key, ObjectState] = {}
        self.changed: dict[Key, set[str]] = defaultdict(set)
        # Each changed key's contribution to its prefix as the tables last stored it, and how
        # many versions they held of it (its version rows exist only from two on).
        self.stored_contribution: dict[Key, Contribution] = {}
        self.stored_versions: dict[Key, int] = {}
        self.prefixes: dict[Key, list[int]] = {}  # (bucket, prefix) -> [objects, bytes]

    @property
    def held(self) -> int:
        return len(self.states)

    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        relevant = [
            (stored, effect)
            for stored in events
            if (effect := effect_of(stored.event.event_name)) is not Effect.NONE
        ]
        if not relevant:
            return
        states = self.states
        if not context.fresh:
            missing = {(s.event.bucket, s.event.key) for s, _ in relevant} - states.keys()
            if missing:
                states.update(_load_states(context, missing))
        changed, stored_contribution = self.changed, self.stored_contribution
        stored_versions = self.stored_versions
        for stored, effect in relevant:
            event = stored.event
            key = (event.bucket, event.key)
            state = states.get(key)
            if state is None:  # not in the tables either: it contributes nothing yet
                state = states[key] = ObjectState(event.bucket, event.key)
                stored_contribution.setdefault(key, (0, 0))
                stored_versions.setdefault(key, 0)
            elif key not in stored_contribution:
                stored_contribution[key] = _contribution(state)
                stored_versions[key] = len(state.versions)
            slot, summary = state.fold(event, effect, stored.position)
            if slot is not None:
                changed[key].add(slot)
            elif summary:  # only the key's catalog row changed
                changed.setdefault(key, set())

    def flush(self, context: ProjectionContext) -> None:
        connection = context.connection
        to_param = time_param(connection.dialect)
        version_rows: list[tuple[Any, ...]] = []
        catalog_rows: list[tuple[Any, ...]] = []
        deltas: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
        states, stored_contribution, depth = self.states, self.stored_contribution, self.depth
        changed, stored_versions = self.changed, self.stored_versions
        # In key order: each row lands next to the last in the B-trees (measured +3-6 %);
        # sorting the keys costs a third of sorting the rows.
        for key in sorted(changed):
            state = states[key]
            versions = state.versions
            if len(versions) > 1:  # one version is all in the catalog row: no version row
                # A key that had one version gets the rows of all of them now.
                slots = changed[key] if stored_versions.get(key, 0) > 1 else versions
                for slot in slots:
                    version = versions.get(slot)
                    if version is not None:
                        version_rows.append(_version_row(state, slot, version, to_param))
            last = state.last_order
            if last is None:  # no state-changing event yet: no catalog row
                continue
            version_id, size, etag, deleted = state.shown()
            catalog_rows.append((
                state.bucket, state.key, version_id, size, etag, last.sequencer,
                state.last_event_name, to_param(last.event_time), state.last_event_version,
                last.position, deleted,
            ))  # fmt: skip
            before = stored_contribution.get(key, (0, 0))
            after = (0, 0) if deleted else (1, size or 0)
            if before != after:
                delta = deltas[(key[0], prefix_of(key[1], depth))]
                delta[0] += after[0] - before[0]
                delta[1] += after[1] - before[1]
        write_rows(
            connection, context.table("object_versions"), version_rows, upsert=True, ready=True
        )
        write_rows(
            connection, context.table("object_catalog"), catalog_rows, upsert=True, ready=True
        )
        self._write_prefixes(context, deltas)
        self.changed.clear()
        self.stored_contribution.clear()
        self.stored_versions.clear()
        if len(self.states) > KEEP_AFTER_FLUSH:
            self.states.clear()  # what was flushed can be read back

    def _write_prefixes(self, context: ProjectionContext, deltas: dict[Key, list[int]]) -> None:
        if not deltas:
            return
        table = context.table("prefix_stats")
        missing = [p for p in deltas if p not in self.prefixes]
        if missing and not context.fresh:
            self.prefixes.update(_load_prefixes(context.connection, table, missing))
        rows: list[tuple[str, str, int, int]] = []
        emptied: list[Key] = []
        for (bucket, prefix), (objects, size) in deltas.items():
            total = self.prefixes.setdefault((bucket, prefix), [0, 0])
            total[0] += objects
            total[1] += size
            if total[0] or total[1]:
                rows.append((bucket, prefix, total[0], total[1]))
            else:
                emptied.append((bucket, prefix))
        write_rows(context.connection, table, rows, upsert=True)
        for bucket, prefix in emptied:  # an emptied prefix has no row
            context.connection.execute(
                sa.delete(table).where(table.c.bucket == bucket, table.c.prefix == prefix)
            )
            del self.prefixes[(bucket, prefix)]


def _contribution(state: ObjectState) -> Contribution:
    """What a key adds to its prefix: one object and its size, unless it shows as deleted."""
    if state.last_order is None:
        return 0, 0
    _, size, _, deleted = state.shown()
    return (0, 0) if deleted else (1, size or 0)


def _version_row(
    state: ObjectState, slot: str, v: VersionState, to_param: Callable[[datetime], Any]
) -> tuple[Any, ...]:
    last, created = v.last, v.created
    last_time = to_param(last.event_time)
    if created is None:
        made: tuple[Any, Any, Any] = (None, None, None)
    else:
        made_time = last_time if created is last else to_param(created.event_time)
        made = (created.sequencer, made_time, created.position)
    return (
        state.bucket, state.key, slot, v.version_id, v.exists, v.delete_marker, v.size, v.etag,
        last.sequencer, last_time, last.position, *made,
    )  # fmt: skip


def _chunks(keys: Iterable[Key], limit: int | None = _CHUNK) -> Iterator[tuple[str, list[str]]]:
    """One bucket and up to `limit` of its keys at a time.

    Not a (bucket, key) row-value IN list: SQLite (3.40) answers that with a scan of the
    whole table, so every chunk would cost as much as the catalog is large."""
    by_bucket: dict[str, list[str]] = defaultdict(list)
    for bucket, key in keys:
        by_bucket[bucket].append(key)
    for bucket, names in by_bucket.items():
        step = limit or len(names)
        for start in range(0, len(names), step):
            yield bucket, names[start : start + step]


@cache
def _postgres_select(table_name: str, columns: tuple[str, ...]) -> str:
    """The rows of one bucket's keys; parameters (keys, bucket).

    One index lookup per key, whatever the planner's statistics say. A plain
    `bucket = %s AND key = ANY(%s)` on a young table (not yet analysed) was planned as a
    scan of the whole bucket: every chunk cost as much as the catalog was large."""
    quote = postgresql.dialect().identifier_preparer.quote  # type: ignore[no-untyped-call]
    names = ", ".join(quote(c) for c in columns)
    return (
        f"SELECT rows.* FROM unnest(%s::text[]) AS wanted(key) CROSS JOIN LATERAL"
        f" (SELECT {names} FROM {quote(table_name)}"
        f" WHERE bucket = %s AND key = wanted.key OFFSET 0) AS rows"
    )


def _load_states(context: ProjectionContext, keys: Iterable[Key]) -> dict[Key, ObjectState]:
    """The stored states of `keys` (those the tables hold), read through the driver.

    The catalog first: a key has version rows only if it has a catalog row (its first
    state-changing event wrote both), so keys seen for the first time, the usual case while
    ingesting, cost one query instead of two."""
    connection = context.connection
    catalog, versions = context.table("object_catalog"), context.table("object_versions")
    version_rows: list[Any] = []
    catalog_rows: list[Any] = []
    postgres = connection.dialect.name == "postgresql"
    for bucket, names in _chunks(keys, limit=None if postgres else _CHUNK):
        found = _select_keys(connection, catalog, bucket, names, postgres)
        catalog_rows.extend(found)
        if found:
            stored = [row.key for row in found]
            version_rows.extend(_select_keys(connection, versions, bucket, stored, postgres))
    return states_of_rows(version_rows, catalog_rows)


def _select_keys(
    connection: Connection, table: sa.Table, bucket: str, names: list[str], postgres: bool
) -> list[Any]:
    """The rows of `table` for one bucket's keys `names`."""
    columns = tuple(table.c.keys())
    if postgres:
        result = connection.exec_driver_sql(_postgres_select(table.name, columns), (names, bucket))
    else:
        result = connection.exec_driver_sql(
            _sqlite_select(table.name, columns, len(names)), (bucket, *names)
        )
    return [_Row(result.keys(), row) for row in result]


class _Row:
    """A driver row with its columns as attributes, times as aware UTC datetimes."""

    def __init__(self, names: Any, values: Any) -> None:
        for name, value in zip(names, values, strict=True):
            if isinstance(value, str) and name.endswith("_time"):  # SQLite's ISO text
                setattr(self, name, datetime.fromisoformat(value).replace(tzinfo=UTC))
            else:
                setattr(self, name, value)


@cache
def _sqlite_select(table_name: str, columns: tuple[str, ...], count: int, name: str = "key") -> str:
    """The rows of one bucket whose `name` is one of `count` values; parameters (bucket,
    *values)."""
    quote = sqlite_dialect().identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    marks = ", ".join("?" * count)
    return f"SELECT {names} FROM {quote(table_name)} WHERE bucket = ? AND {name} IN ({marks})"


def states_of_rows(
    version_rows: Iterable[Any], catalog_rows: Iterable[Any]
) -> dict[Key, ObjectState]:
    """The states of keys from their rows in the two tables (rows with named columns): from
    their version rows where they have them, else from the catalog row alone."""
    states: dict[Key, ObjectState] = {}
    for row in version_rows:
        key = (row.bucket, row.key)
        if key not in states:
            states[key] = ObjectState(row.bucket, row.key)
        created = None
        if row.created_time is not None:
            created = OrderKey(row.created_sequencer, _utc(row.created_time), row.created_position)
        states[key].versions[row.slot] = VersionState(
            version_id=row.version_id,
            exists=row.exists,
            delete_marker=row.delete_marker,
            size=row.size,
            etag=row.etag,
            last=OrderKey(row.last_sequencer, _utc(row.last_time), row.last_position),
            created=created,
        )
    for row in catalog_rows:
        key = (row.bucket, row.key)
        last = OrderKey(row.sequencer, _utc(row.last_event_time), row.last_position)
        state = states.get(key)
        if state is None:  # one version
            states[key] = ObjectState.of_one_version(
                row.bucket, row.key, last_event_name=row.last_event_name,
                last_event_version=row.last_event_version_id, last_order=last, size=row.size,
                etag=row.etag,
            )  # fmt: skip
            continue
        state.last_event_name = row.last_event_name
        state.last_event_version = row.last_event_version_id
        state.last_order = last
    return states


def _utc(value: datetime) -> datetime:
    """Times read through the driver (PostgreSQL path) in UTC, as the fold compares them."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _load_prefixes(
    connection: Connection, table: sa.Table, prefixes: list[Key]
) -> dict[Key, list[int]]:
    """The stored totals of `prefixes` (bucket, prefix), read through the driver."""
    found: dict[Key, list[int]] = {}
    columns = ("bucket", "prefix", "objects", "bytes")
    postgres = connection.dialect.name == "postgresql"
    for bucket, names in _chunks(prefixes, limit=None if postgres else _CHUNK):
        if postgres:
            sql = _postgres_in(table.name, columns, "prefix")
            rows = connection.exec_driver_sql(sql, (bucket, names))
        else:
            sql = _sqlite_select(table.name, columns, len(names), "prefix")
            rows = connection.exec_driver_sql(sql, (bucket, *names))
        for row in rows:
            found[(row[0], row[1])] = [row[2], row[3]]
    return found


@cache
def _postgres_in(table_name: str, columns: tuple[str, ...], name: str) -> str:
    quote = postgresql.dialect().identifier_preparer.quote  # type: ignore[no-untyped-call]
    names = ", ".join(quote(c) for c in columns)
    return f"SELECT {names} FROM {quote(table_name)} WHERE bucket = %s AND {name} = ANY(%s)"


def catalog_entries(
    engine: Engine,
    *,
    bucket: str | None = None,
    prefix: str | None = None,
    include_deleted: bool = False,
) -> Iterator[CatalogEntry]:
    """The object catalog now, in (bucket, key) order, streamed."""
    table = object_catalog
    conditions: list[Any] = []
    if bucket is not None:
        conditions.append(table.c.bucket == bucket)
    if prefix:
        conditions.append(table.c.key >= prefix)
        upper = prefix_upper_bound(prefix)
        if upper is not None:
            conditions.append(table.c.key < upper)
    if not include_deleted:
        conditions.append(table.c.deleted.is_(False))
    statement = sa.select(table).where(*conditions).order_by(table.c.bucket, table.c.key)
    with engine.connect() as connection:
        for r in connection.execution_options(yield_per=store_base.PAGE_ROWS).execute(statement):
            yield CatalogEntry(
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
