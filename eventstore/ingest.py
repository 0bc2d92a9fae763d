"""Ingestion: envelopes in, events appended, a summary out. Shared by the CLI, the Lambda
consumer and the replay sources, so every path applies the same parsing and projections."""

from collections.abc import Iterable
from dataclasses import dataclass, field

from eventstore.core.events import NewEvent, StoredEvent
from eventstore.core.parsing import Delivery, Envelope, parse_envelope
from eventstore.errors import MalformedMessageError
from eventstore.store.base import EventLog

BATCH_EVENTS = 1000  # events per transaction when ingesting a long stream


@dataclass(slots=True)
class IngestSummary:
    """Counts of S3 event records (received, appended, duplicates, of those the conflicts,
    skipped) and failed messages."""

    received: int = 0
    appended: int = 0
    duplicates: int = 0
    conflicts: int = 0  # duplicates whose size or etag differ from the stored event's
    skipped: int = 0
    failed: int = 0
    last_position: int | None = None  # of the newest event stored, if any
    # What the last transaction stored (at most BATCH_EVENTS): projections can fold these
    # without reading them back.
    last_stored: tuple[StoredEvent, ...] = ()
    failures: list[MalformedMessageError] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "received": self.received,
            "appended": self.appended,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "skipped": self.skipped,
            "failed": self.failed,
        }

    def add_delivery(self, delivery: Delivery) -> None:
        self.received += delivery.received
        self.skipped += delivery.skipped

    def add_failure(self, error: MalformedMessageError) -> None:
        self.failed += 1
        self.failures.append(error)


def parse_all(envelopes: Iterable[Envelope], summary: IngestSummary) -> list[Delivery]:
    """Parse every envelope; the malformed ones are counted as failed and left out."""
    deliveries: list[Delivery] = []
    for envelope in envelopes:
        try:
            delivery = parse_envelope(envelope)
        except MalformedMessageError as error:
            summary.add_failure(error)
            continue
        summary.add_delivery(delivery)
        deliveries.append(delivery)
    return deliveries


def append_deliveries(
    log: EventLog,
    deliveries: Iterable[Delivery],
    summary: IngestSummary,
    *,
    correlation_id: str | None = None,
) -> None:
    """Append the deliveries' events, BATCH_EVENTS per transaction."""
    pending: list[NewEvent] = []
    for delivery in deliveries:
        pending.extend(delivery.events)
        if len(pending) >= BATCH_EVENTS:
            _flush(log, pending, summary, correlation_id)
            pending = []
    if pending:
        _flush(log, pending, summary, correlation_id)


def _flush(
    log: EventLog, pending: list[NewEvent], summary: IngestSummary, correlation_id: str | None
) -> None:
    result = log.append(pending, correlation_id=correlation_id)
    summary.appended += result.appended
    summary.duplicates += result.duplicates
    summary.conflicts += result.conflicts
    if result.stored:
        summary.last_position = result.stored[-1].position
        summary.last_stored = result.stored


def ingest_envelopes(
    log: EventLog, envelopes: Iterable[Envelope], *, correlation_id: str | None = None
) -> IngestSummary:
    summary = IngestSummary()
    deliveries = parse_all(envelopes, summary)
    append_deliveries(log, deliveries, summary, correlation_id=correlation_id)
    return summary
