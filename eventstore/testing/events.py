"""Builders of S3 event notifications shaped exactly as AWS sends them (an S3 record, the
notification that holds it, the SNS message that wraps it, the Lambda SQS batch that carries
it), and `events_of`, which turns any of them into the NewEvents the library's own parser
makes. No I/O, and nothing heavier than the parser is imported.

Which fields a record carries follows S3: created objects have a size, an eTag and a
sequencer; removals have a sequencer but neither size nor eTag; tagging and ACL events have
an eTag and no size; lifecycle transitions, restores and replication have no sequencer and
are made by `s3.amazonaws.com`. Keys are given decoded and sent form-URL-encoded.
"""

import base64
import hashlib
import json
import secrets
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

from eventstore.core.events import NewEvent, StoredEvent
from eventstore.core.parsing import envelopes_of_file, parse_envelope, split_document

REGION = "us-east-1"
ACCOUNT = "123456789012"
DEFAULT_BUCKET = "eventstore-test-bucket"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:s3-object-events"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:s3-object-events"
PRINCIPAL = "AWS:AIDAJDPLRKLG7UEXAMPLE"
SOURCE_IP = "203.0.113.17"
S3_SERVICE = "s3.amazonaws.com"  # the principal and source of what S3 does by itself

# Events S3 makes on its own (rules it runs), not at a caller's request.
_SERVICE_EVENTS = (
    "LifecycleExpiration:",
    "LifecycleTransition",
    "IntelligentTiering",
    "Replication:",
    "ObjectRestore:Completed",
    "ObjectRestore:Delete",
)
_SEQUENCED = ("ObjectCreated:", "ObjectRemoved:", "LifecycleExpiration:")
_NO_BODY_FIELDS = ("ObjectRemoved:", "LifecycleExpiration:")  # neither size nor eTag
_NO_SIZE = ("ObjectTagging:", "ObjectAcl:")
_EVENT_VERSIONS = {"Replication:": "2.2", "LifecycleTransition": "2.3", "IntelligentTiering": "2.3"}


class _Clock:
    """Default event times: now, to the millisecond as S3 reports it, and strictly increasing,
    so records built one after another are ordered (and identified) as built."""

    def __init__(self) -> None:
        self._last: datetime | None = None
        self._lock = threading.Lock()

    def next(self) -> datetime:
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        with self._lock:
            if self._last is not None and now <= self._last:
                now = self._last + timedelta(milliseconds=1)
            self._last = now
        return now


_clock = _Clock()


def _base64(size: int) -> str:
    """Random bytes as AWS spells its opaque ids and signatures."""
    return base64.b64encode(secrets.token_bytes(size)).decode("ascii")


def aws_time(when: datetime) -> str:
    """A time as S3 writes it (`2026-03-01T12:00:00.123Z`); microseconds when it has them."""
    when = when.astimezone(UTC)
    if when.microsecond % 1000:
        fraction = f"{when.microsecond:06d}"
    else:
        fraction = f"{when.microsecond // 1000:03d}"
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + fraction + "Z"


def sequencer_at(when: datetime) -> str:
    """A sequencer in S3's form (18 upper-case hex digits, the epoch seconds near the front)
    that grows with `when`: a later change of a key sorts after an earlier one."""
    when = when.astimezone(UTC)
    return f"00{int(when.timestamp()):08X}{when.microsecond:06X}00"


