"""A reactor's outcomes as events of the log (the framework's own events, beside S3's); no I/O.

Three kinds, each an event named `Reactor:<Kind>` with source `reactor`:

* `Reactor:Processed`: the reactor handled an event (its duration, the messages it sent).
  Its id depends only on (reactor, version, cause), so however often SQS delivers the cause
  it is recorded once.
* `Reactor:Produced`: one object it wrote (bucket, key, version id, ETag, size), one per
  output key; the produced object's own S3 event is matched to it by bucket, key and
  version id or ETag.
* `Reactor:Failed`: one failed attempt (reason, attempt number), one per delivery attempt.

Every outcome's `causation_id` is the S3 event it answers; bucket and key are the object it
concerns (the input for processed and failed, the output for produced). Its principal is
`reactor:<name>`.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from eventstore.core.events import NewEvent, Source, StoredEvent
from eventstore.core.timeutil import format_time
from eventstore.reactors.base import Output, SentMessage

EVENT_SOURCE = "eventstore:reactor"
PRINCIPAL_PREFIX = "reactor:"
MAX_REASON_CHARS = 2000
MAX_PARTIAL_OUTPUTS = 100  # a failed attempt's outputs recorded (their count always is)


class OutcomeKind(StrEnum):
    PROCESSED = "Reactor:Processed"
    PRODUCED = "Reactor:Produced"
    FAILED = "Reactor:Failed"


OUTCOME_NAMES = frozenset(str(kind) for kind in OutcomeKind)


def is_outcome(event: NewEvent) -> bool:
    return event.source is Source.REACTOR


def _id(*parts: object) -> str:
    text = json.dumps(["reactor", *parts], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def processed_id(reactor: str, version: int, cause_id: str) -> str:
    return _id(reactor, version, cause_id, "processed")


def produced_id(reactor: str, version: int, cause_id: str, bucket: str, key: str) -> str:
    return _id(reactor, version, cause_id, "produced", bucket, key)


def failed_id(reactor: str, version: int, cause_id: str, delivery: str, attempt: int) -> str:
    return _id(reactor, version, cause_id, "failed", delivery, attempt)


def _cause(cause: NewEvent) -> dict[str, Any]:
    return {
        "eventId": cause.event_id,
        "eventName": cause.event_name,
        "eventTime": format_time(cause.event_time),
        "bucket": cause.bucket,
        "key": cause.key,
        "versionId": cause.version_id,
        "eTag": cause.etag,
    }


def _outcome(
    kind: OutcomeKind,
    event_id: str,
    cause: NewEvent,
    record: dict[str, Any],
    *,
    reactor: str,
    version: int,
    at: datetime,
    bucket: str,
    key: str,
    version_id: str | None = None,
    etag: str | None = None,
    size: int | None = None,
    request_id: str | None = None,
) -> NewEvent:
    full = {
        "eventSource": EVENT_SOURCE,
        "eventVersion": "1.0",
        "eventName": str(kind),
        "eventTime": format_time(at),
        "reactor": {"name": reactor, "version": version},
        "cause": _cause(cause),
        **record,
    }
    return NewEvent(
        event_id=event_id, event_name=str(kind), event_time=at, bucket=bucket, key=key,
        version_id=version_id, sequencer=None, size=size, etag=etag,
        principal_id=PRINCIPAL_PREFIX + reactor, source_ip=None, request_id=request_id,
        region=cause.region, source=Source.REACTOR, record=full, causation_id=cause.event_id,
        correlation_id=cause.correlation_id,
    )  # fmt: skip


def succeeded(
    reactor: str,
    version: int,
    cause: NewEvent,
    *,
    at: datetime,
    duration_ms: float,
    outputs: Sequence[Output],
    sent: Sequence[SentMessage] = (),
    details: Mapping[str, Any] | None = None,
    output_details: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    request_id: str | None = None,
) -> list[NewEvent]:
    """The outcome events of one successful reaction: one produced per output key (the last
    write of a key wins), then processed."""
    events: list[NewEvent] = []
    latest: dict[tuple[str, str], Output] = {}
    for output in outputs:
        latest[(output.bucket, output.key)] = output
    for (bucket, key), output in latest.items():
        extra = dict((output_details or {}).get((bucket, key), {}))
        record: dict[str, Any] = {"output": _output(output)}
        if extra:
            record["details"] = extra
        events.append(
            _outcome(
                OutcomeKind.PRODUCED,
                produced_id(reactor, version, cause.event_id, bucket, key),
                cause,
                record,
                reactor=reactor,
                version=version,
                at=at,
                bucket=bucket,
                key=key,
                version_id=output.version_id,
                etag=output.etag,
                size=output.size,
                request_id=request_id,
            )
        )
    processed: dict[str, Any] = {
        "durationMs": round(duration_ms, 3),
        "outputs": len(latest),
        "messages": [{"queueUrl": m.queue_url, "messageId": m.message_id} for m in sent],
        **({"details": dict(details)} if details else {}),
    }
    events.append(
        _outcome(
            OutcomeKind.PROCESSED,
            processed_id(reactor, version, cause.event_id),
            cause,
            processed,
            reactor=reactor,
            version=version,
            at=at,
            bucket=cause.bucket,
            key=cause.key,
            version_id=cause.version_id,
            request_id=request_id,
        )
    )
    return events


def _output(output: Output) -> dict[str, Any]:
    return {
        "bucket": output.bucket, "key": output.key, "versionId": output.version_id,
        "eTag": output.etag, "size": output.size,
    }  # fmt: skip


def failed(
    reactor: str,
    version: int,
    cause: NewEvent,
    *,
    at: datetime,
    reason: str,
    delivery: str,
    attempt: int,
    duration_ms: float,
    request_id: str | None = None,
    partial: Sequence[Output] = (),
) -> NewEvent:
    """The outcome event of one failed attempt; `delivery` names the attempt's origin (an
    SQS message id, or a `reactors run` id). `partial`: what the attempt wrote before it
    failed, left in S3 (the first MAX_PARTIAL_OUTPUTS, and how many there were)."""
    record: dict[str, Any] = {
        "reason": reason[:MAX_REASON_CHARS],
        "attempt": attempt,
        "delivery": delivery,
        "durationMs": round(duration_ms, 3),
    }
    if partial:
        record["partialOutputs"] = [_output(o) for o in partial[:MAX_PARTIAL_OUTPUTS]]
        record["partialOutputCount"] = len(partial)
    return _outcome(
        OutcomeKind.FAILED, failed_id(reactor, version, cause.event_id, delivery, attempt),
        cause, record, reactor=reactor, version=version, at=at, bucket=cause.bucket, key=cause.key,
        version_id=cause.version_id, request_id=request_id,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class RecordedOutcome:
    """An outcome event read back from the log, with the fields of its kind."""

    position: int
    kind: OutcomeKind
    at: datetime
    reactor: str
    reactor_version: int
    cause_event_id: str
    cause_bucket: str
    cause_key: str
    cause_version_id: str | None
    cause_event_time: str  # as recorded (ISO 8601)
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    duration_ms: float | None
    attempt: int | None
    reason: str | None
    details: Mapping[str, Any]
    messages: tuple[Mapping[str, str], ...]
    # A failed attempt's outputs left in S3 (as recorded: bucket, key, versionId, eTag, size;
    # the first MAX_PARTIAL_OUTPUTS of partial_output_count).
    partial_outputs: tuple[Mapping[str, Any], ...] = ()
    partial_output_count: int = 0


def read_outcome(stored: StoredEvent) -> RecordedOutcome:
    """The outcome a stored `Reactor:*` event records (its record is decoded)."""
    event = stored.event
    record = event.record
    reactor = record["reactor"]
    cause = record["cause"]
    return RecordedOutcome(
        position=stored.position, kind=OutcomeKind(event.event_name), at=event.event_time,
        reactor=reactor["name"], reactor_version=int(reactor["version"]),
        cause_event_id=cause["eventId"], cause_bucket=cause["bucket"], cause_key=cause["key"],
        cause_version_id=cause.get("versionId"), cause_event_time=cause["eventTime"],
        bucket=event.bucket, key=event.key, version_id=event.version_id, etag=event.etag,
        size=event.size, duration_ms=record.get("durationMs"), attempt=record.get("attempt"),
        reason=record.get("reason"), details=record.get("details") or {},
        messages=tuple(record.get("messages") or ()),
        partial_outputs=tuple(record.get("partialOutputs") or ()),
        partial_output_count=int(record.get("partialOutputCount") or 0),
    )  # fmt: skip
