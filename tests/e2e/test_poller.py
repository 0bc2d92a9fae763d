"""The local event-source mapping against moto's SQS: batching, concurrency, the
ReportBatchItemFailures rules, receive counts and the redrive to the dead-letter queue."""

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from eventstore.local.poller import EventSource, SqsPoller, drain

pytestmark = pytest.mark.e2e


@dataclass
class Queue:
    sqs: Any
    url: str
    arn: str
    dlq_url: str

    def send(self, count: int) -> list[str]:
        return [
            self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps({"n": n}))["MessageId"]
            for n in range(count)
        ]

    def source(self, **settings: Any) -> EventSource:
        return EventSource(queue_url=self.url, queue_arn=self.arn, **settings)

    def dead_letter_ids(self) -> set[str]:
        ids: set[str] = set()
        while batch := self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            ids.update(m["MessageId"] for m in batch)
        return ids


@pytest.fixture
def queue(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Queue]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_endpoint)
    name = f"q-{uuid.uuid4().hex[:8]}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    yield Queue(sqs, url, arn, dlq)


def test_batches_respect_batch_size_and_run_on_concurrent_pollers(queue: Queue) -> None:
    sent = set(queue.send(25))
    seen: list[tuple[str, int, int]] = []
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> None:
        time.sleep(0.2)  # long enough for the second poller to take a batch meanwhile
        with lock:
            seen.append((threading.current_thread().name, len(event["Records"]),
                         context.get_remaining_time_in_millis()))  # fmt: skip
        for record in event["Records"]:
            sent.discard(record["messageId"])
            assert record["eventSource"] == "aws:sqs"
            assert record["eventSourceARN"] == queue.arn
            assert int(record["attributes"]["ApproximateReceiveCount"]) >= 1
            assert record["attributes"]["SentTimestamp"].isdigit()

    poller = SqsPoller(queue.sqs, queue.source(batch_size=4, concurrency=2, timeout=30), handler)
    drain([poller], timeout=30)

    assert sent == set()
    assert all(size <= 4 for _, size, _ in seen)
    assert len({thread for thread, _, _ in seen}) == 2
    assert all(0 < remaining <= 30_000 for _, _, remaining in seen)
    # at least: moto, like SQS, may hand one message to both pollers (at-least-once delivery)
    assert poller.stats.deleted >= 25


def test_partial_failures_leave_only_the_named_messages(queue: Queue) -> None:
    ids = queue.send(3)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": ids[1]}] if any(
            r["messageId"] == ids[1] for r in event["Records"]) else []}  # fmt: skip

    poller = SqsPoller(
        queue.sqs, queue.source(batch_size=10, concurrency=1), handler, retry_after=0
    )
    drain([poller], timeout=30)

    assert queue.dead_letter_ids() == {ids[1]}
    assert poller.stats.deleted == 2
    assert poller.stats.failed == 2  # the named message, received maxReceiveCount times


@pytest.mark.parametrize(
    "outcome",
    ["raises", "unknown identifier", "empty identifier"],
)
def test_whole_batch_failures_delete_nothing(queue: Queue, outcome: str) -> None:
    ids = set(queue.send(3))

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if outcome == "raises":
            raise RuntimeError("database unavailable")
        identifier = "not-a-message" if outcome == "unknown identifier" else ""
        return {"batchItemFailures": [{"itemIdentifier": identifier}]}

    poller = SqsPoller(
        queue.sqs, queue.source(batch_size=10, concurrency=1), handler, retry_after=0
    )
    drain([poller], timeout=30)

    assert poller.stats.deleted == 0
    assert queue.dead_letter_ids() == ids  # every message was retried to maxReceiveCount
    assert poller.stats.batch_failures >= 2


def test_failed_messages_wait_for_the_visibility_timeout_without_retry_after(queue: Queue) -> None:
    (message_id,) = queue.send(1)
    poller = SqsPoller(
        queue.sqs,
        queue.source(concurrency=1),
        lambda e, c: {"batchItemFailures": [{"itemIdentifier": message_id}]},
    )
    assert poller.poll_once() == 1
    assert poller.poll_once() == 0  # still invisible: Lambda leaves a failed message alone
    assert poller.queue_depth() == 1
