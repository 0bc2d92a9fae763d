"""Draining an SQS queue (moto): what is stored is deleted, a poison message stays behind."""

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
import sqlalchemy as sa
from moto import mock_aws

from eventstore.core.parsing import parse_sqs_body
from eventstore.errors import StorageError
from eventstore.replay import drain_queue
from eventstore.store.sql import SqlEventStore
from tests.integration.replay_support import REGION, event_ids, fake_aws_credentials
from tests.notification_factory import s3_record, sns_wrapped

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator["SQSClient"]:
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


@pytest.fixture
def dlq(sqs: "SQSClient") -> str:
    return sqs.create_queue(QueueName="s3-events-dlq")["QueueUrl"]


def good_bodies(count: int) -> list[str]:
    return [
        sns_wrapped(
            f"sns-{i}",
            s3_record("audit-bucket", f"inbox/file-{i}.csv", sequencer=f"0F{i:02d}", size=100),
        )
        for i in range(count)
    ]


def send(sqs: "SQSClient", queue_url: str, bodies: list[str]) -> list[str]:
    return [sqs.send_message(QueueUrl=queue_url, MessageBody=b)["MessageId"] for b in bodies]


def visible_messages(sqs: "SQSClient", queue_url: str) -> dict[str, str]:
    """Message id -> body of everything receivable now (and hidden again for a minute)."""
    found: dict[str, str] = {}
    while True:
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
        )
        messages = response.get("Messages", [])
        if not messages:
            return found
        found.update({m["MessageId"]: m["Body"] for m in messages})


def queue_depth(sqs: "SQSClient", queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_drain_stores_and_deletes_the_good_messages_and_leaves_the_poison_behind(
    sqs: "SQSClient", dlq: str, sqlite_store: SqlEventStore
) -> None:
    # Given a dead-letter queue with good messages, one already stored, and two poison ones
    bodies = good_bodies(12)
    sqlite_store.append(parse_sqs_body(bodies[0], message_id="first-try").events)
    good_ids = send(sqs, dlq, bodies)
    poison_ids = send(sqs, dlq, ['{"Records": [', json.dumps({"Records": [{"eventName": 1}]})])

    # When the queue is drained
    summary = drain_queue(sqlite_store, sqs, dlq, wait_seconds=0, max_empty_receives=1)

    # Then every good message is stored (the one already there as a duplicate) and deleted
    assert summary.read == 14
    assert (summary.appended, summary.duplicates) == (11, 1)
    assert summary.deleted == len(good_ids)
    assert len(event_ids(sqlite_store)) == 12
    # and the poison messages are reported and still in the queue, visible again
    assert summary.failed == 2
    reasons = {f.item: f.reason for f in summary.failures}
    assert set(reasons) == set(poison_ids)
    assert "not JSON" in reasons[poison_ids[0]]
    assert "Records[0]" in reasons[poison_ids[1]]
    assert set(visible_messages(sqs, dlq)) == set(poison_ids)
    assert sqlite_store.verify().ok


def test_draining_again_stores_nothing_and_reports_the_poison_again(
    sqs: "SQSClient", dlq: str, sqlite_store: SqlEventStore
) -> None:
    send(sqs, dlq, good_bodies(3))
    (poison,) = send(sqs, dlq, ["not json at all"])
    drain_queue(sqlite_store, sqs, dlq, wait_seconds=0, max_empty_receives=1, batch=2)
    head = sqlite_store.head_position()

    again = drain_queue(sqlite_store, sqs, dlq, wait_seconds=0, max_empty_receives=1)

    assert (again.read, again.appended, again.deleted) == (1, 0, 0)
    assert [f.item for f in again.failures] == [poison]
    assert sqlite_store.head_position() == head
    assert queue_depth(sqs, dlq) == 1


def test_a_poison_message_that_reappears_does_not_keep_the_drain_going(
    sqs: "SQSClient", dlq: str, sqlite_store: SqlEventStore
) -> None:
    # A zero visibility timeout hands the failed message back on every receive
    (poison,) = send(sqs, dlq, ["{"])
    send(sqs, dlq, good_bodies(2))

    summary = drain_queue(
        sqlite_store, sqs, dlq, visibility_timeout=0, wait_seconds=0, max_empty_receives=3
    )

    assert summary.failed == 1 and summary.failures[0].item == poison
    assert summary.deleted == 2
    assert queue_depth(sqs, dlq) == 1


def test_nothing_is_deleted_when_the_database_refuses_the_append(
    sqs: "SQSClient", dlq: str, sqlite_store: SqlEventStore
) -> None:
    # Given a database that cannot take writes (its events table is gone)
    send(sqs, dlq, good_bodies(4))
    with sqlite_store.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE events"))

    # When a drain tries to store the messages, it fails...
    with pytest.raises(StorageError):
        drain_queue(sqlite_store, sqs, dlq, wait_seconds=0, max_empty_receives=1)

    # ...and every message is still in the queue
    assert queue_depth(sqs, dlq) == 4


def test_a_test_event_is_skipped_and_deleted(
    sqs: "SQSClient", dlq: str, sqlite_store: SqlEventStore
) -> None:
    send(sqs, dlq, [json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})])

    summary = drain_queue(sqlite_store, sqs, dlq, wait_seconds=0, max_empty_receives=1)

    assert (summary.skipped, summary.appended, summary.deleted, summary.failed) == (1, 0, 1, 0)
    assert queue_depth(sqs, dlq) == 0
