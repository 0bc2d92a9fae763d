"""The projection interface: a named, versioned fold of the log into its own tables.

A projection declares its tables (SQLAlchemy `Table`s) and folds events into them in one of
two ways:

* `apply(context, events)`: write as you go, statement by statement. Simple, and right for
  small read models; the runner calls it with each chunk inside the transaction that moves
  the checkpoint.
* `start()` returning a `Fold`: fold chunks of events into state held in memory, and write
  only what changed, set-based, when the runner calls `flush`. A rebuild is the same fold
  from empty tables over large chunks, flushed when `held` passes the runner's memory bound,
  so it stays flat and resumable. The built-ins work this way.

Either way the runner hands over a ProjectionContext with the live tables or, during a
rebuild, their shadow copies; the checkpoint moves in the same transaction as the writes
(the flush), so an event is applied exactly once. Events carry the typed columns; the
verbatim record (`event.record`) is decoded only if a projection reads it.

Folds run with Python's cyclic garbage collector held off (reference counting still frees
what they drop): a fold that makes reference cycles per event holds them until the catch-up or
rebuild returns.

What a `Table` cannot declare (a full-text index: an SQLite FTS5 virtual table, a
PostgreSQL generated column and its GIN index) a projection names in `companions`; they are
created, dropped and swapped in with its tables.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.engine import Dialect

from eventstore.core.events import StoredEvent


class ProjectionContext:
    """What a projection works with: a connection and the tables to read and write.

    `fresh` is true while the tables hold nothing this run has not folded itself (a rebuild
    before its first flush): a fold need not look up rows it does not hold."""

    def __init__(
        self, connection: Connection, tables: Mapping[str, sa.Table], *, fresh: bool = False
    ) -> None:
        self.connection = connection
        self._tables = tables
        self.fresh = fresh

    def table(self, name: str) -> sa.Table:
        """The table `name` of this projection, live or shadow as the runner decided."""
        return self._tables[name]


@dataclass(frozen=True, slots=True)
class Companion:
    """A schema object beside a projection's tables that a SQLAlchemy `Table` cannot declare,
    created by its DDL right after the tables (live, shadow or dry-run copies alike).

    `kind` says how it follows its table through a rebuild: a `"table"` (an FTS5 virtual
    table) is dropped with the tables and renamed over the live one on a swap; an `"index"`
    or a `"column"` belongs to its table and goes and moves with it (an index's name must
    contain its table's name, as the naming convention's do, to be renamed with it)."""

    kind: Literal["table", "index", "column"]
    name: str
    create: str  # the DDL, for the tables it was made for


class Fold(ABC):
    """A projection's state for one run, held in memory between flushes."""

    @abstractmethod
    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        """Fold `events` (in position order) into memory. It may read rows it does not hold
        yet through `context` (unless `context.fresh`), and must not write."""

    @abstractmethod
    def flush(self, context: ProjectionContext) -> None:
        """Write what changed since the last flush, in as few statements as possible; the
        runner moves the checkpoint in the same transaction. What was written may be
        forgotten: later events can read it back."""

    @property
    def held(self) -> int:
        """How many entries this fold holds; the runner flushes a rebuild past its bound."""
        return 0


class Projection(ABC):
    """Subclass, set `name`, `version` and `tables`, implement `apply` (or `start`);
    register with `@projection` or the `eventstore.projections` entry-point group.

    Bump `version` whenever the fold or the tables change: the runner then rebuilds the
    projection from position 0 into shadow tables and swaps them in when caught up.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    description: ClassVar[str] = ""
    tables: ClassVar[Sequence[sa.Table]] = ()

    @property
    def effective_version(self) -> int:
        """The version the checkpoint records; settings that change the contents add to it."""
        return self.version

    def companions(self, dialect: Dialect, tables: Mapping[str, sa.Table]) -> Sequence[Companion]:
        """The schema objects `tables` (the live tables or copies of them: derive every name
        from theirs) need beyond their own DDL, on `dialect`; none by default. Companions
        are part of the tables' shape: change them only with a new `version`."""
        return ()

    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        """Fold `events` (in position order, all after the checkpoint) into the tables,
        writing through `context.connection`. Implement this, or `start`."""
        raise NotImplementedError(f"projection {self.name} implements neither apply nor start")

    def start(self) -> Fold:
        """A fold for one run (a catch-up or a rebuild). The default buffers events and
        hands them to `apply` at each flush."""
        return _ApplyEachFlush(self)


class _ApplyEachFlush(Fold):
    """The fold of a projection that implements `apply`: events wait for the flush."""

    def __init__(self, projection: Projection) -> None:
        self._projection = projection
        self._pending: list[StoredEvent] = []

    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        self._pending.extend(events)

    def flush(self, context: ProjectionContext) -> None:
        pending, self._pending = self._pending, []
        if pending:
            self._projection.apply(context, pending)

    @property
    def held(self) -> int:
        return len(self._pending)


def describe_error(error: BaseException) -> str:
    """An error as recorded on a projection's checkpoint."""
    return f"{type(error).__name__}: {error}"[:2000]
