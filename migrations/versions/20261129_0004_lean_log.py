"""A leaner log (one index fewer, the duplicate prefix-statistics tables gone), and checkpoints
that remember the hash of the row they stopped at.

Every event wrote five index entries besides its row. `(bucket, event_time)` served no query
that `(bucket, key, event_time)` (a bucket or prefix, then a time window) and `(event_time)`
(a time window across buckets) do not serve as well, so it goes.

The prefix statistics are now kept by the object catalog's own fold (projection version 2),
so the copies of the catalog that the `prefix_stats` projection folded into
(`prefix_stats_objects`, `prefix_stats_versions`) and its checkpoint go. Its `prefix_stats`
table stays until the catalog's rebuild, which the new version starts on the first catch-up,
swaps its own in.

A checkpoint's `position_hash` is the hash of the log row at its position: if rows are cut
off the end of the log and new appends reuse their positions, the hash there changes, and
the runner refuses to skip the new events (it asks for a rebuild instead).

Revision ID: 20261129_0004
Revises: 20261124_0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261129_0004"
down_revision: str | None = "20261124_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RETIRED = (
    "prefix_stats_objects", "prefix_stats_versions",
    "prefix_stats_objects__rebuild", "prefix_stats_versions__rebuild", "prefix_stats__rebuild",
)  # fmt: skip


def upgrade() -> None:
    op.drop_index("ix_events_bucket_event_time", table_name="events")
    inspector = sa.inspect(op.get_bind())
    for table in _RETIRED:
        if inspector.has_table(table):
            op.drop_table(table)
    op.execute("DELETE FROM projection_checkpoints WHERE name = 'prefix_stats'")
    # A database with no events yet has nothing to rebuild: its catalog starts as new.
    op.execute(
        "DELETE FROM projection_checkpoints WHERE name = 'object_catalog'"
        " AND NOT EXISTS (SELECT 1 FROM events)"
    )
    with op.batch_alter_table("projection_checkpoints") as table:
        table.add_column(sa.Column("position_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    # The retired tables belong to a projection: the older code's runner rebuilds them.
    with op.batch_alter_table("projection_checkpoints") as table:
        table.drop_column("position_hash")
    op.create_index("ix_events_bucket_event_time", "events", ["bucket", "event_time"])
