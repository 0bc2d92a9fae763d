"""What every event log offers, whatever holds it."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from eventstore.core.events import NewEvent, StoredEvent
from eventstore.core.hashing import VerifyResult
from eventstore.core.objectstate import CatalogEntry


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one append did: the events it stored (in position order) and the duplicates it met."""

    stored: tuple[StoredEvent, ...]
    duplicates: int

    @property
    def appended(self) -> int:
        return len(self.stored)


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters of an audit query over the log; every one optional, all must hold.

    `since` is inclusive and `until` exclusive, both on the S3 event time. `types` holds event
    names, or `Prefix:*` patterns.
    """

    bucket: str | None = None
    prefix: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    types: tuple[str, ...] = field(default_factory=tuple)
    principal: str | None = None
    limit: int | None = None


class EventLog(Protocol):
    """An append-only log of S3 events with its object catalog."""

    def append(
        self, events: Sequence[NewEvent], *, correlation_id: str | None = None
    ) -> AppendResult: ...

    def read(self, *, after: int = 0, limit: int | None = None) -> Iterator[StoredEvent]: ...

    def head_position(self) -> int: ...

    def history(self, bucket: str, key: str) -> list[StoredEvent]: ...

    def select_events(self, query: EventQuery) -> list[StoredEvent]: ...

    def objects(
        self, *, bucket: str | None = None, prefix: str | None = None, include_deleted: bool = False
    ) -> list[CatalogEntry]: ...

    def objects_as_of(
        self,
        when: datetime,
        *,
        bucket: str | None = None,
        prefix: str | None = None,
        include_deleted: bool = False,
    ) -> list[CatalogEntry]: ...

    def verify(self) -> VerifyResult: ...


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with `prefix` (code-point
    order, which is UTF-8 byte order); None when there is none."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        nxt = last + 1
        if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be stored; skip over them
            nxt = 0xE000
        if nxt <= 0x10FFFF:
            return "".join(chars) + chr(nxt)
    return None
