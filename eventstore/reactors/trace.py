"""Lineage of one object: its S3 events, what reactors made of each (recursively, through the
derived objects' own S3 events), and what it was derived from, back to the original upload.

Three steps: `LineageQueries` reads the log and the `reactor_outcomes` projection (batched
SQL, a few statements per level of the tree); `gather` collects, level by level, the facts a
trace needs; `assemble` builds the tree from those facts without I/O, so the rules (which S3
event an output is, the depth bound, the cycle guard) are plain functions.

An output is matched to its S3 events by bucket, key and version id; when either side has no
version id (an unversioned bucket, or an S3-compatible producer whose notifications carry
none), by ETag. Identical content written twice under one key of an unversioned bucket has
one ETag, so there each write matches every such output: S3 records nothing finer.
"""

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from eventstore.core.events import EVENT_COLUMNS, NewEvent, Source, StoredEvent
from eventstore.core.ordering import sort_events_of_one_key
from eventstore.core.timeutil import format_time
from eventstore.output import event_row
from eventstore.projections.reactor_outcomes import reactor_outcomes
from eventstore.reactors.outcomes import OutcomeKind, RecordedOutcome, read_outcome
from eventstore.store.schema import events
from eventstore.store.sql import SqlEventStore

DEFAULT_MAX_DEPTH = 16  # reactor hops followed each way
DEFAULT_MAX_EVENTS = 2000  # S3 events shown in one trace

Object = tuple[str, str]  # (bucket, key)

_CHUNK = 400  # values per IN list
_EVENT_COLUMNS = [events.c[name] for name in EVENT_COLUMNS]


class Truncated(StrEnum):
    """Why a branch of the tree was not followed further."""

    DEPTH = "depth"  # more reactor hops than the bound
    CYCLE = "cycle"  # the event is already on the path to it
    LIMIT = "limit"  # the trace holds as many events as it may


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """One reactor outcome, as the reactor_outcomes projection holds it."""

    position: int
    kind: OutcomeKind
    at: datetime
    reactor: str
    reactor_version: int
    cause_event_id: str
    bucket: str  # the output for Produced, the cause otherwise
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    duration_ms: float | None
    attempt: int | None
    reason: str | None
    # A failed attempt's outputs left in S3, from its record in the log (the projection keeps
    # no copy): bucket, key, versionId, eTag, size; the first of partial_output_count.
    partial_outputs: tuple[Mapping[str, Any], ...] = ()
    partial_output_count: int = 0


def is_output_event(produced: OutcomeRow, event: NewEvent) -> bool:
    """Whether `event` is an S3 event of the object version `produced` names."""
    if event.source is Source.REACTOR or (event.bucket, event.key) != (
        produced.bucket,
        produced.key,
    ):
        return False
    if produced.version_id is not None and event.version_id is not None:
        return produced.version_id == event.version_id
    return produced.etag is not None and produced.etag == event.etag


# -- the tree ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TracedOutput:
    """An object a reactor produced, with its own S3 events (none yet: not seen in the log)."""

    produced: OutcomeRow
    events: tuple["TracedEvent", ...]
    truncated: Truncated | None = None  # its events were not looked up

    @property
    def seen(self) -> bool:
        return bool(self.events)


@dataclass(frozen=True, slots=True)
class Handling:
    """What one reactor (one version of it) did with one event."""

    reactor: str
    reactor_version: int
    processed: OutcomeRow | None
    failures: tuple[OutcomeRow, ...]
    outputs: tuple[TracedOutput, ...]

    @property
    def status(self) -> str:
        if self.processed is not None:
            return "processed"
        # Produced outcomes are appended with their Processed one; without it the projection
        # stopped between the two, or a writer's transaction is not visible yet.
        return "failed" if self.failures else "incomplete"


@dataclass(frozen=True, slots=True)
class TracedEvent:
    """An S3 event and what reactors made of it (nothing: no reactor has handled it)."""

    stored: StoredEvent
    handlings: tuple[Handling, ...]
    truncated: Truncated | None = None  # its outcomes were not followed


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an object version came from: the reactor outcome that produced it, the event
    the reactor reacted to, and where that event's object came from in turn."""

    produced: OutcomeRow
    cause: StoredEvent | None  # None: the cause is not in the log
    derived_from: tuple["Origin", ...]
    seen: bool  # the produced version's own S3 event is in the log
    truncated: Truncated | None = None  # the cause's own origins were not followed


