"""consumers.archive.handler against moto's S3 (in process): the documented key layout, the
body verbatim, and a message that cannot be placed failing alone."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from consumers import archive
from eventstore.replay import archive_key as replay_archive_key

BUCKET = "archive-bucket"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:archive"


class Context:
    function_name = "archive"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:archive"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _record(message_id: str, body: str, sent_ms: int | None) -> dict[str, Any]:
    attributes = {"ApproximateReceiveCount": "1"}
    if sent_ms is not None:
        attributes["SentTimestamp"] = str(sent_ms)
    return {
        "messageId": message_id, "receiptHandle": "rh", "body": body, "attributes": attributes,
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN, "awsRegion": "us-east-1",
    }  # fmt: skip


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("ARCHIVE_BUCKET", BUCKET)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("ARCHIVE_PREFIX", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        archive._clients.clear()  # a new moto backend: drop the container's cached client
        yield client
    archive._clients.clear()


def test_key_layout_is_prefix_date_hour_message_id() -> None:
    sent = int(datetime(2026, 3, 1, 7, 59, 59, tzinfo=UTC).timestamp() * 1000)
    assert archive.archive_key("abc", sent) == "raw/2026/03/01/07/abc.json"
    assert archive.archive_key("abc", sent, "x/y/") == "x/y/2026/03/01/07/abc.json"
    # the replay side computes the same key
    assert replay_archive_key("abc", datetime(2026, 3, 1, 7, 59, 59, tzinfo=UTC)) == (
        "raw/2026/03/01/07/abc.json"
    )


def test_bodies_are_written_verbatim_and_an_unplaceable_message_fails_alone(s3: Any) -> None:
    body = json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "odd": "ü"}]}, indent=1)
    sent = int(datetime(2026, 3, 1, 23, 0, tzinfo=UTC).timestamp() * 1000)
    event = {"Records": [_record("m-1", body, sent), _record("m-2", "{}", None)]}

    response = archive.handler(event, Context())  # type: ignore[arg-type]

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    stored = s3.get_object(Bucket=BUCKET, Key="raw/2026/03/01/23/m-1.json")
    assert stored["Body"].read().decode("utf-8") == body
    assert stored["ContentType"] == "application/json"
    assert stored["Metadata"] == {
        "source-queue-arn": QUEUE_ARN, "sent-timestamp": str(sent), "message-id": "m-1",
    }  # fmt: skip
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 1


def test_a_redelivered_message_overwrites_its_own_object(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIVE_PREFIX", "notifications/")
    sent = int(datetime(2026, 3, 1, 0, 0, tzinfo=UTC).timestamp() * 1000)
    for _ in range(2):
        archive.handler({"Records": [_record("m-1", "{}", sent)]}, Context())  # type: ignore[arg-type]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == ["notifications/2026/03/01/00/m-1.json"]
