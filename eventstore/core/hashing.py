"""The hash chain: hash(n) = SHA-256(hash(n-1) ‖ canonical(row n)), over every stored column."""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from eventstore.core import jsontext
from eventstore.core.events import LazyRecord, NewEvent, StoredEvent
from eventstore.core.timeutil import format_time

GENESIS_HASH = "0" * 64

# What json.dumps(value, ensure_ascii=False, separators=(",", ":")) builds on every call.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# Every row of one append has the same recorded_at: format it once, not once per row.
_format_recorded_at = lru_cache(maxsize=4)(format_time)


def compact_json(value: Any) -> str:
    """JSON with no spaces and unescaped non-ASCII: the stored form of a record."""
    return jsontext.compact(value)


def canonical_row(position: int, event: NewEvent, record_json: str, recorded_at: datetime) -> bytes:
    """The bytes that are hashed for one row: every stored column, in a fixed order."""
    return seal_row(position, row_body(event, record_json), recorded_at)


def row_body(event: NewEvent, record_json: str) -> str:
    """The part of the canonical row that does not depend on where and when the row is
    stored: built before an append takes its lock, so the lock is held for less."""
    columns = [
        event.event_id,
        event.stream,
        event.event_name,
        format_time(event.event_time),
        event.event_time.microsecond,
        event.bucket,
        event.key,
        event.version_id,
        event.sequencer,
        event.size,
        event.etag,
        event.principal_id,
        event.source_ip,
        event.request_id,
        event.region,
        str(event.source),
        event.causation_id,
        event.correlation_id,
        record_json,
    ]
    return jsontext.compact(columns)[1:-1]


def seal_row(position: int, body: str, recorded_at: datetime) -> bytes:
    """The canonical row: the compact JSON list [position, *body, recorded_at, its µs]."""
    recorded = _COMPACT.encode(_format_recorded_at(recorded_at))
    return f"[{position},{body},{recorded},{recorded_at.microsecond}]".encode()


def chain_hash(
    previous_hash: str, position: int, event: NewEvent, record_json: str, recorded_at: datetime
) -> str:
    return link_hash(previous_hash, seal_row(position, row_body(event, record_json), recorded_at))


def link_hash(previous_hash: str, canonical: bytes) -> str:
    """hash(n) = SHA-256(hash(n-1) ‖ canonical(row n)), as hex."""
    digest = hashlib.sha256(previous_hash.encode("ascii"))
    digest.update(canonical)
    return digest.hexdigest()


def follows(previous: StoredEvent, stored: StoredEvent) -> bool:
    """Whether `stored` is the row right after `previous` in one chain: the next position,
    hashed onto `previous`'s hash."""
    return stored.position == previous.position + 1 and stored.hash == chain_hash(
        previous.hash, stored.position, stored.event, stored.record_json, stored.recorded_at
    )


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of checking the chain: intact, or the first position that does not hold."""

    checked: int
    head_position: int
    first_bad_position: int | None = None
    reason: str | None = None
    head_hash: str | None = None  # record it elsewhere, and later verify against it (anchor)

    @property
    def ok(self) -> bool:
        return self.first_bad_position is None


@dataclass(frozen=True, slots=True)
class Anchor:
    """A (position, hash) pair recorded outside the log. The chain alone cannot notice its
    newest rows being cut off, nor a chain rewritten end to end; an anchor can."""

    position: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> "Anchor":
        position, _, digest = text.partition(":")
        if not position.isdigit() or int(position) < 1 or len(digest) != 64:
            raise ValueError(f"an anchor is POSITION:SHA256HEX, not {text!r}")
        return cls(int(position), digest.lower())


@dataclass(frozen=True, slots=True)
class UnreadableRow:
    """A stored row that could not even be read back as an event (a column was corrupted)."""

    position: int
    reason: str


def verify_chain(
    events: Iterable[StoredEvent | UnreadableRow], *, anchor: Anchor | None = None
) -> VerifyResult:
    """Walk the log in position order; positions must run 1, 2, 3… and every hash must hold;
    with an anchor, the row at its position must still carry its hash."""
    previous_hash = GENESIS_HASH
    expected_position = 1
    checked = 0
    for stored in events:
        if isinstance(stored, UnreadableRow):
            bad = min(stored.position, expected_position)
            return VerifyResult(checked, stored.position, bad, stored.reason)
        if stored.position != expected_position:
            bad = min(stored.position, expected_position)
            return VerifyResult(
                checked,
                stored.position,
                bad,
                f"expected position {expected_position}, found {stored.position}"
                " (a row was deleted, inserted or renumbered)",
            )
        expected = chain_hash(
            previous_hash, stored.position, stored.event, stored.record_json, stored.recorded_at
        )
        if expected != stored.hash:
            return VerifyResult(
                checked,
                stored.position,
                stored.position,
                "hash does not match the row's contents and its predecessor",
            )
        if anchor is not None and stored.position == anchor.position and stored.hash != anchor.hash:
            return VerifyResult(
                checked,
                stored.position,
                stored.position,
                "the chain holds but differs from the anchor: the log was rewritten from here back",
            )
        previous_hash = stored.hash
        expected_position += 1
        checked += 1
    head = expected_position - 1
    if anchor is not None and anchor.position > head:
        return VerifyResult(
            checked,
            head,
            head + 1,
            f"the log ends at {head} but the anchor names position {anchor.position}:"
            " rows were cut off the end",
            previous_hash if head else None,
        )
    return VerifyResult(checked, head, head_hash=previous_hash if head else None)


@dataclass(frozen=True, slots=True)
class PendingRow:
    """An event ready to be appended: everything of its row but position, time and hash."""

    event: NewEvent
    record_json: str
    body: str  # row_body(event, record_json)

    @classmethod
    def of(cls, event: NewEvent) -> "PendingRow":
        record = event.record
        # A stored event appended elsewhere again (a replay between logs) keeps its exact text.
        record_json = record.text if isinstance(record, LazyRecord) else compact_json(record)
        return cls(event, record_json, row_body(event, record_json))

    def seal(self, previous_hash: str, position: int, recorded_at: datetime) -> StoredEvent:
        """The stored event at `position`, linked to the row before it."""
        digest = link_hash(previous_hash, seal_row(position, self.body, recorded_at))
        return StoredEvent(position, self.event, self.record_json, recorded_at, digest)


def seal_all(
    pending: Iterable[PendingRow], head: int, head_hash: str, recorded_at: datetime
) -> list[StoredEvent]:
    """The rows appended after the head (`head`, `head_hash`), each linked to the one before."""
    stored: list[StoredEvent] = []
    previous_hash = head_hash
    for position, row in enumerate(pending, start=head + 1):
        sealed = row.seal(previous_hash, position, recorded_at)
        previous_hash = sealed.hash
        stored.append(sealed)
    return stored
