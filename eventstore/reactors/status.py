"""Per reactor: what it did (processed, produced, failed), what it has still to do (the S3
events it wants that its current version has not processed) and how long live processing
takes (S3 event time to the processed outcome, p50 and p95).

Outcome figures come from the `reactor_outcomes` projection, the wanted events from the log.
Latency leaves out the outcomes of `reactors run --from log`: their latency is the age of
the history they went over, not how fast the reactor keeps up.
"""

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from eventstore.core.events import Source
from eventstore.projections.reactor_outcomes import reactor_outcomes
from eventstore.reactors.base import EventFilter, Reactor
from eventstore.reactors.outcomes import OutcomeKind
from eventstore.store import base
from eventstore.store.base import prefix_upper_bound
from eventstore.store.schema import events

# The request id of every outcome a `reactors run` records starts with this.
RUN_REQUEST_PREFIX = "reactors-run:"

PROCESSED, PRODUCED, FAILED = (str(k) for k in OutcomeKind)


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An S3 event a reactor wants and has not processed."""

    position: int
    bucket: str
    key: str
    event_name: str
    event_time: datetime


@dataclass(frozen=True, slots=True)
class ReactorStatus:
    reactor: str
    version: int  # the version in this code; `unprocessed` counts against it
    processed: int  # Processed outcomes, every version
    produced: int
    failed_attempts: int
    failing_events: int  # events whose latest outcome (processed or failed) is a failure
    last_error: str | None
    last_error_at: datetime | None
    unprocessed: int
    oldest_unprocessed: PendingEvent | None
    latency_samples: int
    latency_p50_s: float | None
    latency_p95_s: float | None

    @property
    def failing(self) -> bool:
        return self.failing_events > 0


def nearest_rank(ordered: Sequence[float], percent: float) -> float:
    """The exact `percent` percentile of sorted values by the nearest-rank method: the
    smallest value with at least `percent`% of the values at or below it."""
    if not ordered:
        raise ValueError("no values")
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def wanted_conditions(wants: EventFilter) -> list[Any]:
    """The filter as conditions on the log's columns (S3 events only)."""
    key = events.c.key
    conditions: list[Any] = [events.c.source != str(Source.REACTOR)]
    names: list[Any] = []
    for pattern in wants.event_names:
        name = pattern[3:] if pattern.startswith("s3:") else pattern
        if name == "*":
            names = []
            break
        if name.endswith("*"):
            names.append(events.c.event_name.startswith(name[:-1], autoescape=True))
        else:
            names.append(events.c.event_name == name)
    if names:
        conditions.append(sa.or_(*names))
    if wants.prefix:
        conditions.append(key >= wants.prefix)
        upper = prefix_upper_bound(wants.prefix)
        if upper is not None:
            conditions.append(key < upper)
    if wants.suffixes:
        conditions.append(sa.or_(*(key.endswith(s, autoescape=True) for s in wants.suffixes)))
    return conditions


def reactor_status(connection: Connection, reactor: Reactor) -> ReactorStatus:
    """The figures of one reactor, read through `connection`."""
    o = reactor_outcomes
    has_outcomes = sa.inspect(connection).has_table(o.name)
    name = reactor.name
    counts: dict[str, int] = {}
    failing = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    if has_outcomes:
        counts = {
            row.kind: int(row.n)
            for row in connection.execute(
                sa.select(o.c.kind, sa.func.count().label("n"))
                .where(o.c.reactor == name)
                .group_by(o.c.kind)
            )
        }
        failing = _failing_events(connection, name)
        last = connection.execute(
            sa.select(o.c.reason, o.c.at)
            .where(o.c.reactor == name, o.c.kind == FAILED)
            .order_by(o.c.position.desc())
            .limit(1)
        ).first()
        if last is not None:
            last_error, last_error_at = last.reason, last.at
    unprocessed, oldest = _unprocessed(connection, reactor, has_outcomes=has_outcomes)
    latencies = _latencies(connection, name) if has_outcomes else array("d")
    return ReactorStatus(
        reactor=name, version=reactor.version, processed=counts.get(PROCESSED, 0),
        produced=counts.get(PRODUCED, 0), failed_attempts=counts.get(FAILED, 0),
        failing_events=failing, last_error=last_error, last_error_at=last_error_at,
        unprocessed=unprocessed, oldest_unprocessed=oldest, latency_samples=len(latencies),
        latency_p50_s=nearest_rank(latencies, 50) if latencies else None,
        latency_p95_s=nearest_rank(latencies, 95) if latencies else None,
    )  # fmt: skip


def reactor_statuses(engine: Engine, reactors: Sequence[Reactor]) -> list[ReactorStatus]:
    with engine.connect() as connection:
        return [reactor_status(connection, r) for r in reactors]


def _failing_events(connection: Connection, name: str) -> int:
    o = reactor_outcomes
    settled = sa.and_(o.c.reactor == name, o.c.kind.in_((PROCESSED, FAILED)))
    latest = (
        sa.select(sa.func.max(o.c.position).label("position"))
        .where(settled)
        .group_by(o.c.cause_event_id)
        .subquery()
    )
    statement = (
        sa.select(sa.func.count())
        .select_from(o.join(latest, o.c.position == latest.c.position))
        .where(o.c.kind == FAILED)
    )
    return int(connection.execute(statement).scalar() or 0)


def _unprocessed(
    connection: Connection, reactor: Reactor, *, has_outcomes: bool
) -> tuple[int, PendingEvent | None]:
    conditions = wanted_conditions(reactor.wants)
    if has_outcomes:
        o = reactor_outcomes
        done = (
            sa.select(sa.literal(1))
            .where(
                o.c.cause_event_id == events.c.event_id,
                o.c.reactor == reactor.name,
                o.c.reactor_version == reactor.version,
                o.c.kind == PROCESSED,
            )
            .exists()
        )
        conditions.append(~done)
    count = int(
        connection.execute(
            sa.select(sa.func.count()).select_from(events).where(*conditions)
        ).scalar()
        or 0
    )
    if not count:
        return 0, None
    row = connection.execute(
        sa.select(
            events.c.position,
            events.c.bucket,
            events.c.key,
            events.c.event_name,
            events.c.event_time,
        )
        .where(*conditions)
        .order_by(events.c.position)
        .limit(1)
    ).one()
    return count, PendingEvent(row.position, row.bucket, row.key, row.event_name, row.event_time)


def _latencies(connection: Connection, name: str) -> "array[float]":
    """Seconds from each live-processed event's S3 event time to its Processed outcome,
    sorted; streamed from the database into a compact array (8 bytes per outcome)."""
    o = reactor_outcomes
    live = sa.or_(
        events.c.request_id.is_(None),
        sa.not_(events.c.request_id.startswith(RUN_REQUEST_PREFIX, autoescape=True)),
    )
    statement = (
        sa.select(o.c.at, o.c.cause_event_time)
        .select_from(o.join(events, events.c.event_id == o.c.event_id))
        .where(o.c.reactor == name, o.c.kind == PROCESSED, live)
    )
    values = array("d")
    rows = connection.execution_options(yield_per=base.PAGE_ROWS).execute(statement)
    for row in rows:
        values.append((row.at - row.cause_event_time).total_seconds())
    return array("d", sorted(values))