def etag_of(body: bytes) -> str:
    """The ETag S3 gives an object uploaded in one part: the MD5 of its bytes."""
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def s3_record(
    key: str,
    *,
    bucket: str = DEFAULT_BUCKET,
    event_name: str = "ObjectCreated:Put",
    event_time: datetime | None = None,
    body: bytes = b"",
    size: int | None = None,
    etag: str | None = None,
    version_id: str | None = None,
    sequencer: str | None = None,
    principal: str | None = None,
    source_ip: str | None = None,
    request_id: str | None = None,
    region: str = REGION,
    configuration_id: str = "object-events-to-sns",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One S3 event record as S3 sends it. `key` is the decoded key (`a b+c.txt`); the
    record spells it form-URL-encoded (`a+b%2Bc.txt`).

    Defaults: the time is now (later for each record built), the size and eTag those of
    `body`, a sequencer that grows with the time (for the events S3 gives one), a random
    request id; `version_id` only when given (a versioned bucket). Give `event_time`,
    `sequencer` and `request_id` for a record whose event id never changes.

    Lifecycle transitions, Intelligent-Tiering, restores and replication get the block S3
    adds for them (`lifecycleEventData`, ...); `extra` adds or replaces top-level fields."""
    when = event_time if event_time is not None else _clock.next()
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/")}
    if not event_name.startswith(_NO_BODY_FIELDS):
        if not event_name.startswith(_NO_SIZE):
            obj["size"] = len(body) if size is None else size
        obj["eTag"] = etag_of(body) if etag is None else etag
    if version_id is not None:
        obj["versionId"] = version_id
    if sequencer is not None:
        obj["sequencer"] = sequencer
    elif event_name.startswith(_SEQUENCED):
        obj["sequencer"] = sequencer_at(when)
    by_s3 = event_name.startswith(_SERVICE_EVENTS)
    version = next((v for p, v in _EVENT_VERSIONS.items() if event_name.startswith(p)), "2.1")
    record = {
        "eventVersion": version,
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": aws_time(when),
        "eventName": event_name,
        "userIdentity": {"principalId": principal or (S3_SERVICE if by_s3 else PRINCIPAL)},
        "requestParameters": {"sourceIPAddress": source_ip or (S3_SERVICE if by_s3 else SOURCE_IP)},
        "responseElements": {
            "x-amz-request-id": request_id or secrets.token_hex(8).upper(),
            "x-amz-id-2": _base64(48),
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
        **_kind_data(event_name, bucket, when),
    }
    record.update(extra or {})
    return record


def _kind_data(event_name: str, bucket: str, when: datetime) -> dict[str, Any]:
    """The block S3 adds to the records of some kinds of event (values are examples)."""
    if event_name == "LifecycleTransition":
        return {
            "lifecycleEventData": {"transitionEventData": {"destinationStorageClass": "GLACIER"}}
        }
    if event_name == "IntelligentTiering":
        return {"intelligentTieringEventData": {"destinationAccessTier": "ARCHIVE_ACCESS"}}
    if event_name == "ObjectRestore:Completed":
        expiry = (when + timedelta(days=7)).replace(hour=0, minute=0, second=0, microsecond=0)
        restore = {
            "lifecycleRestorationExpiryTime": aws_time(expiry),
            "lifecycleRestoreStorageClass": "Standard",
        }
        return {"glacierEventData": {"restoreEventData": restore}}
    if event_name.startswith("Replication:"):
        data = {
            "replicationRuleId": "replicate-all",
            "destinationBucket": f"arn:aws:s3:::{bucket}-replica",
            "s3Operation": "OBJECT_PUT",
            "requestTime": aws_time(when),
        }
        if event_name.endswith("FailedReplication"):
            data["failureReason"] = "AssumeRoleNotPermitted"
        elif event_name.endswith("Threshold"):
            data["threshold"] = "15"
            if event_name.endswith("ReplicatedAfterThreshold"):
                data["replicationTime"] = aws_time(when + timedelta(minutes=16))
        return {"replicationEventData": data}
    return {}


def _is_record(document: Mapping[str, Any]) -> bool:
    return "eventName" in document and "s3" in document


def s3_notification(*records: Mapping[str, Any]) -> dict[str, Any]:
    """The S3 event notification S3 publishes (and raw delivery puts in SQS as it is)."""
    return {"Records": [dict(record) for record in records]}


def _notification(item: Mapping[str, Any]) -> dict[str, Any]:
    """A notification of `item`, which is a notification already or one record."""
    return s3_notification(item) if _is_record(item) else dict(item)


def sns_message(
    notification: Mapping[str, Any],
    *,
    message_id: str | None = None,
    topic_arn: str = TOPIC_ARN,
    timestamp: datetime | None = None,
) -> dict[str, Any]:
    """The SNS notification SQS receives when SNS fans `notification` (or one record) out
    without raw delivery; its Message is the S3 notification's JSON, as S3 wrote it."""
    sent = timestamp if timestamp is not None else datetime.now(UTC)
    subscription = f"{topic_arn}:{uuid.uuid4()}"
    return {
        "Type": "Notification",
        "MessageId": message_id or str(uuid.uuid4()),
        "TopicArn": topic_arn,
        "Subject": "Amazon S3 Notification",
        "Message": json.dumps(_notification(notification), separators=(",", ":")),
        "Timestamp": aws_time(sent.replace(microsecond=sent.microsecond // 1000 * 1000)),
        "SignatureVersion": "1",
        "Signature": _base64(256),
        "SigningCertURL": f"https://sns.{REGION}.amazonaws.com/"
        f"SimpleNotificationService-{secrets.token_hex(16)}.pem",
        "UnsubscribeURL": f"https://sns.{REGION}.amazonaws.com/"
        f"?Action=Unsubscribe&SubscriptionArn={subscription}",
    }


def sqs_event_of(
    *notifications: Mapping[str, Any],
    via_sns: bool = True,
    receive_count: int = 1,
    queue_arn: str = QUEUE_ARN,
) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping passes a handler: one SQS message per
    notification (or record), its body the SNS notification (pretty-printed, as SNS
    delivers it to SQS) or, when not `via_sns`, the S3 notification (raw delivery)."""
    arn_parts = queue_arn.split(":")
    region = arn_parts[3] if len(arn_parts) > 3 else REGION
    messages = []
    for item in notifications:
        notification = _notification(item)
        if via_sns:
            body = json.dumps(sns_message(notification), indent=2)
        else:
            body = json.dumps(notification, separators=(",", ":"))
        sent_ms = int(datetime.now(UTC).timestamp() * 1000)
        messages.append(
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "AQEB" + secrets.token_urlsafe(96),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": str(receive_count),
                    "SentTimestamp": str(sent_ms),
                    "SenderId": "AIDAIT2UOQQY3AUEKVGXU",
                    "ApproximateFirstReceiveTimestamp": str(sent_ms + 7),
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": messages}


Notifications = NewEvent | StoredEvent | Mapping[str, Any] | str
"""What `events_of` accepts: a NewEvent (or a StoredEvent: its event); an S3 record; any
document `eventstore ingest`
accepts (a notification, a Lambda SQS/SNS/S3 event, an SNS notification, an EventBridge
event); or such a document's JSON text (JSON lines too)."""


def events_of(*items: Notifications | Iterable[Notifications]) -> list[NewEvent]:
    """The S3 events of `items`, parsed by the library's own parser, in order. A malformed
    one raises MalformedMessageError saying why; an `s3:TestEvent` holds no event."""
    events: list[NewEvent] = []
    for item in _flatten(items):
        if isinstance(item, NewEvent):
            events.append(item)
            continue
        if isinstance(item, StoredEvent):
            events.append(item.event)
            continue
        if isinstance(item, str):
            envelopes = list(envelopes_of_file(item, name="text"))
        else:
            envelopes = split_document(_notification(item), default_id="document")
        for envelope in envelopes:
            events.extend(parse_envelope(envelope).events)
    return events


def _flatten(items: Iterable[Any]) -> Iterable[Notifications]:
    for item in items:
        if isinstance(item, NewEvent | StoredEvent | Mapping | str):
            yield item
        elif isinstance(item, Iterable) and not isinstance(item, bytes):
            yield from _flatten(item)
        else:
            raise TypeError(
                f"not an S3 event, record or notification: {type(item).__name__} {item!r:.80}"
            )