@dataclass(frozen=True, slots=True)
class Lineage:
    """The trace of one object (or one version of it), both ways."""

    bucket: str
    key: str
    version_id: str | None
    events: tuple[TracedEvent, ...]
    derived_from: tuple[Origin, ...]

    @property
    def found(self) -> bool:
        """Whether the log knows the object at all (an event, or a reactor's output)."""
        return bool(self.events or self.derived_from)


# -- reading -----------------------------------------------------------------------------------


def _chunks(values: Collection[Any]) -> Iterator[list[Any]]:
    ordered = sorted(values)
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


class LineageQueries:
    """The reads a trace makes, on one connection: S3 events (the log, outcomes left out)
    and reactor outcomes (the projection; none when it has not been built yet)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.has_outcomes = sa.inspect(connection).has_table(reactor_outcomes.name)

    def events_of_objects(self, objects: Collection[Object]) -> dict[Object, list[StoredEvent]]:
        """The S3 events of each object, in S3 order; every object asked for has an entry."""
        found: dict[Object, list[StoredEvent]] = {o: [] for o in objects}
        pair = sa.tuple_(events.c.bucket, events.c.key)
        for chunk in _chunks(objects):
            statement = (
                sa.select(*_EVENT_COLUMNS)
                .where(pair.in_(chunk), events.c.source != str(Source.REACTOR))
                .order_by(events.c.position)
            )
            for row in self.connection.execute(statement):
                stored = StoredEvent.of_values(row)
                found[(stored.event.bucket, stored.event.key)].append(stored)
        return {o: sort_events_of_one_key(s, lambda e: e.order_key) for o, s in found.items()}

    def events_by_id(self, event_ids: Collection[str]) -> dict[str, StoredEvent]:
        found: dict[str, StoredEvent] = {}
        for chunk in _chunks(event_ids):
            statement = sa.select(*_EVENT_COLUMNS).where(events.c.event_id.in_(chunk))
            for row in self.connection.execute(statement):
                stored = StoredEvent.of_values(row)
                found[stored.event.event_id] = stored
        return found

    def outcomes_of_causes(self, cause_ids: Collection[str]) -> dict[str, list[OutcomeRow]]:
        """Every outcome whose cause is one of `cause_ids`, in position order; every id
        asked for has an entry."""
        found: dict[str, list[OutcomeRow]] = {i: [] for i in cause_ids}
        table = reactor_outcomes
        if self.has_outcomes:
            for chunk in _chunks(cause_ids):
                statement = (
                    sa.select(table)
                    .where(table.c.cause_event_id.in_(chunk))
                    .order_by(table.c.position)
                )
                for row in self.connection.execute(statement):
                    found[row.cause_event_id].append(_outcome_row(row))
        failed = [
            r.position for rows in found.values() for r in rows if r.kind is OutcomeKind.FAILED
        ]
        partial = self._partial_outputs(failed)
        if partial:
            for rows in found.values():
                rows[:] = [_with_partial(r, partial.get(r.position)) for r in rows]
        return found

    def _partial_outputs(self, positions: Collection[int]) -> dict[int, RecordedOutcome]:
        """The failed attempts at `positions` that left outputs behind, as the log records
        them."""
        found: dict[int, RecordedOutcome] = {}
        for chunk in _chunks(positions):
            statement = sa.select(*_EVENT_COLUMNS).where(
                events.c.position.in_(chunk), events.c.record.contains('"partialOutputs"')
            )
            for row in self.connection.execute(statement):
                found[row.position] = read_outcome(StoredEvent.of_values(row))
        return found

    def produced_as(self, objects: Collection[Object]) -> dict[Object, list[OutcomeRow]]:
        """The Produced outcomes whose output is one of `objects`, in position order."""
        found: dict[Object, list[OutcomeRow]] = {o: [] for o in objects}
        table = reactor_outcomes
        if self.has_outcomes:
            pair = sa.tuple_(table.c.bucket, table.c.key)
            for chunk in _chunks(objects):
                statement = (
                    sa.select(table)
                    .where(table.c.kind == str(OutcomeKind.PRODUCED), pair.in_(chunk))
                    .order_by(table.c.position)
                )
                for row in self.connection.execute(statement):
                    found[(row.bucket, row.key)].append(_outcome_row(row))
        return found


def _with_partial(row: OutcomeRow, recorded: RecordedOutcome | None) -> OutcomeRow:
    if recorded is None:
        return row
    return replace(
        row,
        partial_outputs=recorded.partial_outputs,
        partial_output_count=recorded.partial_output_count,
    )


def _outcome_row(row: sa.Row[Any]) -> OutcomeRow:
    return OutcomeRow(
        position=row.position, kind=OutcomeKind(row.kind), at=row.at, reactor=row.reactor,
        reactor_version=row.reactor_version, cause_event_id=row.cause_event_id,
        bucket=row.bucket, key=row.key, version_id=row.version_id, etag=row.etag,
        size=row.size, duration_ms=row.duration_ms, attempt=row.attempt, reason=row.reason,
    )  # fmt: skip


# -- gathering: what the tree needs, level by level ---------------------------------------------


@dataclass
class LineageFacts:
    """Everything a trace read. A missing entry means "not looked up" (bounds), an empty one
    "looked up, nothing there"."""

    roots: list[StoredEvent] = field(default_factory=list)
    events_of: dict[Object, list[StoredEvent]] = field(default_factory=dict)
    outcomes_of: dict[str, list[OutcomeRow]] = field(default_factory=dict)
    produced_as: dict[Object, list[OutcomeRow]] = field(default_factory=dict)
    events_by_id: dict[str, StoredEvent] = field(default_factory=dict)


def _root_origins(facts: LineageFacts, target: Object, version_id: str | None) -> list[OutcomeRow]:
    """The outputs recorded as the traced object (only the traced version, when one is)."""
    produced = facts.produced_as.get(target, [])
    if version_id is None:
        return produced
    return [
        p
        for p in produced
        if p.version_id == version_id or any(is_output_event(p, r.event) for r in facts.roots)
    ]


def _origins_of(facts: LineageFacts, stored: StoredEvent) -> list[OutcomeRow] | None:
    """The outputs the event `stored` is the S3 event of; None when not looked up."""
    event = stored.event
    produced = facts.produced_as.get((event.bucket, event.key))
    if produced is None:
        return None
    return [p for p in produced if is_output_event(p, event)]


def gather(
    queries: LineageQueries,
    bucket: str,
    key: str,
    version_id: str | None = None,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_events: int = DEFAULT_MAX_EVENTS,
) -> LineageFacts:
    """Read what the lineage of one object needs, a level of the tree at a time: forwards
    from its events, then backwards from the outputs recorded as it."""
    target = (bucket, key)
    facts = LineageFacts()
    facts.events_of.update(queries.events_of_objects([target]))
    facts.roots = [
        s for s in facts.events_of[target] if version_id is None or s.event.version_id == version_id
    ]
    _gather_forwards(queries, facts, max_depth=max_depth, max_events=max_events)
    _gather_backwards(queries, facts, target, version_id, max_depth=max_depth)
    return facts


def _gather_forwards(
    queries: LineageQueries, facts: LineageFacts, *, max_depth: int, max_events: int
) -> None:
    """Breadth first: each event's outcomes are read once, however many paths lead to it."""
    frontier = facts.roots[:max_events]
    seen = {s.event.event_id for s in frontier}
    for _ in range(max_depth):
        if not frontier:
            return
        facts.outcomes_of.update(queries.outcomes_of_causes([s.event.event_id for s in frontier]))
        produced = [
            o
            for s in frontier
            for o in facts.outcomes_of[s.event.event_id]
            if o.kind is OutcomeKind.PRODUCED
        ]
        unread = {(o.bucket, o.key) for o in produced} - facts.events_of.keys()
        facts.events_of.update(queries.events_of_objects(unread))
        frontier = []
        for output in produced:
            for stored in facts.events_of[(output.bucket, output.key)]:
                event_id = stored.event.event_id
                if (
                    event_id not in seen
                    and len(seen) < max_events
                    and is_output_event(output, stored.event)
                ):
                    seen.add(event_id)
                    frontier.append(stored)


