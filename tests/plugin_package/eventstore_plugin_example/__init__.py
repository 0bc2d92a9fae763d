"""A projection from another package: objects created per file extension."""

from collections import Counter
from collections.abc import Sequence

import sqlalchemy as sa

from eventstore.core.events import StoredEvent
from eventstore.projections.base import Projection, ProjectionContext

metadata = sa.MetaData()

extension_counts = sa.Table(
    "extension_counts",
    metadata,
    sa.Column("extension", sa.Text(), primary_key=True),
    sa.Column("created", sa.BigInteger(), nullable=False),
)


class ExtensionCountsProjection(Projection):
    name = "extension_counts"
    version = 1
    description = "ObjectCreated events per file extension"
    tables = (extension_counts,)

    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        counts = Counter(
            s.event.key.rsplit(".", 1)[-1].lower() if "." in s.event.key else ""
            for s in events
            if s.event.event_name.startswith("ObjectCreated:")
        )
        table = context.table("extension_counts")
        for extension, created in counts.items():
            updated = context.connection.execute(
                sa.update(table)
                .where(table.c.extension == extension)
                .values(created=table.c.created + created)
            )
            if updated.rowcount == 0:
                context.connection.execute(
                    sa.insert(table).values(extension=extension, created=created)
                )
