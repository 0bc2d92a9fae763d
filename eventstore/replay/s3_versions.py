"""Back-fill history the log does not have from S3's own record of it: ListObjectVersions,
delete markers included, as events marked `Source.S3_VERSIONS`."""

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from eventstore.core.events import NewEvent, Source
from eventstore.core.identity import derive_event_id
from eventstore.core.objectstate import NULL_VERSION
from eventstore.core.timeutil import format_time
from eventstore.progress import Progress
from eventstore.replay.base import ReplaySummary, source_errors
from eventstore.store.base import EventLog

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BACKFILL_CREATED = "ObjectCreated:Backfill"
BACKFILL_DELETE_MARKER = "ObjectRemoved:DeleteMarkerCreated"
RECORD_SOURCE = "eventstore:s3-versions"  # the record's eventSource, where S3's say aws:s3

_VERSION, _DELETE_MARKER = "Version", "DeleteMarker"


class VersionedEventLog(EventLog, Protocol):
    """An event log that can say which object versions it already holds."""

    def known_versions(
        self, bucket: str, keys: Collection[str]
    ) -> set[tuple[str, str | None, str | None]]: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    """One version or delete marker as listed; `rank` counts entries of its kind as listed,
    and S3 lists the versions of a key newest first."""

    kind: str
    key: str
    version_id: str | None
    last_modified: datetime
    is_latest: bool
    size: int | None
    etag: str | None
    owner_id: str | None
    listing: Mapping[str, Any]
    rank: int

    @property
    def order(self) -> tuple[str, datetime, bool, int, int]:
        # Oldest first. LastModified is to the second; within one second the latest version
        # goes last, then S3's own newest-first listing order decides.
        kind_rank = 0 if self.kind == _VERSION else 1
        return (self.key, self.last_modified, self.is_latest, kind_rank, -self.rank)


def backfill_from_s3_versions(
    log: VersionedEventLog,
    s3_client: "S3Client",
    bucket: str,
    prefix: str = "",
    *,
    correlation_id: str | None = None,
    page_size: int = 1000,
    progress: Progress | None = None,
) -> ReplaySummary:
    """Turn every listed version and delete marker the log does not hold into an event.

    A version becomes `ObjectCreated:Backfill`: the listing cannot tell whether it was made
    by a Put, a Copy, a multipart upload or a restore, so no more specific name is claimed.
    A delete marker becomes `ObjectRemoved:DeleteMarkerCreated`. The event time is the
    entry's LastModified, size and ETag come from the listing, the principal is the owner's
    ID, the version id is as listed (`null`, the version of an object written while the
    bucket was unversioned, becomes None as in notifications), and the record is the listing
    entry with `eventSource` `eventstore:s3-versions`. Ids are derived from these fields,
    so running the back-fill again stores nothing new.

    A version is skipped (counted as a duplicate) when the log already holds an
    existence-changing event (ObjectCreated:*, ObjectRemoved:*, LifecycleExpiration:*) for
    the same key and version id; for the null version, for the same key and ETag.

    Back-filled events have no sequencer, so they take their place among a key's events by
    event time. LastModified is only to the second: the versions listed are appended oldest
    first so that ties among them are broken rightly, but a listed version made within the
    same second as a logged event of the same key may be placed before it.
    """
    summary = ReplaySummary("s3")
    correlation = correlation_id or f"replay:s3://{bucket}/{prefix}"
    paginator = s3_client.get_paginator("list_object_versions")
    pages = paginator.paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
    )
    with source_errors(f"listing the versions of s3://{bucket}/{prefix}"):
        _backfill_pages(
            log,
            bucket=bucket,
            pages=pages,
            summary=summary,
            correlation=correlation,
            progress=progress,
        )
    return summary


