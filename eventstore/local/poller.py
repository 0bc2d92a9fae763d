"""A local SQS event source mapping: polls a queue and invokes a handler the way Lambda's SQS
integration does, for the demo and the end-to-end tests (moto's Lambda needs Docker).

What it reproduces:
- batches of up to `batch_size` messages, gathered for up to `batching_window` seconds;
- Lambda-shaped events (messageId, receiptHandle, body, attributes with ApproximateReceiveCount
  and SentTimestamp, messageAttributes, md5OfBody, eventSource "aws:sqs", eventSourceARN,
  awsRegion) and a context whose get_remaining_time_in_millis counts down the function timeout;
- ReportBatchItemFailures: only the messages not named in `batchItemFailures` are deleted; an
  empty, missing or unknown itemIdentifier, a malformed response, a raised exception or a
  timeout fails the whole batch (nothing is deleted);
- failed messages stay in the queue: SQS makes them visible again after the visibility timeout,
  counts the receives, and moves them to the dead-letter queue after maxReceiveCount;
- several pollers per queue at once (threads), like Lambda's concurrent pollers.

One local shortcut: `retry_after` (seconds) shortens the wait before a failed message is
retried by changing its visibility, instead of waiting out the queue's visibility timeout
(minutes in the template). None keeps Lambda's behaviour.
"""

import importlib
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eventstore.errors import EventStoreError

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

MAX_RECEIVE = 10  # SQS's own limit per ReceiveMessage call


def load_handler(dotted: str) -> Handler:
    """`consumers.ingest.handler` -> the function, as Lambda resolves a Handler setting."""
    module, _, name = dotted.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module), name)
    return handler


class DrainTimeoutError(EventStoreError):
    """The queues were not empty by the deadline."""


@dataclass(frozen=True, slots=True)
class EventSource:
    """One event source mapping: which queue, how to batch, how the function behaves."""

    queue_url: str
    queue_arn: str
    function_name: str = "local-consumer"
    batch_size: int = 10
    batching_window: float = 0.0
    report_batch_item_failures: bool = True
    timeout: float = 30.0
    memory_mb: int = 128
    concurrency: int = 2
    region: str = "us-east-1"


class LambdaContext:
    """The parts of Lambda's context object handlers use, with a real countdown."""

    def __init__(self, source: EventSource, account_id: str = "123456789012") -> None:
        self.function_name = source.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{source.region}:{account_id}:function:{source.function_name}"
        )
        self.memory_limit_in_mb = source.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{source.function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self._deadline = time.monotonic() + source.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class PollerStats:
    """Counts over the life of a poller, shared by its threads."""

    invocations: int = 0
    received: int = 0
    deleted: int = 0
    failed: int = 0  # message receives that were not deleted (retried or dead-lettered later)
    batch_failures: int = 0  # invocations whose whole batch failed
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


def failed_message_ids(
    response: Any, message_ids: Sequence[str], *, report_batch_item_failures: bool
) -> tuple[set[str], str | None]:
    """The ids to leave in the queue after an invocation that returned `response`, and why the
    whole batch failed (None when it did not). Follows the ReportBatchItemFailures rules."""
    everything = set(message_ids)
    if not report_batch_item_failures or response is None:
        return set(), None
    if not isinstance(response, dict):
        return everything, f"response is not a JSON object: {response!r:.200}"
    failures = response.get("batchItemFailures")
    if failures is None:
        return set(), None
    if not isinstance(failures, list):
        return everything, "batchItemFailures is not a list"
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier:
            return everything, f"empty or missing itemIdentifier in {item!r:.200}"
        if identifier not in everything:
            return everything, f"itemIdentifier {identifier!r} is not in the batch"
        failed.add(identifier)
    return failed, None


def lambda_record(message: "MessageTypeDef", source: EventSource) -> dict[str, Any]:
    """One SQS message as Lambda puts it in the event's Records."""
    attributes = dict(message.get("Attributes", {}))
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": list(value.get("StringListValues", [])),
                "binaryListValues": list(value.get("BinaryListValues", [])),
                "dataType": value.get("DataType", "String"),
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": source.queue_arn,
        "awsRegion": source.region,
    }