def _gather_backwards(
    queries: LineageQueries,
    facts: LineageFacts,
    target: Object,
    version_id: str | None,
    *,
    max_depth: int,
) -> None:
    """From the outputs recorded as the traced object to their causes, the outputs those
    causes are, their causes, and so on; each cause read once."""
    facts.produced_as.update(queries.produced_as([target]))
    wanted = {p.cause_event_id for p in _root_origins(facts, target, version_id)}
    looked: set[str] = set()
    for _ in range(max_depth):
        wanted -= looked
        if not wanted:
            return
        looked |= wanted
        causes = queries.events_by_id(wanted)
        facts.events_by_id.update(causes)
        objects = {(c.event.bucket, c.event.key) for c in causes.values()}
        facts.produced_as.update(queries.produced_as(objects - facts.produced_as.keys()))
        wanted = {p.cause_event_id for c in causes.values() for p in _origins_of(facts, c) or ()}


# -- assembling: the tree from the facts, no I/O -------------------------------------------------


def assemble(
    facts: LineageFacts,
    bucket: str,
    key: str,
    version_id: str | None = None,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_events: int = DEFAULT_MAX_EVENTS,
) -> Lineage:
    """The lineage tree of the object (version) whose facts `gather` read."""
    assembly = _Assembly(facts, max_depth, max_events)
    traced = tuple(assembly.event(stored, 0, frozenset()) for stored in facts.roots)
    target = (bucket, key)
    object_events = facts.events_of.get(target, [])
    origins = tuple(
        assembly.origin(
            produced, 0, frozenset(),
            seen=any(is_output_event(produced, s.event) for s in object_events),
        )
        for produced in _root_origins(facts, target, version_id)
    )  # fmt: skip
    return Lineage(bucket, key, version_id, traced, origins)


