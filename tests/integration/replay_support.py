"""Helpers for the replay tests: moto credentials, real-shaped SQS bodies, an archive
written in the archive consumer's layout, and direct ingestion to compare against."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from eventstore.core.events import Source
from eventstore.core.parsing import Envelope
from eventstore.ingest import IngestSummary, ingest_envelopes
from eventstore.replay import archive_key
from eventstore.store.base import EventLog
from tests.notification_factory import T0, notification, s3_record, sns_wrapped

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
SENT = datetime(2026, 3, 1, 10, 15, tzinfo=UTC)


def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that can reach nothing but moto."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@dataclass(frozen=True)
class SentMessage:
    """One SQS message as the ingest queue got it: id, SentTimestamp and body."""

    message_id: str
    sent_at: datetime
    body: str


def sample_messages() -> list[SentMessage]:
    """A day of traffic over three hours: SNS-wrapped and raw-delivered bodies, several
    records in one message, an overwrite, a delete marker, awkward keys, a test event."""
    hour = timedelta(hours=1)

    def at(seconds: int) -> datetime:
        return T0 + timedelta(seconds=seconds)

    bucket, report = "audit-bucket", "reports/2026/march.csv"
    records = [
        s3_record(bucket, report, version_id="v1", sequencer="0A1", when=at(1), size=100),
        s3_record(bucket, report, version_id="v2", sequencer="0A2", when=at(2), size=100),
        s3_record(bucket, "photos/a b+c ü.jpg", sequencer="0B1", when=at(3), size=100),
        s3_record(
            bucket,
            report,
            event_name="ObjectRemoved:DeleteMarkerCreated",
            version_id="v3",
            sequencer="0A3",
            when=at(4),
        ),
        s3_record(bucket, "tmp/scratch.bin", sequencer="0C1", when=at(5), size=100),
        s3_record(
            bucket,
            "tmp/scratch.bin",
            event_name="ObjectRemoved:Delete",
            sequencer="0C2",
            when=at(6),
        ),
    ]
    return [
        SentMessage("5f1c0a3e-0001", SENT, sns_wrapped("sns-0001", records[0])),
        SentMessage(
            "5f1c0a3e-0002", SENT + timedelta(minutes=5), sns_wrapped("sns-0002", records[1])
        ),
        SentMessage("5f1c0a3e-0003", SENT + hour, json.dumps(notification([records[2]]))),
        SentMessage("5f1c0a3e-0004", SENT + hour, sns_wrapped("sns-0004", records[3], records[4])),
        SentMessage("5f1c0a3e-0005", SENT + 2 * hour, sns_wrapped("sns-0005", records[5])),
        SentMessage(
            "5f1c0a3e-0006",
            SENT + 2 * hour,
            json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "audit-bucket"}),
        ),
    ]


def write_archive(
    s3: "S3Client", bucket: str, messages: list[SentMessage], prefix: str = "raw/"
) -> list[str]:
    """Write the bodies where the archive consumer would; return the keys."""
    keys = []
    for message in messages:
        key = archive_key(message.message_id, message.sent_at, prefix)
        s3.put_object(Bucket=bucket, Key=key, Body=message.body.encode("utf-8"))
        keys.append(key)
    return keys


def ingest_directly(log: EventLog, messages: list[SentMessage]) -> IngestSummary:
    """What the ingest consumer stored from these messages in the first place."""
    envelopes = [Envelope(m.message_id, m.body, Source.SQS) for m in messages]
    return ingest_envelopes(log, envelopes)


def event_ids(log: EventLog) -> set[str]:
    return {stored.event.event_id for stored in log.read()}
