"""Per-prefix statistics: how many live objects and bytes each prefix holds.

A prefix is the first `depth` path segments of a key (`logs/2026/` at depth 2); keys with
fewer segments count under their own folder, and top-level keys under "". The projection
keeps its own copy of each key's state (the catalog rules, applied to its own tables), so
it can be rebuilt and caught up independently of the object catalog.
"""

import os
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa

from eventstore.core.events import Effect, StoredEvent
from eventstore.core.objectstate import CatalogEntry
from eventstore.projections.base import Projection, ProjectionContext
from eventstore.projections.catalog import fold, load_states, save_states
from eventstore.store.schema import (
    copy_table,
    object_catalog,
    object_versions,
    projection_metadata,
)

prefix_stats = sa.Table(
    "prefix_stats",
    projection_metadata,
    sa.Column("bucket", object_catalog.c.bucket.type, primary_key=True),
    sa.Column("prefix", object_catalog.c.key.type, primary_key=True),
    sa.Column("objects", sa.BigInteger(), nullable=False),
    sa.Column("bytes", sa.BigInteger(), nullable=False),
)
prefix_stats_objects = copy_table(object_catalog, projection_metadata, "prefix_stats_objects")
prefix_stats_versions = copy_table(object_versions, projection_metadata, "prefix_stats_versions")


def prefix_of(key: str, depth: int) -> str:
    """The first `depth` folders of `key`, with a trailing slash; "" for a top-level key."""
    folders = key.split("/")[:-1]
    return "".join(f"{folder}/" for folder in folders[:depth])


def _contribution(entry: CatalogEntry | None) -> tuple[int, int]:
    if entry is None or entry.deleted:
        return 0, 0
    return 1, entry.size or 0


class PrefixStatsProjection(Projection):
    """Object count and bytes per (bucket, prefix) at a fixed depth."""

    name = "prefix_stats"
    version = 1
    description = (
        "live objects and bytes per prefix (depth from EVENTSTORE_PREFIX_DEPTH, default 2)"
    )
    tables = (prefix_stats, prefix_stats_objects, prefix_stats_versions)

    def __init__(self, depth: int | None = None) -> None:
        self.depth = (
            depth if depth is not None else int(os.environ.get("EVENTSTORE_PREFIX_DEPTH", "2"))
        )
        if self.depth < 1:
            raise ValueError("prefix depth must be at least 1")

    @property
    def effective_version(self) -> int:
        # The depth shapes every row: a new depth is a new projection version.
        return self.version * 100 + self.depth

    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        relevant = [s for s in events if s.event.effect is not Effect.NONE]
        if not relevant:
            return
        connection = context.connection
        stats = context.table("prefix_stats")
        objects, versions = (
            context.table("prefix_stats_objects"),
            context.table("prefix_stats_versions"),
        )
        keys = {(s.event.bucket, s.event.key) for s in relevant}
        states = load_states(connection, objects, versions, keys)
        before = {key: _contribution(state.entry()) for key, state in states.items()}
        changed = fold(states, relevant)
        save_states(connection, objects, versions, states, changed)

        deltas: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for key, state in states.items():
            old_count, old_bytes = before.get(key, (0, 0))
            new_count, new_bytes = _contribution(state.entry())
            if (old_count, old_bytes) != (new_count, new_bytes):
                delta = deltas[(key[0], prefix_of(key[1], self.depth))]
                delta[0] += new_count - old_count
                delta[1] += new_bytes - old_bytes
        if not deltas:
            return
        current = {
            (row.bucket, row.prefix): (row.objects, row.bytes)
            for row in connection.execute(
                sa.select(stats).where(sa.tuple_(stats.c.bucket, stats.c.prefix).in_(list(deltas)))
            )
        }
        connection.execute(
            sa.delete(stats).where(sa.tuple_(stats.c.bucket, stats.c.prefix).in_(list(deltas)))
        )
        rows = []
        for (bucket, prefix), (count, size) in deltas.items():
            old_count, old_bytes = current.get((bucket, prefix), (0, 0))
            if old_count + count or old_bytes + size:  # an emptied prefix has no row
                rows.append(
                    {"bucket": bucket, "prefix": prefix, "objects": old_count + count,
                     "bytes": old_bytes + size}
                )  # fmt: skip
        if rows:
            connection.execute(sa.insert(stats), rows)