class _Assembly:
    """The walk over the facts, with its bounds: depth (reactor hops), events shown (a shared
    event reached by several paths counts each time) and the path, against cycles."""

    def __init__(self, facts: LineageFacts, max_depth: int, max_events: int) -> None:
        self.facts = facts
        self.max_depth = max_depth
        self.events_left = max_events

    def event(self, stored: StoredEvent, depth: int, path: frozenset[str]) -> TracedEvent:
        event_id = stored.event.event_id
        if event_id in path:
            return TracedEvent(stored, (), Truncated.CYCLE)
        if depth >= self.max_depth:
            return TracedEvent(stored, (), Truncated.DEPTH)
        outcomes = self.facts.outcomes_of.get(event_id)
        self.events_left -= 1
        if outcomes is None or self.events_left < 0:
            return TracedEvent(stored, (), Truncated.LIMIT)
        inner = path | {event_id}
        handlings = []
        for (reactor, version), rows in _by_reactor(outcomes).items():
            processed = next((r for r in rows if r.kind is OutcomeKind.PROCESSED), None)
            failures = tuple(r for r in rows if r.kind is OutcomeKind.FAILED)
            outputs = tuple(
                self.output(r, depth, inner) for r in rows if r.kind is OutcomeKind.PRODUCED
            )
            handlings.append(Handling(reactor, version, processed, failures, outputs))
        return TracedEvent(stored, tuple(handlings))

    def output(self, produced: OutcomeRow, depth: int, path: frozenset[str]) -> TracedOutput:
        candidates = self.facts.events_of.get((produced.bucket, produced.key))
        if candidates is None:
            return TracedOutput(produced, (), Truncated.LIMIT)
        return TracedOutput(
            produced,
            tuple(
                self.event(s, depth + 1, path)
                for s in candidates
                if is_output_event(produced, s.event)
            ),
        )

    def origin(
        self, produced: OutcomeRow, depth: int, path: frozenset[str], *, seen: bool
    ) -> Origin:
        cause = self.facts.events_by_id.get(produced.cause_event_id)
        if cause is None:
            return Origin(produced, None, (), seen)
        cause_id = cause.event.event_id
        if cause_id in path:
            return Origin(produced, cause, (), seen, Truncated.CYCLE)
        further = _origins_of(self.facts, cause)
        if further is None or depth + 1 >= self.max_depth:
            return Origin(produced, cause, (), seen, Truncated.DEPTH)
        inner = path | {cause_id}
        derived = tuple(self.origin(p, depth + 1, inner, seen=True) for p in further)
        return Origin(produced, cause, derived, seen)


