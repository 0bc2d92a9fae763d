"""Reconciliation's rules, with no I/O: what S3 holds now against what the object catalog
believes, as two key-ordered streams of live objects merged in one pass, and the tally of
completeness overall and per prefix."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from eventstore.core.objectstate import NULL_VERSION
from eventstore.errors import EventStoreError


class ReconcileError(EventStoreError):
    """The inputs of a reconciliation cannot be compared (a stream out of key order)."""


class Discrepancy(StrEnum):
    MISSING = "missing"  # S3 holds the object; the log never saw it (or holds it as deleted)
    MISSED_DELETE = "missed_delete"  # the log holds it as existing; S3 does not
    DIFFERS = "differs"  # both hold it, but its version, size or ETag differ


@dataclass(frozen=True, slots=True)
class LiveObject:
    """The current version of one key that exists, as one side sees it.

    `version_id` is None for S3's null version and when a side does not know it (moto's and
    other S3-compatible producers' notifications carry none); `size` and `etag` are None
    when a side does not know them."""

    key: str
    version_id: str | None
    size: int | None
    etag: str | None

    @staticmethod
    def of(key: str, version_id: str | None, size: int | None, etag: str | None) -> "LiveObject":
        """Normalised as both sides must be for comparing: the `null` version as None, the
        ETag without quotes and in lower case (S3 lists it quoted, notifications do not)."""
        version = None if version_id in (None, "", NULL_VERSION) else version_id
        tag = etag.strip('"').lower() if etag else None
        return LiveObject(key, version, size, tag)


@dataclass(frozen=True, slots=True)
class Difference:
    """One key on which the log and S3 disagree; `fields` names what differs (DIFFERS)."""

    kind: Discrepancy
    key: str
    s3: LiveObject | None
    log: LiveObject | None
    fields: tuple[str, ...] = ()


def differing_fields(s3: LiveObject, log: LiveObject) -> tuple[str, ...]:
    """The fields on which the two disagree, comparing only what both sides know: a log
    built from notifications without version ids is checked on size and ETag alone."""
    differing = []
    for name in ("version_id", "size", "etag"):
        ours, theirs = getattr(log, name), getattr(s3, name)
        if ours is not None and theirs is not None and ours != theirs:
            differing.append(name)
    return tuple(differing)


def prefix_at(key: str, depth: int) -> str:
    """The first `depth` folders of `key` with a trailing slash; "" for a top-level key."""
    folders = key.split("/")[:-1]
    return "".join(f"{folder}/" for folder in folders[:depth])


@dataclass(slots=True)
class PrefixTally:
    """Counts of one prefix; `s3_objects` is the denominator of its completeness."""

    s3_objects: int = 0
    complete: int = 0
    missing: int = 0
    missed_deletes: int = 0
    differing: int = 0

    @property
    def completeness(self) -> float:
        """Share of S3's current objects whose current version the log has (1.0 if none)."""
        return self.complete / self.s3_objects if self.s3_objects else 1.0

    @property
    def differences(self) -> int:
        return self.missing + self.missed_deletes + self.differing

    def add(self, other: "PrefixTally") -> None:
        self.s3_objects += other.s3_objects
        self.complete += other.complete
        self.missing += other.missing
        self.missed_deletes += other.missed_deletes
        self.differing += other.differing


@dataclass(slots=True)
class Tally:
    """The counts of a reconciliation, overall and per prefix at `depth`.

    Memory grows with the number of prefixes at that depth, never with the number of keys."""

    depth: int
    log_objects: int = 0
    prefixes: dict[str, PrefixTally] = field(default_factory=dict)

    def of(self, key: str) -> PrefixTally:
        prefix = prefix_at(key, self.depth)
        tally = self.prefixes.get(prefix)
        if tally is None:
            tally = self.prefixes[prefix] = PrefixTally()
        return tally

    @property
    def total(self) -> PrefixTally:
        total = PrefixTally()
        for tally in self.prefixes.values():
            total.add(tally)
        return total


def reconcile(
    s3_objects: Iterable[LiveObject], log_objects: Iterable[LiveObject], tally: Tally
) -> Iterator[Difference]:
    """Merge the two streams (each in ascending key order, one entry per key, as S3 lists
    and the catalog is read) and yield every key on which they disagree, counting as it goes.

    A key is complete when both hold it and no field both know differs."""
    s3_iter, log_iter = _ordered(s3_objects, "S3"), _ordered(log_objects, "the log")
    s3, log = next(s3_iter, None), next(log_iter, None)
    while s3 is not None or log is not None:
        if log is None or (s3 is not None and s3.key < log.key):
            assert s3 is not None
            counts = tally.of(s3.key)
            counts.s3_objects += 1
            counts.missing += 1
            yield Difference(Discrepancy.MISSING, s3.key, s3, None)
            s3 = next(s3_iter, None)
        elif s3 is None or log.key < s3.key:
            tally.log_objects += 1
            tally.of(log.key).missed_deletes += 1
            yield Difference(Discrepancy.MISSED_DELETE, log.key, None, log)
            log = next(log_iter, None)
        else:
            tally.log_objects += 1
            counts = tally.of(s3.key)
            counts.s3_objects += 1
            fields = differing_fields(s3, log)
            if fields:
                counts.differing += 1
                yield Difference(Discrepancy.DIFFERS, s3.key, s3, log, fields)
            else:
                counts.complete += 1
            s3, log = next(s3_iter, None), next(log_iter, None)


def _ordered(objects: Iterable[LiveObject], side: str) -> Iterator[LiveObject]:
    """The stream as given, refusing one that is not in strictly ascending key order: a merge
    of unordered input would report differences that are not there."""
    previous: str | None = None
    for item in objects:
        if previous is not None and item.key <= previous:
            raise ReconcileError(
                f"{side} listed {item.key!r} after {previous!r}: keys must be in ascending order"
            )
        previous = item.key
        yield item
