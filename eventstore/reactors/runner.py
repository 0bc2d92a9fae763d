"""Running a reactor over S3 events and recording what came of each, in the log.

The same steps serve the Lambda handler (one SQS batch) and `reactors run --from log` (the
history): pick the events the reactor wants and has not processed (its `Reactor:Processed`
outcome is not in the log), react to each with a ReactorIO over the given object store and
message sender, and append the outcome events. A reactor that raises fails only that event;
the failure is recorded as an outcome and reported to the caller, never swallowed.
"""

import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from eventstore.core.events import NewEvent
from eventstore.reactors import outcomes
from eventstore.reactors.base import MessageSender, ObjectStore, Reactor, ReactorIO
from eventstore.store.base import AppendResult

logger = logging.getLogger(__name__)


class OutcomeLog(Protocol):
    """What the runner needs of the log."""

    def append(
        self, events: Sequence[NewEvent], *, correlation_id: str | None = None
    ) -> AppendResult: ...

    def known_ids(self, event_ids: Collection[str]) -> set[str]: ...


@dataclass(frozen=True, slots=True)
class Reaction:
    """What one event came to: its outcome events, and the reason when it failed."""

    cause: NewEvent
    outcomes: tuple[NewEvent, ...]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _now() -> datetime:
    return datetime.now(UTC)


class ReactorRunner:
    """One reactor, its ports and the log its outcomes go to."""

    def __init__(
        self,
        reactor: Reactor,
        log: OutcomeLog,
        objects: ObjectStore,
        messages: MessageSender,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.reactor = reactor
        self.log = log
        self.objects = objects
        self.messages = messages
        self._clock = clock

    def processed_id(self, cause: NewEvent) -> str:
        return outcomes.processed_id(self.reactor.name, self.reactor.version, cause.event_id)

    def unprocessed(self, causes: Iterable[NewEvent]) -> list[NewEvent]:
        """The events among `causes` that the reactor wants and this version of it has not
        processed yet, in the given order, each once."""
        wanted: dict[str, NewEvent] = {}
        for cause in causes:
            if self.reactor.wants.matches(cause) and cause.event_id not in wanted:
                wanted[cause.event_id] = cause
        ids = {self.processed_id(cause): cause.event_id for cause in wanted.values()}
        for done in self.log.known_ids(ids):
            del wanted[ids[done]]
        return list(wanted.values())

    def react(
        self, cause: NewEvent, *, delivery: str, attempt: int, request_id: str | None = None
    ) -> Reaction:
        """Run the reactor on one event; never raises for what the reactor raised."""
        reactor = self.reactor
        io = ReactorIO(reactor.name, cause, self.objects, self.messages)
        started = time.perf_counter()
        try:
            reactor.react(cause, io)
        except Exception as error:  # recorded as an outcome and failed to the caller
            reason = f"{type(error).__name__}: {error}"
            logger.warning(
                "reactor %s failed on %s (attempt %d): %s",
                reactor.name, cause.stream, attempt, reason,
                exc_info=not _expected(error),
            )  # fmt: skip
            duration = (time.perf_counter() - started) * 1000
            failure = outcomes.failed(
                reactor.name, reactor.version, cause, at=self._clock(), reason=reason,
                delivery=delivery, attempt=attempt, duration_ms=duration, request_id=request_id,
                partial=io.outputs,
            )  # fmt: skip
            return Reaction(cause, (failure,), reason)
        duration = (time.perf_counter() - started) * 1000
        events = outcomes.succeeded(
            reactor.name, reactor.version, cause, at=self._clock(), duration_ms=duration,
            outputs=io.outputs, sent=io.sent, details=io.details,
            output_details=io.output_details, request_id=request_id,
        )  # fmt: skip
        return Reaction(cause, tuple(events))

    def record(
        self,
        reactions: Iterable[Reaction],
        *,
        received: Sequence[NewEvent] = (),
        correlation_id: str | None = None,
    ) -> AppendResult:
        """Append the S3 events `received` (those already in the log count as duplicates),
        then the outcome events of `reactions`, in one transaction: one commit per batch."""
        events = [*received, *(event for reaction in reactions for event in reaction.outcomes)]
        return self.log.append(events, correlation_id=correlation_id)


def _expected(error: Exception) -> bool:
    from eventstore.reactors.base import ReactorError

    return isinstance(error, ReactorError)
