"""The projection interface: a named, versioned fold of the log into its own tables.

A projection declares its tables (SQLAlchemy `Table`s) and folds events into them through a
ProjectionContext, which hands it either the live tables or, during a rebuild, their shadow
copies. The runner moves the projection's checkpoint in the same transaction as its writes,
so an event is applied exactly once; it never sees the tables' physical names.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar

import sqlalchemy as sa
from sqlalchemy import Connection

from eventstore.core.events import StoredEvent


class ProjectionContext:
    """What `apply` works with: the open transaction and the tables to write."""

    def __init__(self, connection: Connection, tables: Mapping[str, sa.Table]) -> None:
        self.connection = connection
        self._tables = tables

    def table(self, name: str) -> sa.Table:
        """The table `name` of this projection, live or shadow as the runner decided."""
        return self._tables[name]


class Projection(ABC):
    """Subclass, set `name`, `version` and `tables`, implement `apply`; register with
    `@projection` or the `eventstore.projections` entry-point group.

    Bump `version` whenever `apply` or the tables change: the runner then rebuilds the
    projection from position 0 into shadow tables and swaps them in when caught up.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    description: ClassVar[str] = ""
    tables: ClassVar[Sequence[sa.Table]] = ()
    # Applied inside every append's transaction (when caught up), not only by catch-up runs.
    inline: ClassVar[bool] = False

    @property
    def effective_version(self) -> int:
        """The version the checkpoint records; settings that change the contents add to it."""
        return self.version

    @abstractmethod
    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        """Fold `events` (in position order, all after the checkpoint) into the tables."""
