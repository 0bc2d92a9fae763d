"""The archive consumer: every SQS message body, verbatim, to the archive bucket, so the log can
be rebuilt from S3 even if the database is lost (`eventstore replay --from archive`).

Key layout (the replay reads it; keep it exactly this):

    {ARCHIVE_PREFIX}{YYYY}/{MM}/{DD}/{HH}/{messageId}.json

- ARCHIVE_PREFIX: environment variable, default ``raw/`` (empty, or ending in ``/``);
- YYYY/MM/DD/HH: the UTC date and hour of the message's SentTimestamp (when SQS accepted it),
  zero-padded;
- messageId: the SQS message id, so a redelivered message overwrites its own object;
- the object's body is the message body exactly as received (with raw message delivery, the S3
  notification itself; otherwise the SNS envelope around it), Content-Type application/json;
- object metadata: ``source-queue-arn`` (the eventSourceARN), ``sent-timestamp`` (milliseconds
  since the epoch, as SQS gives it) and ``message-id``.

The bucket comes from ARCHIVE_BUCKET. A message that cannot be written fails alone and is
retried by SQS, then dead-lettered.
"""

import os
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from consumers import runtime

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

DEFAULT_PREFIX = "raw/"

logger = Logger(service=runtime.service_name("s3-eventstore-archive"))

_clients: dict[tuple[str | None, str | None, str | None], "S3Client"] = {}
_clients_lock = threading.Lock()


def archive_key(message_id: str, sent_timestamp_ms: int, prefix: str = DEFAULT_PREFIX) -> str:
    """Where the archive keeps one message: {prefix}{YYYY}/{MM}/{DD}/{HH}/{messageId}.json."""
    sent = datetime.fromtimestamp(sent_timestamp_ms / 1000, tz=UTC)
    return f"{prefix}{sent:%Y/%m/%d/%H}/{message_id}.json"


def _s3() -> "S3Client":
    """One client per container, created on first use; a changed endpoint or region (tests, the
    local demo) gets its own."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    key = (region, endpoint, os.environ.get("AWS_ACCESS_KEY_ID"))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = boto3.session.Session().client("s3", region_name=region)
            _clients[key] = client
        return client


def _archive(record: SQSRecord) -> None:
    bucket = os.environ.get("ARCHIVE_BUCKET")
    if not bucket:
        raise RuntimeError("ARCHIVE_BUCKET is not set")
    prefix = os.environ.get("ARCHIVE_PREFIX", DEFAULT_PREFIX)
    sent = record.attributes.sent_timestamp
    if not sent:
        raise ValueError(f"message {record.message_id} has no SentTimestamp")
    key = archive_key(record.message_id, int(sent), prefix)
    _s3().put_object(
        Bucket=bucket,
        Key=key,
        Body=record.body.encode("utf-8"),
        ContentType="application/json",
        Metadata={
            "source-queue-arn": record.event_source_arn,
            "sent-timestamp": str(sent),
            "message-id": record.message_id,
        },
    )
    logger.debug("archived", extra={"message_id": record.message_id, "key": key})


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # A processor per invocation: it holds the batch's results, and the local poller runs
    # several invocations of this module at once in one process.
    processor = BatchProcessor(event_type=EventType.SQS)
    response = process_partial_response(
        event=event, record_handler=_archive, processor=processor, context=context
    )
    return dict(response)
