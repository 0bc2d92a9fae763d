"""The ingest consumer: an SQS batch of S3 notifications → one append → partial batch response.

Each message is parsed alone; a malformed one is logged with its id and reason and named in
`batchItemFailures`, so SQS retries it and finally dead-letters it. The parsed rest of the
batch is appended in one transaction; if that fails the invocation raises, nothing is
half-stored, and SQS delivers the whole batch again. Then projections catch up for part of
the remaining time; their failures are recorded on their checkpoints, not on the batch.
"""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from consumers import runtime
from consumers.metrics import COUNT, InvocationMetrics, catch_up_measured, with_metrics
from eventstore.core.parsing import Delivery, parse_sqs_record, sqs_records
from eventstore.errors import MalformedEventError, MalformedMessageError
from eventstore.ingest import IngestSummary, append_deliveries

logger = Logger(service=runtime.service_name())


def _parse(record: SQSRecord) -> Delivery:
    try:
        return parse_sqs_record(record.raw_event)
    except MalformedMessageError as error:
        logger.error(
            "message rejected",
            extra={"message_id": record.message_id, "reason": error.reason},
        )
        raise


@logger.inject_lambda_context(clear_state=True)
@with_metrics()
def handler(
    event: dict[str, Any], context: LambdaContext, metrics: InvocationMetrics
) -> dict[str, Any]:
    # A batch of only malformed messages is still answered with batchItemFailures (not an
    # invocation error), so it is retried and dead-lettered like any other malformed message.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    records = _sqs_records(event)
    with processor(records=records, handler=_parse, lambda_context=context):
        results = processor.process()
    summary = IngestSummary(failed=len(processor.fail_messages))
    deliveries: list[Delivery] = [r[1] for r in results if r[0] == "success"]
    for delivery in deliveries:
        summary.add_delivery(delivery)
    event_store = runtime.event_store()
    append_deliveries(
        event_store.log,
        deliveries,
        summary,
        correlation_id=getattr(context, "aws_request_id", None),
    )
    logger.info("batch stored", extra=summary.as_dict())
    # Counted only once the batch is stored: an append that raises fails the invocation,
    # and SQS delivers the whole batch again.
    for name, value in summary.as_dict().items():
        metrics.add(f"Events{name.capitalize()}", COUNT, value)
    metrics.ingest_lag(e for d in deliveries for e in d.events)
    catch_up_measured(
        event_store, context, summary.last_position, metrics, logger, appended=summary.last_stored
    )
    return dict(processor.response())


def _sqs_records(event: Any) -> list[dict[str, Any]]:
    """The batch's records; an event that is no SQS batch fails the invocation whole (a
    record with no messageId cannot be named in batchItemFailures)."""
    try:
        return sqs_records(event)
    except MalformedMessageError as error:
        logger.error("invocation event rejected", extra={"reason": error.reason})
        raise MalformedEventError(f"not an SQS batch event: {error.reason}") from error