class SqsPoller:
    """Polls one queue with `source.concurrency` threads and invokes `handler` per batch."""

    def __init__(
        self,
        sqs: "SQSClient",
        source: EventSource,
        handler: Handler,
        *,
        retry_after: int | None = None,
        wait_seconds: int = 1,
    ) -> None:
        self.sqs = sqs
        self.source = source
        self.handler = handler
        self.retry_after = retry_after
        self.wait_seconds = wait_seconds
        self.stats = PollerStats()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- one batch -------------------------------------------------------------------------
    def receive_batch(self) -> list["MessageTypeDef"]:
        """Up to batch_size messages, collected for at most the batching window."""
        deadline = time.monotonic() + self.source.batching_window
        batch: list[MessageTypeDef] = []
        wait = self.wait_seconds
        while len(batch) < self.source.batch_size and not self._stop.is_set():
            response = self.sqs.receive_message(
                QueueUrl=self.source.queue_url,
                MaxNumberOfMessages=min(MAX_RECEIVE, self.source.batch_size - len(batch)),
                WaitTimeSeconds=wait,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            batch.extend(messages)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (not messages and batch):
                break
            if not messages and not batch:
                return batch  # nothing to wait for; the caller polls again
            wait = max(0, min(self.wait_seconds, int(remaining)))
        return batch

    def poll_once(self) -> int:
        """Receive one batch, invoke the handler, delete what succeeded. Returns the batch size."""
        batch = self.receive_batch()
        if not batch:
            return 0
        records = [lambda_record(m, self.source) for m in batch]
        ids = [r["messageId"] for r in records]
        context = LambdaContext(self.source)
        started = time.monotonic()
        reason: str | None
        try:
            response = self.handler({"Records": records}, context)
        except Exception as error:  # Lambda: an error fails the whole batch
            failed, reason = set(ids), f"{type(error).__name__}: {error}"
            logger.warning(
                "%s: invocation failed, batch of %d returns to the queue: %s",
                self.source.function_name, len(ids), reason,
            )  # fmt: skip
            logger.debug("%s", traceback.format_exc())
        else:
            if time.monotonic() - started > self.source.timeout:
                failed, reason = set(ids), f"timed out after {self.source.timeout:g} s"
            else:
                failed, reason = failed_message_ids(
                    response, ids,
                    report_batch_item_failures=self.source.report_batch_item_failures,
                )  # fmt: skip
        succeeded = [m for m in batch if m["MessageId"] not in failed]
        self._delete(succeeded)
        self._release([m for m in batch if m["MessageId"] in failed])
        with self.stats.lock:
            self.stats.invocations += 1
            self.stats.received += len(batch)
            self.stats.deleted += len(succeeded)
            self.stats.failed += len(batch) - len(succeeded)
            if reason is not None:
                self.stats.batch_failures += 1
                self.stats.errors.append(reason)
        return len(batch)

    def _delete(self, messages: Sequence["MessageTypeDef"]) -> None:
        for start in range(0, len(messages), MAX_RECEIVE):
            chunk = messages[start : start + MAX_RECEIVE]
            result = self.sqs.delete_message_batch(
                QueueUrl=self.source.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]}
                    for index, m in enumerate(chunk)
                ],
            )
            for failure in result.get("Failed", []):
                # The message will be delivered again; the consumer is idempotent.
                logger.warning("delete failed: %s", failure)

    def _release(self, messages: Sequence["MessageTypeDef"]) -> None:
        if self.retry_after is None or not messages:
            return
        self.sqs.change_message_visibility_batch(
            QueueUrl=self.source.queue_url,
            Entries=[
                {
                    "Id": str(index),
                    "ReceiptHandle": m["ReceiptHandle"],
                    "VisibilityTimeout": self.retry_after,
                }
                for index, m in enumerate(messages)
            ],
        )

    # --- threads ---------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        for index in range(max(1, self.source.concurrency)):
            thread = threading.Thread(
                target=self._run, name=f"{self.source.function_name}-poller-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as error:  # the endpoint went away, a throttle: keep polling
                with self.stats.lock:
                    self.stats.errors.append(f"poll: {type(error).__name__}: {error}")
                logger.warning("%s: poll failed: %s", self.source.function_name, error)
                self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def queue_depth(self) -> int:
        """Messages visible, in flight and delayed, as SQS reports them."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.source.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())


def drain(pollers: Sequence[SqsPoller], *, timeout: float = 60.0, settle: float = 0.3) -> None:
    """Run every poller concurrently until all their queues are empty (failed messages
    included: they end deleted or in a dead-letter queue), then stop them."""
    deadline = time.monotonic() + timeout
    for poller in pollers:
        poller.start()
    try:
        while True:
            if all(p.queue_depth() == 0 for p in pollers):
                time.sleep(settle)  # a batch being invoked has left the queue's counts already
                if all(p.queue_depth() == 0 for p in pollers):
                    return
            if time.monotonic() > deadline:
                depths = {p.source.queue_url: p.queue_depth() for p in pollers}
                raise DrainTimeoutError(f"queues not empty after {timeout:g} s: {depths}")
            time.sleep(0.1)
    finally:
        for poller in pollers:
            poller.stop()
