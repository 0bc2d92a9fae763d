"""Helpers shared by the tests: fixtures parsed into events, hand-made events, Lambda shapes.

Builders of S3 records and notifications are in tests.notification_factory."""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from eventstore.core.events import NewEvent, Source
from eventstore.core.identity import derive_event_id
from eventstore.core.objectstate import CatalogEntry
from eventstore.core.parsing import Delivery, envelopes_of_file, parse_envelope
from eventstore.store.sql import SqlEventStore
from eventstore.wiring import event_store_on
from tests.conftest import event_text, load_event
from tests.notification_factory import T0


def deliveries_of(name: str) -> list[Delivery]:
    """Every envelope of a fixture file, parsed (raises on a malformed one)."""
    return [parse_envelope(e) for e in envelopes_of_file(event_text(name), name=name)]


def events_of(name: str) -> list[NewEvent]:
    """Every S3 event of a fixture file, in file order."""
    return [event for delivery in deliveries_of(name) for event in delivery.events]


def only_event_of(name: str) -> NewEvent:
    (event,) = events_of(name)
    return event


def make_event(
    event_name: str,
    *,
    bucket: str = "bucket",
    key: str = "key.txt",
    version_id: str | None = None,
    sequencer: str | None = None,
    seconds: float = 0,
    size: int | None = None,
    etag: str | None = None,
    principal_id: str | None = "AWS:AIDAEXAMPLE",
    request_id: str | None = None,
) -> NewEvent:
    """A NewEvent as the parser would make it, with its derived id."""
    event_time = T0 + timedelta(seconds=seconds)
    if size is None and event_name.startswith("ObjectCreated:"):
        size = 100
    if etag is None and event_name.startswith("ObjectCreated:"):
        etag = hashlib.md5(f"{key}{version_id}{sequencer}".encode()).hexdigest()
    record = {"eventName": event_name, "s3": {"object": {"key": key}}}
    return NewEvent(
        event_id=derive_event_id(
            bucket=bucket,
            key=key,
            version_id=version_id,
            sequencer=sequencer,
            event_name=event_name,
            event_time=event_time,
            request_id=request_id,
            etag=etag,
            size=size,
        ),
        event_name=event_name,
        event_time=event_time,
        bucket=bucket,
        key=key,
        version_id=version_id,
        sequencer=sequencer,
        size=size,
        etag=etag,
        principal_id=principal_id,
        source_ip="203.0.113.9",
        request_id=request_id,
        region="eu-west-1",
        source=Source.SQS_SNS,
        record=record,
    )


def first_record(name: str) -> dict[str, Any]:
    """The first S3 record of a bare-notification fixture, as a fresh dict to modify."""
    record: dict[str, Any] = load_event(name)["Records"][0]
    return record


def sns_body(message_text: str) -> str:
    """An SNS notification (as SQS delivers it) whose Message is `message_text`."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:s3-object-events",
            "Subject": "Amazon S3 Notification",
            "Message": message_text,
            "Timestamp": "2026-03-01T12:00:00.512Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem",
            "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
        },
        indent=2,
    )


def sqs_message(body: str, message_id: str | None = None, receive_count: int = 1) -> dict[str, Any]:
    """One record of a Lambda SQS event, shaped as Lambda delivers it."""
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "AQEBexample" + uuid.uuid4().hex,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1772366400512",
            "SenderId": "AIDAIT2UOQQY3AUEKVGXU",
            "ApproximateFirstReceiveTimestamp": "1772366400520",
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode("utf-8")).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:s3-events-ingest",
        "awsRegion": "eu-west-1",
    }


def sqs_event(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(messages)}


@dataclass
class LambdaContext:
    """What the Lambda runtime passes as `context` (the attributes Powertools reads)."""

    function_name: str = "s3-eventstore-ingest"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = (
        "arn:aws:lambda:eu-west-1:123456789012:function:s3-eventstore-ingest"
    )
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    log_group_name: str = "/aws/lambda/s3-eventstore-ingest"
    log_stream_name: str = "2026/03/01/[$LATEST]abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def caught_up_objects(
    log: SqlEventStore,
    *,
    bucket: str | None = None,
    prefix: str | None = None,
    include_deleted: bool = False,
) -> list[CatalogEntry]:
    """The object catalog once the registered projections caught up with `log`, as a person
    sees it after `eventstore ingest` or `replay`."""
    event_store = event_store_on(log)
    event_store.catch_up()
    return list(event_store.objects(bucket=bucket, prefix=prefix, include_deleted=include_deleted))
