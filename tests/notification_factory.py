"""Real-shaped S3 event notifications, built in bulk: S3 records, the S3 notification that
holds them, the SNS notification that wraps it, the Lambda SQS event that carries those, and
the NewEvents the parser makes of them. Used by the storage contract tests, the concurrency
proof, the replay tests and the benchmarks, which need many distinct events, not fixtures."""

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

from eventstore.core.events import NewEvent
from eventstore.core.parsing import parse_sqs_body

REGION = "eu-west-1"
TOPIC_ARN = f"arn:aws:sns:{REGION}:123456789012:s3-events"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:s3-events-ingest"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EMPTY_ETAG = "d41d8cd98f00b204e9800998ecf8427e"  # the MD5 of no bytes


def iso(when: datetime) -> str:
    """S3's form (milliseconds), or microseconds when the time has them."""
    fraction = (
        f"{when.microsecond:06d}" if when.microsecond % 1000 else f"{when.microsecond // 1000:03d}"
    )
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + fraction + "Z"


def s3_record(
    bucket: str,
    key: str,
    *,
    event_name: str = "ObjectCreated:Put",
    when: datetime = T0,
    sequencer: str | None = None,
    version_id: str | None = None,
    size: int | None = 1024,
    etag: str | None = EMPTY_ETAG,
    principal: str = "AWS:AIDAEXAMPLEUSER",
    source_ip: str = "198.51.100.7",
    request_id: str | None = None,
    padding: int = 0,
) -> dict[str, Any]:
    """One S3 event record as S3 sends it (key form-URL-encoded). Removal events carry no
    size or eTag; `size=None` or `etag=None` leaves either out of any other event too (S3
    sends neither with a lifecycle expiration, and no size with a tagging event). Without a
    `request_id` the record gets a random one. `padding` adds that many bytes of extra
    unknown fields, to make records of a realistic size."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/")}
    if not event_name.startswith("ObjectRemoved:"):
        if size is not None:
            obj["size"] = size
        if etag is not None:
            obj["eTag"] = etag
    if version_id is not None:
        obj["versionId"] = version_id
    if sequencer is not None:
        obj["sequencer"] = sequencer
    record: dict[str, Any] = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": iso(when),
        "eventName": event_name,
        "userIdentity": {"principalId": principal},
        "requestParameters": {"sourceIPAddress": source_ip},
        "responseElements": {
            "x-amz-request-id": request_id or uuid.uuid4().hex[:16].upper(),
            "x-amz-id-2": "EXAMPLE123/5678abcdefghijklambdaisawesome/mnopqrstuvwxyzABCDEFGH",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "to-sns",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
    }
    if padding:
        record["x-padding"] = "p" * padding
    return record


def sequencer_of(n: int) -> str:
    return f"{n:016X}"


def notification(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """An S3 event notification: what S3 publishes, and what raw delivery puts in SQS."""
    return {"Records": list(records)}


def sns_wrapped(message_id: str, *records: dict[str, Any]) -> str:
    """An SQS message body: the SNS Notification (as SQS receives it without raw delivery)
    whose Message is the S3 notification of `records`."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": TOPIC_ARN,
            "Subject": "Amazon S3 Notification",
            "Message": json.dumps(notification(records)),
            "Timestamp": iso(T0),
            "SignatureVersion": "1",
            "Signature": "EXAMPLEpH+",
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService.pem",
            "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
        }
    )


def sqs_lambda_event(messages: Sequence[dict[str, Any]], *, via_sns: bool = True) -> dict[str, Any]:
    """A Lambda event from an SQS event source mapping, one SQS message per S3 notification
    in `messages` (SNS-wrapped, or raw-delivered when not `via_sns`)."""
    records = []
    for message in messages:
        body = (
            sns_wrapped(str(uuid.uuid4()), *message["Records"]) if via_sns else json.dumps(message)
        )
        records.append(
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1772366400000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1772366400001",
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def new_events(records: Sequence[dict[str, Any]], *, message_id: str = "msg-1") -> list[NewEvent]:
    """The NewEvents the parser makes of `records` delivered through SNS and SQS (in messages
    of at most 50 records, to stay under SQS's size limit)."""
    parsed: list[NewEvent] = []
    for start in range(0, len(records), 50):
        body = sns_wrapped(str(uuid.uuid4()), *records[start : start + 50])
        parsed.extend(parse_sqs_body(body, message_id=message_id).events)
    return parsed


def put_records(
    bucket: str,
    keys: Sequence[str],
    *,
    start: int = 0,
    step: timedelta = timedelta(seconds=1),
    padding: int = 0,
) -> list[dict[str, Any]]:
    """One ObjectCreated:Put per key, at T0 + (start + i) * step, with distinct sequencers."""
    return [
        s3_record(
            bucket, key, when=T0 + (start + i) * step, sequencer=sequencer_of(start + i + 1),
            version_id=f"v{start + i}", size=100 + start + i, padding=padding,
        )
        for i, key in enumerate(keys)
    ]  # fmt: skip
