"""The event model: one S3 change as parsed (NewEvent) and as stored in the log (StoredEvent)."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from eventstore.core import jsontext
from eventstore.core.ordering import OrderKey


class Source(StrEnum):
    """How an event reached the log."""

    SQS_SNS = "sqs+sns"  # SQS message whose body is an SNS notification
    SQS = "sqs"  # SQS message whose body is the S3 notification (direct, or SNS raw delivery)
    SNS = "sns"  # a Lambda SNS event
    S3 = "s3"  # a Lambda S3 event or a bare S3 notification
    EVENTBRIDGE = "eventbridge"
    SQS_EVENTBRIDGE = "sqs+eventbridge"
    ARCHIVE = "archive"  # re-ingested from the raw-notification archive
    S3_VERSIONS = "s3-versions"  # back-filled from ListObjectVersions
    REACTOR = "reactor"  # the framework's own record of a reactor's outcome (not an S3 event)


class Effect(StrEnum):
    """What an event does to the existence of an object version."""

    CREATE = "create"
    DELETE_MARKER = "delete-marker"
    REMOVE = "remove"
    NONE = "none"


def effect_of(event_name: str) -> Effect:
    """The state change an S3 event name stands for; unknown names change nothing."""
    if event_name.startswith("ObjectCreated:"):
        return Effect.CREATE
    if event_name.endswith(":DeleteMarkerCreated") and event_name.startswith(
        ("ObjectRemoved:", "LifecycleExpiration:")
    ):
        return Effect.DELETE_MARKER
    if event_name.startswith(("ObjectRemoved:", "LifecycleExpiration:")):
        return Effect.REMOVE
    return Effect.NONE


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One S3 event record, parsed and identified, not yet in the log."""

    event_id: str
    event_name: str
    event_time: datetime
    bucket: str
    key: str
    version_id: str | None
    sequencer: str | None
    size: int | None
    etag: str | None
    principal_id: str | None
    source_ip: str | None
    request_id: str | None
    region: str | None
    source: Source
    record: Mapping[str, Any] = field(compare=False)
    causation_id: str | None = None
    correlation_id: str | None = None

    @property
    def stream(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def effect(self) -> Effect:
        return effect_of(self.event_name)

    def correlated(self, correlation_id: str) -> "NewEvent":
        """The same event with a correlation id (dataclasses.replace costs four times this
        on the append path)."""
        return NewEvent(
            self.event_id, self.event_name, self.event_time, self.bucket, self.key,
            self.version_id, self.sequencer, self.size, self.etag, self.principal_id,
            self.source_ip, self.request_id, self.region, self.source, self.record,
            self.causation_id, correlation_id,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the log holds it: its position, its place in the hash chain."""

    position: int
    event: NewEvent
    record_json: str
    recorded_at: datetime
    hash: str

    @property
    def order_key(self) -> OrderKey:
        return OrderKey(self.event.sequencer, self.event.event_time, self.position)

    def values(self) -> tuple[Any, ...]:
        """The stored row: one value per name in EVENT_COLUMNS, in that order."""
        event = self.event
        return (
            self.position, event.event_id, event.stream, event.event_name, event.event_time,
            event.bucket, event.key, event.version_id, event.sequencer, event.size, event.etag,
            event.principal_id, event.source_ip, event.request_id, event.region,
            str(event.source), event.causation_id, event.correlation_id, self.record_json,
            self.recorded_at, self.hash,
        )  # fmt: skip

    @classmethod
    def of_values(cls, values: Any) -> "StoredEvent":
        """The stored event of a row in EVENT_COLUMNS order (a tuple or a database row).

        The verbatim record is decoded only when a reader looks at it: folding projections
        and answering audit queries need only the typed columns."""
        (
            position, event_id, _stream, event_name, event_time, bucket, key, version_id,
            sequencer, size, etag, principal_id, source_ip, request_id, region, source,
            causation_id, correlation_id, record_json, recorded_at, digest,
        ) = values  # fmt: skip
        event = NewEvent(
            event_id, event_name, event_time, bucket, key, version_id, sequencer, size, etag,
            principal_id, source_ip, request_id, region, _SOURCES.get(source) or Source(source),
            LazyRecord(record_json), causation_id, correlation_id,
        )  # fmt: skip
        return cls(position, event, record_json, recorded_at, digest)


# The log's row, in one order shared by the SQL table, the hash chain's canonical form (which
# hashes every column but `hash` itself, with the times spelled out) and StoredEvent.values.
EVENT_COLUMNS = (
    "position", "event_id", "stream", "event_name", "event_time", "bucket", "key",
    "version_id", "sequencer", "size", "etag", "principal_id", "source_ip", "request_id",
    "region", "source", "causation_id", "correlation_id", "record", "recorded_at", "hash",
)  # fmt: skip

_SOURCES = {str(source): source for source in Source}


class LazyRecord(Mapping[str, Any]):
    """The verbatim S3 record of a stored event, decoded from its JSON on first use."""

    __slots__ = ("_decoded", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._decoded: dict[str, Any] | None = None

    def _data(self) -> dict[str, Any]:
        if self._decoded is None:
            self._decoded = jsontext.loads(self._text)
        return self._decoded

    def __getitem__(self, name: str) -> Any:
        return self._data()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    @property
    def text(self) -> str:
        """The record's JSON exactly as stored."""
        return self._text

    def __repr__(self) -> str:
        return f"LazyRecord({self._text[:60]!r}...)"
