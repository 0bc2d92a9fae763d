"""Builders of real-shaped S3 notification records, for tests that need many of them."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

from eventstore.core.events import NewEvent, Source
from eventstore.core.parsing import Envelope, parse_envelope

BASE_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def s3_record(
    *,
    bucket: str = "audit-bucket",
    key: str,
    name: str = "ObjectCreated:Put",
    version_id: str | None = None,
    sequencer: str | None = None,
    seconds: float = 0,
    size: int | None = 100,
    etag: str | None = "d41d8cd98f00b204e9800998ecf8427e",
    principal: str = "AWS:AIDAEXAMPLEUSER",
    request_id: str | None = None,
) -> dict[str, Any]:
    """One S3 notification record in AWS's shape (eventVersion 2.1), key URL-encoded."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/")}
    if name.startswith(("ObjectCreated:", "ObjectRestore:", "Replication:")):
        if size is not None:
            obj["size"] = size
        if etag is not None:
            obj["eTag"] = etag
    if version_id is not None:
        obj["versionId"] = version_id
    if sequencer is not None:
        obj["sequencer"] = sequencer
    when = BASE_TIME + timedelta(seconds=seconds)
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "eu-west-1",
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "eventName": name,
        "userIdentity": {"principalId": principal},
        "requestParameters": {"sourceIPAddress": "203.0.113.10"},
        "responseElements": {
            "x-amz-request-id": request_id
            or f"REQ{abs(hash((key, name, sequencer, seconds))) % 10**12:012d}",
            "x-amz-id-2": "example/host/id",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "all-events",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
    }


def notification(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def sns_wrapped(message_id: str, *records: dict[str, Any]) -> str:
    """An SQS body: an SNS notification wrapping an S3 notification."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:s3-events",
            "Subject": "Amazon S3 Notification",
            "Message": json.dumps(notification(*records)),
            "Timestamp": "2026-03-01T12:00:01.000Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/cert.pem",
            "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
        }
    )


def new_events(*records: dict[str, Any]) -> list[NewEvent]:
    """Parse records the way ingestion does, so ids and fields are the real ones."""
    delivery = parse_envelope(Envelope("test", notification(*records), Source.S3))
    return list(delivery.events)
