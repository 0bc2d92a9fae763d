"""The projection interface: a named, versioned fold of the log into its own tables.

A projection declares its tables (SQLAlchemy `Table`s) and folds events into them through a
ProjectionContext, which hands it either the live tables or, during a rebuild, their shadow
copies. The runner moves the projection's checkpoint in the same transaction as its writes,
so an event is applied exactly once; it never sees the tables' physical names.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy import Connection

from eventstore.core.events import NewEvent, StoredEvent


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


# A statement for psycopg (PostgreSQL, `%s` placeholders) and its parameters: one sequence
# for a query, a list of them for an executemany.
Query = tuple[str, Sequence[Any]]
Batch = tuple[str, Sequence[Sequence[Any] | Mapping[str, Any]]]


class PipelinedProjection(ABC):
    """What an inline projection adds to be folded inside the append's two round trips on
    PostgreSQL (psycopg pipeline mode), instead of a statement at a time through `apply`.

    `pipeline_reads` names the rows the fold needs; they are read in the append's first
    round trip, under the append lock, so nobody else changes them before the second.
    `pipeline_writes` folds the new events into those rows and returns the statements that
    store the result; they are sent with the events' INSERT and the COMMIT. Both work on
    the live tables, and must leave them exactly as `apply` would.
    """

    @abstractmethod
    def pipeline_reads(self, events: Sequence[NewEvent]) -> list[Query]:
        """Queries for the rows that folding `events` needs (a superset is fine: some of
        them may turn out to be in the log already)."""

    @abstractmethod
    def pipeline_writes(
        self, events: Sequence[StoredEvent], rows: Sequence[Sequence[Any]]
    ) -> list[Batch]:
        """The statements folding `events` into the tables, given the rows of each query of
        `pipeline_reads` (named tuples, in the order of the queries)."""


class InlineProjectionError(Exception):
    """An inline projection raised during an append; the append is made again without it."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def describe_error(error: BaseException) -> str:
    """An error as recorded on a projection's checkpoint."""
    return f"{type(error).__name__}: {error}"[:2000]
