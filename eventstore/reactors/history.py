"""Running a reactor over the log's history (`reactors run NAME --from log`): after a bug
fix (a new version processes every event again), or for a new reactor that should back-fill.

The log's S3 events that the reactor wants and the options allow are streamed in position
order and handled a chunk at a time: the events of a chunk that this version has processed
already (its Processed outcome is in the log) are skipped, the others reacted to, and the
chunk's outcomes appended before the next chunk is read. An interrupted run therefore
continues where it stopped, and a finished one has nothing left to do.
"""

import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import sqlalchemy as sa

from eventstore.core.events import Source, StoredEvent
from eventstore.progress import Progress
from eventstore.projections.reactor_outcomes import reactor_outcomes
from eventstore.reactors.base import Reactor
from eventstore.reactors.outcomes import OutcomeKind, processed_id
from eventstore.reactors.runner import Reaction, ReactorRunner
from eventstore.reactors.status import RUN_REQUEST_PREFIX
from eventstore.store.base import EventQuery
from eventstore.store.sql import SqlEventStore

DEFAULT_CHUNK = 100  # events read from the log per chunk; a chunk's outcomes are one append


def new_run_id(now: datetime | None = None) -> str:
    """A run's id: the delivery of its failed attempts and the request id of its outcomes."""
    when = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{RUN_REQUEST_PREFIX}{when}-{uuid.uuid4().hex[:8]}"


def history_query(
    reactor: Reactor,
    *,
    bucket: str | None = None,
    prefix: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    types: tuple[str, ...] = (),
) -> EventQuery | None:
    """The log query that narrows the options and the reactor's filter to what both allow
    (the suffixes, and event names when --type is given, are checked on each event); None
    when the two prefixes exclude each other."""
    own = reactor.wants.prefix
    chosen = prefix or ""
    if chosen.startswith(own):
        narrowest = chosen
    elif own.startswith(chosen):
        narrowest = own
    else:
        return None
    return EventQuery(
        bucket=bucket, prefix=narrowest or None, since=since, until=until,
        types=types or reactor.wants.event_names,
    )  # fmt: skip


def considered_events(
    reactor: Reactor, log: SqlEventStore, query: EventQuery, *, page: int = DEFAULT_CHUNK
) -> Iterator[list[StoredEvent]]:
    """The S3 events (no outcomes) of the log that the query and the reactor both want, in
    position order, a page of the query at a time. Each page is read whole before it is
    handed on, so no connection is held while the caller writes (PostgreSQL engines have
    one connection)."""
    after = 0
    while True:
        rows = list(log.iter_events(replace(query, limit=page), after=after))
        if not rows:
            return
        after = rows[-1].position
        yield [
            s
            for s in rows
            if s.event.source is not Source.REACTOR and reactor.wants.matches(s.event)
        ]
        if len(rows) < page:
            return


@dataclass
class RunSummary:
    reactor: str
    version: int
    run_id: str
    dry_run: bool = False
    considered: int = 0
    already_processed: int = 0
    processed: int = 0
    failed: int = 0
    produced: int = 0

    def as_dict(self) -> dict[str, object]:
        report: dict[str, object] = {
            "reactor": self.reactor,
            "version": self.version,
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "considered": self.considered,
            "already_processed": self.already_processed,
        }
        if self.dry_run:
            report["would_process"] = self.processed
        else:
            report.update(processed=self.processed, failed=self.failed, produced=self.produced)
        return report

    def describe(self) -> str:
        done = f"{self.already_processed} already processed"
        if self.dry_run:
            return f"{done}, {self.processed} to process (dry run: nothing done)"
        return f"{done}, {self.processed} processed, {self.failed} failed"


def failures_recorded(
    log: SqlEventStore, reactor: str, version: int, cause_ids: Collection[str]
) -> dict[str, int]:
    """Failed attempts the reactor_outcomes projection holds per cause, for one version."""
    o = reactor_outcomes
    found: dict[str, int] = {}
    wanted = sorted(set(cause_ids))
    if not wanted:
        return found
    with log.engine.connect() as connection:
        if not sa.inspect(connection).has_table(o.name):
            return found
        for start in range(0, len(wanted), 400):
            rows = connection.execute(
                sa.select(o.c.cause_event_id, sa.func.count().label("n"))
                .where(
                    o.c.reactor == reactor,
                    o.c.reactor_version == version,
                    o.c.kind == str(OutcomeKind.FAILED),
                    o.c.cause_event_id.in_(wanted[start : start + 400]),
                )
                .group_by(o.c.cause_event_id)
            )
            found.update((row.cause_event_id, int(row.n)) for row in rows)
    return found


def run_from_log(
    runner: ReactorRunner,
    log: SqlEventStore,
    query: EventQuery,
    *,
    run_id: str,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
    on_failure: Callable[[Reaction], None] | None = None,
) -> RunSummary:
    """React to every event of the query the runner's reactor wants and has not processed,
    recording each chunk's outcomes before reading on. A failed event is recorded (its
    attempt is one more than the failures the reactor_outcomes projection holds for it)
    and reported to `on_failure`; the run goes on.

    Interrupted (KeyboardInterrupt), it records what the current chunk has done so far and
    re-raises: a second run starts with the first event left."""
    reactor = runner.reactor
    summary = RunSummary(reactor.name, reactor.version, run_id)
    for chunk in considered_events(reactor, log, query, page=chunk_size):
        if not chunk:
            continue
        pending = [s.event for s in _pending(reactor, log, chunk)]
        summary.considered += len(chunk)
        summary.already_processed += len(chunk) - len(pending)
        if progress is not None:
            progress.advance(len(chunk) - len(pending))
        failed_before = failures_recorded(
            log, reactor.name, reactor.version, [e.event_id for e in pending]
        )
        reactions: list[Reaction] = []
        try:
            for cause in pending:
                reaction = runner.react(
                    cause, delivery=run_id, attempt=1 + failed_before.get(cause.event_id, 0),
                    request_id=run_id,
                )  # fmt: skip
                reactions.append(reaction)
                if progress is not None:
                    progress.advance()
        finally:  # interrupted or not, what was done is recorded
            if reactions:
                runner.record(reactions, correlation_id=run_id)
        for reaction in reactions:
            if reaction.ok:
                summary.processed += 1
                summary.produced += sum(
                    1 for e in reaction.outcomes if e.event_name == OutcomeKind.PRODUCED
                )
            else:
                summary.failed += 1
                if on_failure is not None:
                    on_failure(reaction)
    return summary


def dry_run_from_log(
    reactor: Reactor,
    log: SqlEventStore,
    query: EventQuery,
    *,
    summary: RunSummary,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> Iterator[StoredEvent]:
    """The events a run would react to, streamed; counts go to `summary`. Reads only."""
    for chunk in considered_events(reactor, log, query, page=chunk_size):
        pending = _pending(reactor, log, chunk)
        summary.considered += len(chunk)
        summary.already_processed += len(chunk) - len(pending)
        summary.processed += len(pending)
        if progress is not None:
            progress.advance(len(chunk))
        yield from pending


def _pending(reactor: Reactor, log: SqlEventStore, chunk: list[StoredEvent]) -> list[StoredEvent]:
    """The events of `chunk` this version of the reactor has not processed (no Processed
    outcome of it in the log), in order."""
    ids = {processed_id(reactor.name, reactor.version, s.event.event_id): s for s in chunk}
    done = log.known_ids(ids)
    return [s for i, s in ids.items() if i not in done]
