"""The reactor consumer: one handler shape for every reactor, chosen by EVENTSTORE_REACTOR.

An SQS batch (the reactor's own queue, filtered by its SNS subscription) is handled so:

1. parse every message (a malformed one fails alone);
2. react to each event the reactor wants and whose `Reactor:Processed` outcome (for this
   reactor version) is not in the log yet;
3. append the S3 events received (idempotent: the ids the ingest consumer gives them) and
   the outcomes (processed and produced, or failed with its attempt) in one transaction.

A message with a malformed body or an event the reactor failed on is named in
`batchItemFailures`: SQS retries it (the attempt is its ApproximateReceiveCount) and finally
dead-letters it. An event already processed (a redelivery) is not processed again. If the
append fails the invocation raises and SQS delivers the whole batch again: side effects are
at least once, outcomes are recorded once, and outputs already written are written again
under the same keys.
"""

import os
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from consumers import runtime
from consumers.metrics import COUNT, MILLISECONDS, InvocationMetrics, catch_up_measured
from eventstore.core.parsing import Delivery, parse_sqs_record, sqs_records
from eventstore.errors import ConfigurationError, MalformedEventError, MalformedMessageError
from eventstore.reactors.outcomes import OutcomeKind

REACTOR_VARIABLE = "EVENTSTORE_REACTOR"

logger = Logger(service=runtime.service_name())

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def _parse(record: SQSRecord) -> tuple[Delivery, int]:
    try:
        delivery = parse_sqs_record(record.raw_event)
    except MalformedMessageError as error:
        logger.error(
            "message rejected", extra={"message_id": record.message_id, "reason": error.reason}
        )
        raise
    return delivery, int(record.attributes.approximate_receive_count or 1)


def react_to_batch(
    name: str,
    event: dict[str, Any],
    context: LambdaContext,
    metrics: InvocationMetrics | None = None,
) -> dict[str, Any]:
    """Handle one SQS batch for the reactor `name`; the partial batch response. The metrics
    (dimension `reactor`) are this invocation's; without them, one is made and flushed."""
    if metrics is None:
        metrics = InvocationMetrics.start(reactor=name)
        try:
            return react_to_batch(name, event, context, metrics)
        finally:
            metrics.flush()
    try:
        records = sqs_records(event)
    except MalformedMessageError as error:
        logger.error("invocation event rejected", extra={"reason": error.reason})
        raise MalformedEventError(f"not an SQS batch event: {error.reason}") from error
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    with processor(records=records, handler=_parse, lambda_context=context):
        results = processor.process()
    parsed: list[tuple[Delivery, int]] = [r[1] for r in results if r[0] == "success"]
    failures = [str(f["itemIdentifier"]) for f in processor.response()["batchItemFailures"]]

    runner = runtime.reactor_runner(name)
    request_id = getattr(context, "aws_request_id", None)
    causes = [e for delivery, _ in parsed for e in delivery.events]
    pending = {e.event_id for e in runner.unprocessed(causes)}

    reactions = []
    for delivery, attempt in parsed:
        failed = False
        for cause in delivery.events:
            if cause.event_id not in pending:
                continue  # not wanted, processed before, or met earlier in this batch
            pending.discard(cause.event_id)
            started = time.perf_counter()
            reaction = runner.react(
                cause, delivery=delivery.message_id, attempt=attempt, request_id=request_id
            )
            metrics.add("ReactorDuration", MILLISECONDS, (time.perf_counter() - started) * 1000)
            reactions.append(reaction)
            if not reaction.ok:
                failed = True
                logger.error(
                    "reactor failed",
                    extra={
                        "reactor": name, "message_id": delivery.message_id,
                        "stream": cause.stream, "attempt": attempt, "reason": reaction.error,
                    },
                )  # fmt: skip
        if failed:
            failures.append(delivery.message_id)
    recorded = runner.record(reactions, received=causes, correlation_id=request_id)

    ok = sum(1 for r in reactions if r.ok)
    logger.info(
        "batch handled",
        extra={
            "reactor": name, "messages": len(records), "events": len(causes),
            "processed": ok, "failed": len(reactions) - ok, "appended": recorded.appended,
        },
    )  # fmt: skip
    produced = sum(1 for r in reactions for o in r.outcomes if o.event_name == OutcomeKind.PRODUCED)
    metrics.add("ReactorProcessed", COUNT, ok)
    metrics.add("ReactorFailed", COUNT, len(reactions) - ok)
    metrics.add("ReactorProduced", COUNT, produced)
    head = recorded.stored[-1].position if recorded.stored else None
    catch_up_measured(
        runtime.event_store(), context, head, metrics, logger, appended=recorded.stored
    )
    return {"batchItemFailures": [{"itemIdentifier": m} for m in dict.fromkeys(failures)]}


def handler_for(name: str) -> Handler:
    """The Lambda handler of reactor `name` (the local poller runs several in one process)."""

    @logger.inject_lambda_context(clear_state=True)
    def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return react_to_batch(name, event, context)

    return handle


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The handler every reactor function points at; $EVENTSTORE_REACTOR names the reactor."""
    name = os.environ.get(REACTOR_VARIABLE)
    if not name:
        raise ConfigurationError(f"{REACTOR_VARIABLE} is not set: which reactor is this?")
    return react_to_batch(name, event, context)
