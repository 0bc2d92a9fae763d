"""What every event log offers, whatever holds it."""

import json
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from eventstore.core.events import NewEvent, StoredEvent
from eventstore.core.hashing import VerifyResult
from eventstore.core.objectstate import CatalogEntry
from eventstore.core.timeutil import format_time, parse_time
from eventstore.errors import BadCursorError

# Rows a query fetches at a time: output of any size streams with bounded memory.
PAGE_ROWS = 1000


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one append did: the events it stored (in position order) and the duplicates it met."""

    stored: tuple[StoredEvent, ...]
    duplicates: int
    # Duplicates whose size or etag differ from the stored event's (logged by the store).
    conflicts: int = 0

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

    @property
    def is_empty(self) -> bool:
        return not (
            self.bucket or self.prefix or self.since or self.until or self.types or self.principal
        )

    def matches(self, event: NewEvent) -> bool:
        """Whether one event passes every filter (the limit is not a filter)."""
        if self.bucket is not None and event.bucket != self.bucket:
            return False
        if self.prefix and not event.key.startswith(self.prefix):
            return False
        if self.since is not None and event.event_time < self.since:
            return False
        if self.until is not None and event.event_time >= self.until:
            return False
        if self.principal is not None and event.principal_id != self.principal:
            return False
        return not self.types or any(type_matches(t, event.event_name) for t in self.types)

    def to_json(self) -> str:
        return json.dumps(
            {
                "bucket": self.bucket,
                "prefix": self.prefix,
                "since": format_time(self.since) if self.since else None,
                "until": format_time(self.until) if self.until else None,
                "types": list(self.types),
                "principal": self.principal,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> "EventQuery":
        if not text:
            return cls()
        data: dict[str, Any] = json.loads(text)
        return cls(
            bucket=data.get("bucket"),
            prefix=data.get("prefix"),
            since=parse_time(data["since"]) if data.get("since") else None,
            until=parse_time(data["until"]) if data.get("until") else None,
            types=tuple(data.get("types") or ()),
            principal=data.get("principal"),
        )


def type_matches(pattern: str, event_name: str) -> bool:
    """`ObjectCreated:Put` matches itself; `ObjectRemoved:*` every ObjectRemoved name."""
    name = pattern[3:] if pattern.startswith("s3:") else pattern
    if name.endswith("*"):
        return event_name.startswith(name[:-1])
    return event_name == name


@dataclass(frozen=True, slots=True)
class HistoryCursor:
    """Where a reading of one object's history stopped.

    A history is read as two ordered streams, the events with a sequencer and those without,
    merged by event time (core.ordering.sort_events_of_one_key's order); each stream resumes
    after its own last event read, given here by position (0: none read yet)."""

    sequenced: int = 0
    unsequenced: int = 0

    def after(self, events: Iterable[StoredEvent]) -> "HistoryCursor":
        """Where the reading stands once `events`, read from this cursor on, were read."""
        sequenced, unsequenced = self.sequenced, self.unsequenced
        for stored in events:
            if stored.event.sequencer is None:
                unsequenced = stored.position
            else:
                sequenced = stored.position
        return HistoryCursor(sequenced, unsequenced)

    def text(self) -> str:
        return f"{self.sequenced}.{self.unsequenced}"

    @classmethod
    def parse(cls, text: str) -> "HistoryCursor":
        """The cursor `text()` wrote; BadCursorError for anything else."""
        sequenced, dot, unsequenced = text.partition(".")
        if dot and sequenced.isdigit() and unsequenced.isdigit():
            return cls(int(sequenced), int(unsequenced))
        raise BadCursorError(f"not a history cursor: {text!r}")


class EventLog(Protocol):
    """An append-only log of S3 events."""

    def append(
        self, events: Sequence[NewEvent], *, correlation_id: str | None = None
    ) -> AppendResult: ...

    def read(self, *, after: int = 0, limit: int | None = None) -> Iterator[StoredEvent]: ...

    def head_position(self) -> int: ...

    def history(self, bucket: str, key: str) -> list[StoredEvent]: ...

    def iter_history(
        self, bucket: str, key: str, *, after: HistoryCursor | None = None
    ) -> Generator[StoredEvent, None, None]: ...

    def select_events(self, query: EventQuery) -> list[StoredEvent]: ...

    def objects_as_of(
        self,
        when: datetime,
        *,
        bucket: str | None = None,
        prefix: str | None = None,
        include_deleted: bool = False,
    ) -> Iterator[CatalogEntry]: ...

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
