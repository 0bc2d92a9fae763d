"""Drain an SQS queue (typically the dead-letter queue) into the log: receive, ingest, and
delete only what was durably stored; what still fails stays in the queue and is reported."""

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from eventstore.core.events import NewEvent
from eventstore.core.parsing import Delivery, parse_sqs_body
from eventstore.errors import ConfigurationError, MalformedMessageError
from eventstore.progress import Progress
from eventstore.replay.base import ReplaySummary, source_errors
from eventstore.store.base import EventLog

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = logging.getLogger(__name__)

MAX_BATCH = 10  # SQS's limit for ReceiveMessage and DeleteMessageBatch


@dataclass(frozen=True, slots=True)
class _Received:
    message_id: str
    receipt_handle: str
    body: str


def drain_queue(
    log: EventLog,
    sqs_client: "SQSClient",
    queue_url: str,
    *,
    batch: int = MAX_BATCH,
    visibility_timeout: int = 60,
    wait_seconds: int = 1,
    max_empty_receives: int = 2,
    correlation_id: str | None = None,
    progress: Progress | None = None,
) -> ReplaySummary:
    """Receive until the queue stays empty, storing what parses and deleting what was stored.

    Each message is parsed alone (Lambda's batch semantics play no part here). The good
    messages of one receive are appended in one transaction and deleted only after it
    commits; a message whose events were all in the log already counts as stored. A message
    that fails is reported (message id and reason), not deleted, and made visible again when
    the drain ends so that it waits in the queue for whoever looks next. The drain stops
    after `max_empty_receives` receives in a row bring nothing new (a failed message coming
    back after its visibility timeout is nothing new). A database error stops the drain and
    is raised; the messages of that receive stay in the queue.
    """
    if not 1 <= batch <= MAX_BATCH:
        raise ConfigurationError(f"batch must be 1 to {MAX_BATCH}, not {batch}")
    summary = ReplaySummary("sqs", deleted=0)
    correlation = correlation_id or f"replay:sqs:{queue_url}"
    failed: dict[str, str] = {}  # message id -> latest receipt handle
    empty = 0
    with source_errors(f"draining {queue_url}"):
        try:
            while empty < max_empty_receives:
                response = sqs_client.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=batch,
                    VisibilityTimeout=visibility_timeout,
                    WaitTimeSeconds=wait_seconds,
                    MessageSystemAttributeNames=["All"],
                )
                received = [_received(m) for m in response.get("Messages", [])]
                for message in received:
                    if message.message_id in failed:
                        failed[message.message_id] = message.receipt_handle
                fresh = [m for m in received if m.message_id not in failed]
                if not fresh:
                    empty += 1
                    continue
                empty = 0
                _store_and_delete(
                    log,
                    sqs_client,
                    queue_url,
                    fresh,
                    summary=summary,
                    failed=failed,
                    correlation_id=correlation,
                )
                if progress is not None:
                    progress.advance(len(fresh))
        finally:
            _release(sqs_client, queue_url, failed)
    return summary


def _received(message: "MessageTypeDef") -> _Received:
    return _Received(
        message_id=message.get("MessageId", ""),
        receipt_handle=message.get("ReceiptHandle", ""),
        body=message.get("Body", ""),
    )


def _store_and_delete(
    log: EventLog,
    sqs_client: "SQSClient",
    queue_url: str,
    messages: list[_Received],
    *,
    summary: ReplaySummary,
    failed: dict[str, str],
    correlation_id: str,
) -> None:
    summary.read += len(messages)
    good: list[tuple[_Received, Delivery]] = []
    for message in messages:
        try:
            delivery = parse_sqs_body(message.body, message_id=message.message_id)
        except MalformedMessageError as error:
            summary.fail(message.message_id, error.reason)
            failed[message.message_id] = message.receipt_handle
            continue
        summary.received += delivery.received
        summary.skipped += delivery.skipped
        good.append((message, delivery))
    events: list[NewEvent] = [event for _, delivery in good for event in delivery.events]
    if events:
        result = log.append(events, correlation_id=correlation_id)  # commits, or raises
        summary.appended += result.appended
        summary.duplicates += result.duplicates
    _delete(sqs_client, queue_url, [message for message, _ in good], summary, failed)


def _delete(
    sqs_client: "SQSClient",
    queue_url: str,
    stored: list[_Received],
    summary: ReplaySummary,
    failed: dict[str, str],
) -> None:
    if not stored:
        return
    by_entry = {str(index): message for index, message in enumerate(stored)}
    response = sqs_client.delete_message_batch(
        QueueUrl=queue_url,
        Entries=[
            {"Id": entry_id, "ReceiptHandle": message.receipt_handle}
            for entry_id, message in by_entry.items()
        ],
    )
    summary.deleted = (summary.deleted or 0) + len(response.get("Successful", []))
    for failure in response.get("Failed", []):
        message = by_entry[failure["Id"]]
        # Stored, so a later drain meets it as a duplicate; still, it is left in the queue.
        reason = failure.get("Message") or failure.get("Code", "unknown error")
        summary.fail(message.message_id, f"stored, but not deleted from the queue: {reason}")
        failed[message.message_id] = message.receipt_handle


def _release(sqs_client: "SQSClient", queue_url: str, failed: dict[str, str]) -> None:
    """Make the failed messages visible again at once, rather than after the timeout."""
    handles = list(failed.items())
    for start in range(0, len(handles), MAX_BATCH):
        chunk = handles[start : start + MAX_BATCH]
        try:
            response = sqs_client.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for index, (_, handle) in enumerate(chunk)
                ],
            )
        except (BotoCoreError, ClientError) as error:
            # Not a loss: the messages are still in the queue and reappear after the timeout.
            logger.warning("could not make failed messages visible again: %s", error)
            continue
        for failure in response.get("Failed", []):
            logger.warning(
                "could not make message %s visible again: %s",
                chunk[int(failure["Id"])][0],
                failure.get("Message") or failure.get("Code"),
            )
