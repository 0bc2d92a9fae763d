"""The ingest consumer: an SQS batch of S3 notifications → one append → partial batch response.

Each message is parsed alone; a malformed one is logged with its id and reason and named in
`batchItemFailures`, so SQS retries it and finally dead-letters it. The parsed rest of the
batch is appended in one transaction; if that fails the invocation raises, nothing is
half-stored, and SQS delivers the whole batch again. Then projections catch up for part of
the remaining time; their failures are recorded on their checkpoints, not on the batch.
"""

import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from consumers import runtime
from eventstore.core.parsing import Delivery, parse_sqs_body
from eventstore.errors import MalformedEventError, MalformedMessageError
from eventstore.ingest import IngestSummary, append_deliveries

if TYPE_CHECKING:
    from eventstore.wiring import EventStore

logger = Logger(service=runtime.service_name())
metrics = Metrics(namespace=runtime.metrics_namespace(), service=runtime.service_name())


def _parse(record: SQSRecord) -> Delivery:
    try:
        return parse_sqs_body(record.body, message_id=record.message_id)
    except MalformedMessageError as error:
        logger.error(
            "message rejected",
            extra={"message_id": record.message_id, "reason": error.reason},
        )
        raise


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
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
    for name, value in summary.as_dict().items():
        metrics.add_metric(name=f"Events{name.capitalize()}", unit=MetricUnit.Count, value=value)
    _catch_up(event_store, context, summary.last_position)
    return dict(processor.response())


def _sqs_records(event: Any) -> list[dict[str, Any]]:
    """The batch's records, or a clear error when the event is no SQS batch: a record with
    no `messageId` cannot be named in `batchItemFailures`, so the invocation fails whole."""
    records = event.get("Records") if isinstance(event, dict) else None
    if records is None:
        return []
    if not isinstance(records, list):
        raise _rejected_event(f"'Records' is a {type(records).__name__}, not a list")
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("messageId"), str):
            raise _rejected_event(f"record {index} has no messageId")
        if not isinstance(record.get("body"), str):
            raise _rejected_event(f"message {record['messageId']} has no body")
    return records


def _rejected_event(reason: str) -> MalformedEventError:
    logger.error("invocation event rejected", extra={"reason": reason})
    return MalformedEventError(f"not an SQS batch event: {reason}")


def _catch_up(event_store: "EventStore", context: LambdaContext, head: int | None) -> None:
    budget = runtime.catch_up_seconds(context.get_remaining_time_in_millis())
    if budget <= 0:
        return  # no time left in this invocation: a later one catches up
    min_lag, max_delay = runtime.catch_up_thresholds()
    reports = event_store.runner.catch_up(
        deadline=time.monotonic() + budget, min_lag=min_lag, max_delay=max_delay, head=head
    )
    for report in reports:
        if report.error:
            logger.error(
                "projection failed", extra={"projection": report.name, "error": report.error}
            )
            metrics.add_metric(name="ProjectionFailures", unit=MetricUnit.Count, value=1)
