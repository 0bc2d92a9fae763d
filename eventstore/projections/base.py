"""The projection interface."""

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Connection

from eventstore.core.events import StoredEvent


class Projection(Protocol):
    """Folds events into its own tables. `apply` runs inside the caller's transaction, which
    also moves the projection's checkpoint, so an event is never applied twice."""

    name: str
    version: int

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        """Fold `events` (in position order, all after the checkpoint) into the tables."""
        ...

    def reset(self, connection: Connection) -> None:
        """Empty the projection's tables, before a rebuild from position 0."""
        ...
