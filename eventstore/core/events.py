"""The event model: one S3 change as parsed (NewEvent) and as stored in the log (StoredEvent)."""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

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
    record: dict[str, Any] = field(compare=False)
    causation_id: str | None = None
    correlation_id: str | None = None

    @property
    def stream(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def effect(self) -> Effect:
        return effect_of(self.event_name)


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
