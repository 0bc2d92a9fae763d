"""The figures an operator watches: the head of the log, ingest lag, each projection's lag
in events and seconds, reactor failures, dead-letter queue depths, the last `verify` run;
and whether any of them needs attention. `eventstore status` prints them; the consumers'
metrics reuse the projection lags."""

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from eventstore.core.events import Source
from eventstore.store.schema import events, verify_runs

if TYPE_CHECKING:
    from eventstore.core.hashing import VerifyResult
    from eventstore.reactors.base import Reactor
    from eventstore.reactors.status import ReactorStatus
    from eventstore.wiring import EventStore

DLQ_URLS_VARIABLE = "EVENTSTORE_DLQ_URLS"
# Projection states that need a person (`behind`, `new`, `rebuilding` catch up by themselves).
ATTENTION_STATES = frozenset({"failed", "cut-off"})


@dataclass(frozen=True, slots=True)
class ProjectionLag:
    name: str
    state: str
    events: int
    # How long the oldest event the projection has not folded has been in the log (0 when
    # caught up): a slow projection shows here even when few events are waiting.
    seconds: float
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Head:
    position: int
    recorded_at: datetime | None  # when the newest event was stored
    newest_s3_event_time: datetime | None  # the newest S3 event time (reactor outcomes aside)


@dataclass(frozen=True, slots=True)
class VerifyRun:
    checked_at: datetime
    ok: bool
    checked: int
    head_position: int | None
    head_hash: str | None
    anchor: str | None
    first_bad_position: int | None
    reason: str | None

    @property
    def head_anchor(self) -> str | None:
        """The anchor this run produced (POSITION:HASH), to keep or compare."""
        if self.head_position is None or self.head_hash is None:
            return None
        return f"{self.head_position}:{self.head_hash}"


@dataclass(frozen=True, slots=True)
class QueueDepth:
    url: str
    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


@dataclass(slots=True)
class Health:
    now: datetime
    head: Head
    projections: list[ProjectionLag]
    reactors: list["ReactorStatus"]
    queues: list[QueueDepth]
    last_verify: VerifyRun | None
    last_passed: VerifyRun | None
    problems: list[str] = field(default_factory=list)

    @property
    def ingest_lag_seconds(self) -> float | None:
        if self.head.newest_s3_event_time is None:
            return None
        return max(0.0, (self.now - self.head.newest_s3_event_time).total_seconds())

    @property
    def ok(self) -> bool:
        return not self.problems


def projection_lags(event_store: "EventStore", now: datetime | None = None) -> list[ProjectionLag]:
    """Every projection's lag; one query for the status, one for the waiting events' times."""
    statuses = event_store.runner.status()
    at = now or datetime.now(UTC)
    # The first event each lagging projection has still to fold.
    firsts = {s.name: s.head - s.lag + 1 for s in statuses if s.lag > 0}
    recorded: dict[int, datetime] = {}
    if firsts:
        with event_store.log.engine.connect() as connection:
            rows = connection.execute(
                sa.select(events.c.position, events.c.recorded_at).where(
                    events.c.position.in_(sorted(set(firsts.values())))
                )
            )
            recorded = {row.position: row.recorded_at for row in rows}
    lags = []
    for s in statuses:
        since = recorded.get(firsts.get(s.name, -1))
        seconds = max(0.0, (at - since).total_seconds()) if since is not None else 0.0
        lags.append(ProjectionLag(s.name, s.state, s.lag, seconds, s.last_error))
    return lags


def head_of(connection: Connection) -> Head:
    last = connection.execute(
        sa.select(events.c.position, events.c.recorded_at)
        .order_by(events.c.position.desc())
        .limit(1)
    ).first()
    # The event_time index read backwards, stopping at the first S3 event.
    newest = connection.execute(
        sa.select(events.c.event_time)
        .where(events.c.source != str(Source.REACTOR))
        .order_by(events.c.event_time.desc())
        .limit(1)
    ).scalar()
    if last is None:
        return Head(0, None, None)
    return Head(int(last.position), last.recorded_at, newest)


def record_verify(
    engine: Engine, result: "VerifyResult", *, ok: bool, anchor: str | None, reason: str | None
) -> None:
    """Keep one `verify` run's result (see schema.verify_runs)."""
    with engine.begin() as connection:
        connection.execute(
            verify_runs.insert().values(
                checked_at=datetime.now(UTC),
                ok=ok,
                checked=result.checked,
                head_position=result.head_position,
                head_hash=result.head_hash,
                anchor=anchor,
                first_bad_position=result.first_bad_position,
                reason=reason,
            )
        )


def _verify_run(connection: Connection, *, passed: bool) -> VerifyRun | None:
    statement = sa.select(verify_runs).order_by(verify_runs.c.id.desc()).limit(1)
    if passed:
        statement = statement.where(verify_runs.c.ok.is_(True))
    row = connection.execute(statement).first()
    if row is None:
        return None
    return VerifyRun(
        row.checked_at, bool(row.ok), int(row.checked), row.head_position, row.head_hash,
        row.anchor, row.first_bad_position, row.reason,
    )  # fmt: skip


def dlq_urls(given: Sequence[str]) -> list[str]:
    """--dlq URLs, else $EVENTSTORE_DLQ_URLS (comma-separated)."""
    if given:
        return list(given)
    return [u.strip() for u in os.environ.get(DLQ_URLS_VARIABLE, "").split(",") if u.strip()]


def queue_depths(urls: Sequence[str], sqs: Any) -> list[QueueDepth]:
    """Approximate message counts of each queue (SQS GetQueueAttributes)."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    depths = []
    for url in urls:
        found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        visible, in_flight, delayed = (int(found.get(n, 0)) for n in names)
        depths.append(QueueDepth(url, visible, in_flight, delayed))
    return depths


def gather(
    event_store: "EventStore",
    reactors: Sequence["Reactor"],
    queues: Callable[[], list[QueueDepth]] | None = None,
    now: datetime | None = None,
) -> Health:
    """Everything `eventstore status` shows, and what needs attention."""
    from eventstore.reactors.status import reactor_status

    at = now or datetime.now(UTC)
    lags = projection_lags(event_store, at)
    with event_store.log.engine.connect() as connection:
        head = head_of(connection)
        reactor_figures = [reactor_status(connection, r) for r in reactors]
        last_verify = _verify_run(connection, passed=False)
        last_passed = _verify_run(connection, passed=True)
    depths = queues() if queues is not None else []
    health = Health(at, head, lags, reactor_figures, depths, last_verify, last_passed)
    for lag in lags:
        if lag.state in ATTENTION_STATES:
            health.problems.append(f"projection {lag.name} is {lag.state}")
    for figures in reactor_figures:
        if figures.failing:
            health.problems.append(
                f"reactor {figures.reactor} is failing on {figures.failing_events} events"
            )
    for depth in depths:
        if depth.total:
            health.problems.append(f"dead-letter queue {depth.url} holds {depth.total} messages")
    if last_verify is None:
        health.problems.append("verify has never run on this log")
    elif not last_verify.ok:
        health.problems.append(
            f"the last verify failed (at position {last_verify.first_bad_position})"
        )
    return health