def _backfill_pages(
    log: VersionedEventLog,
    *,
    bucket: str,
    pages: Iterable[Mapping[str, Any]],
    summary: ReplaySummary,
    correlation: str,
    progress: Progress | None,
) -> None:
    carried: list[_Entry] = []
    ranks = {_VERSION: 0, _DELETE_MARKER: 0}
    for response in pages:
        listed: list[_Entry] = []
        for kind, items in (
            (_VERSION, response.get("Versions", [])),
            (_DELETE_MARKER, response.get("DeleteMarkers", [])),
        ):
            for item in items:
                listed.append(_entry(kind, item, ranks[kind]))
                ranks[kind] += 1
        summary.read += len(listed)
        entries = carried + listed
        carried = []
        if response.get("IsTruncated") and entries:
            # The last key may go on in the next page: hold it back, so that all of a key's
            # entries are appended together, oldest first.
            last_key = max(entry.key for entry in entries)
            carried = [entry for entry in entries if entry.key == last_key]
            entries = [entry for entry in entries if entry.key != last_key]
        _append_new(log, bucket, entries, summary=summary, correlation_id=correlation)
        if progress is not None:
            progress.advance(len(listed))
    _append_new(log, bucket, carried, summary=summary, correlation_id=correlation)


def _entry(kind: str, item: Mapping[str, Any], rank: int) -> _Entry:
    version_id = item.get("VersionId")
    owner = item.get("Owner") or {}
    etag = item.get("ETag")
    size = item.get("Size")
    return _Entry(
        kind=kind,
        key=item["Key"],
        version_id=None if version_id in (None, "", NULL_VERSION) else str(version_id),
        last_modified=item["LastModified"].astimezone(UTC),
        is_latest=bool(item.get("IsLatest")),
        size=int(size) if kind == _VERSION and size is not None else None,
        etag=etag.strip('"') if kind == _VERSION and etag else None,
        owner_id=owner.get("ID") or None,
        listing=item,
        rank=rank,
    )


def _append_new(
    log: VersionedEventLog,
    bucket: str,
    entries: list[_Entry],
    *,
    summary: ReplaySummary,
    correlation_id: str,
) -> None:
    if not entries:
        return
    known = log.known_versions(bucket, {entry.key for entry in entries})
    known_versions = {(key, version_id) for key, version_id, _ in known if _real(version_id)}
    known_null = {(key, etag) for key, version_id, etag in known if not _real(version_id)}
    fresh: list[NewEvent] = []
    for entry in sorted(entries, key=lambda e: e.order):
        summary.received += 1
        if entry.version_id is not None:
            held = (entry.key, entry.version_id) in known_versions
        else:
            held = (entry.key, entry.etag) in known_null
        if held:
            summary.duplicates += 1
        else:
            fresh.append(_event(bucket, entry))
    if fresh:
        result = log.append(fresh, correlation_id=correlation_id)
        summary.appended += result.appended
        summary.duplicates += result.duplicates


def _real(version_id: str | None) -> bool:
    return version_id is not None and version_id != NULL_VERSION


def _event(bucket: str, entry: _Entry) -> NewEvent:
    name = BACKFILL_CREATED if entry.kind == _VERSION else BACKFILL_DELETE_MARKER
    event_id = derive_event_id(
        bucket=bucket,
        key=entry.key,
        version_id=entry.version_id,
        sequencer=None,
        event_name=name,
        event_time=entry.last_modified,
        request_id=None,
        etag=entry.etag,
        size=entry.size,
    )
    record = {
        "eventSource": RECORD_SOURCE,
        "api": "ListObjectVersions",
        "entryType": entry.kind,
        "bucket": bucket,
        "entry": _json_safe(entry.listing),
    }
    return NewEvent(
        event_id=event_id,
        event_name=name,
        event_time=entry.last_modified,
        bucket=bucket,
        key=entry.key,
        version_id=entry.version_id,
        sequencer=None,
        size=entry.size,
        etag=entry.etag,
        principal_id=entry.owner_id,
        source_ip=None,
        request_id=None,
        region=None,
        source=Source.S3_VERSIONS,
        record=record,
        causation_id=None,
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime):
        return format_time(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