def _by_reactor(outcomes: Iterable[OutcomeRow]) -> dict[tuple[str, int], list[OutcomeRow]]:
    grouped: dict[tuple[str, int], list[OutcomeRow]] = {}
    for row in outcomes:
        grouped.setdefault((row.reactor, row.reactor_version), []).append(row)
    return grouped


def trace(
    source: Engine | SqlEventStore,
    bucket: str,
    key: str,
    version_id: str | None = None,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_events: int = DEFAULT_MAX_EVENTS,
) -> Lineage:
    """The lineage of s3://bucket/key (of its version `version_id` only, when given): its S3
    events and what reactors derived from each, recursively; and what it was derived from.

    Reactor outcomes come from the `reactor_outcomes` projection: a caller showing the trace
    to a person says when that projection is behind the log."""
    engine = source.engine if isinstance(source, SqlEventStore) else source
    with engine.connect() as connection:
        facts = gather(
            LineageQueries(connection), bucket, key, version_id,
            max_depth=max_depth, max_events=max_events,
        )  # fmt: skip
    return assemble(facts, bucket, key, version_id, max_depth=max_depth, max_events=max_events)


# -- as a document (JSON) ------------------------------------------------------------------------


def _event_fields(stored: StoredEvent) -> dict[str, Any]:
    return {
        name: format_time(value) if isinstance(value, datetime) else value
        for name, value in event_row(stored).items()
    }


def _output_fields(row: OutcomeRow) -> dict[str, Any]:
    return {
        "bucket": row.bucket,
        "key": row.key,
        "version_id": row.version_id,
        "etag": row.etag,
        "size": row.size,
    }


def _event_document(traced: TracedEvent) -> dict[str, Any]:
    return {
        **_event_fields(traced.stored),
        "truncated": traced.truncated,
        "reactors": [_handling_document(h) for h in traced.handlings],
    }


def _failure_document(failure: OutcomeRow) -> dict[str, Any]:
    return {
        "at": format_time(failure.at),
        "attempt": failure.attempt,
        "reason": failure.reason,
        # what the attempt wrote before it failed, left in S3
        "partial_outputs": [
            {
                "bucket": o.get("bucket"),
                "key": o.get("key"),
                "version_id": o.get("versionId"),
                "etag": o.get("eTag"),
                "size": o.get("size"),
            }
            for o in failure.partial_outputs
        ],
        "partial_output_count": failure.partial_output_count,
    }


def _handling_document(handling: Handling) -> dict[str, Any]:
    processed = handling.processed
    return {
        "reactor": handling.reactor,
        "reactor_version": handling.reactor_version,
        "status": handling.status,
        "processed": None
        if processed is None
        else {"at": format_time(processed.at), "duration_ms": processed.duration_ms},
        "failures": [_failure_document(f) for f in handling.failures],
        "outputs": [
            {
                **_output_fields(o.produced),
                "at": format_time(o.produced.at),
                "seen": o.seen,
                "truncated": o.truncated,
                "events": [_event_document(e) for e in o.events],
            }
            for o in handling.outputs
        ],
    }


def _origin_document(origin: Origin) -> dict[str, Any]:
    produced = origin.produced
    return {
        "reactor": produced.reactor,
        "reactor_version": produced.reactor_version,
        "at": format_time(produced.at),
        "output": _output_fields(produced),
        "seen": origin.seen,
        "cause": None if origin.cause is None else _event_fields(origin.cause),
        "cause_event_id": produced.cause_event_id,
        "truncated": origin.truncated,
        "derived_from": [_origin_document(o) for o in origin.derived_from],
    }


def lineage_document(lineage: Lineage, *, lag: int | None = None) -> Mapping[str, Any]:
    """The lineage as a JSON-ready document; events carry the log's field names; `lag` is how
    far the reactor_outcomes projection was behind the log (None: not known)."""
    return {
        "bucket": lineage.bucket,
        "key": lineage.key,
        "version_id": lineage.version_id,
        "lag": lag,
        "derived_from": [_origin_document(o) for o in lineage.derived_from],
        "events": [_event_document(e) for e in lineage.events],
    }
