"""Running a user's projection or reactor in a test, through the library's own code paths:
the SQL log (migrated SQLite), the projection runner, the reactor runner with the S3 and SQS
adapters (on moto).

A projection or reactor that raises fails the test with its own traceback (chained under
ProjectionFailedError / ReactorFailedError), where in production the runner would record
the error and carry on. SQLAlchemy, the runners and boto3 are imported when a helper is
called, not with this module: the pytest plugin imports it at every start.
"""

import tempfile
import uuid
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventstore.core.events import NewEvent, StoredEvent
from eventstore.errors import EventStoreError
from eventstore.reactors.outcomes import OutcomeKind, RecordedOutcome, read_outcome
from eventstore.store.base import AppendResult
from eventstore.testing.events import Notifications, events_of

if TYPE_CHECKING:
    import sqlalchemy as sa

    from eventstore.projections.base import Fold, Projection, ProjectionContext
    from eventstore.reactors.base import Reactor, ReactorIO
    from eventstore.reactors.runner import Reaction
    from eventstore.store.sql import SqlEventStore
    from eventstore.testing.aws import MotoS3
    from eventstore.wiring import EventStore

DATABASE_FILE = "eventstore.db"


class ProjectionFailedError(EventStoreError):
    """A projection raised while catching up; its own error is the cause."""


class ReactorFailedError(EventStoreError):
    """A reactor failed on at least one event (`run` holds every reaction and outcome); the
    first error it raised is the cause."""

    def __init__(self, message: str, run: "ReactorRun") -> None:
        super().__init__(message)
        self.run = run


def migrated_sqlite_url(folder: Path) -> str:
    """The URL of a SQLite file in `folder` whose schema the migrations built."""
    from eventstore.store.database import create_engine, upgrade_schema

    url = f"sqlite:///{folder / DATABASE_FILE}"
    engine = create_engine(url)
    try:
        upgrade_schema(engine)
    finally:
        engine.dispose()
    return url


def _temporary_log() -> "SqlEventStore":
    """A log in a temporary folder that is removed once its engine is gone."""
    from eventstore.store.database import create_engine
    from eventstore.store.sql import SqlEventStore

    folder = tempfile.TemporaryDirectory(prefix="eventstore-test-", ignore_cleanup_errors=True)
    engine = create_engine(migrated_sqlite_url(Path(folder.name)))
    weakref.finalize(engine, folder.cleanup)
    return SqlEventStore(engine)


def _split(target: "SqlEventStore | EventStore") -> tuple["SqlEventStore", "EventStore | None"]:
    from eventstore.wiring import EventStore

    if isinstance(target, EventStore):
        return target.log, target
    return target, None


def ingest(
    log: "SqlEventStore | EventStore", notifications: Notifications | Iterable[Notifications]
) -> AppendResult:
    """Append the S3 events of `notifications` (records, notifications, Lambda events, JSON
    text: whatever `events_of` takes) to the log, as the ingest consumer would. Given an
    EventStore, its projections are caught up afterwards. A malformed notification raises
    MalformedMessageError."""
    sql_log, store = _split(log)
    result = sql_log.append(events_of(notifications))
    if store is not None:
        _catch_up(sql_log, store.projections)
    return result


def run_projection(
    projection: "Projection",
    events_or_log: "SqlEventStore | EventStore | Notifications | Iterable[Notifications]",
) -> "EventStore":
    """An EventStore with only `projection`, caught up with the given log or with a new one
    (in a temporary SQLite file) holding the given events; query its tables through
    `table_rows` or `store.log.engine`."""
    from eventstore.store.sql import SqlEventStore
    from eventstore.wiring import EventStore, event_store_on

    if isinstance(events_or_log, EventStore):
        log = events_or_log.log
    elif isinstance(events_or_log, SqlEventStore):
        log = events_or_log
    else:
        log = _temporary_log()
        log.append(events_of(events_or_log))
    _catch_up(log, [projection])
    return event_store_on(log, [projection])


def table_rows(
    store: "SqlEventStore | EventStore", table: "sa.Table | str"
) -> list[dict[str, Any]]:
    """Every row of a table (a projection's, by Table or name), as dicts, in primary-key
    order."""
    import sqlalchemy as sa

    log, _ = _split(store)
    with log.engine.connect() as connection:
        chosen = (
            sa.Table(table, sa.MetaData(), autoload_with=connection)
            if isinstance(table, str)
            else table
        )
        order = list(chosen.primary_key.columns) or list(chosen.columns)
        rows = connection.execute(sa.select(chosen).order_by(*order))
        return [dict(row._mapping) for row in rows]


def _catch_up(log: "SqlEventStore", projections: Sequence["Projection"]) -> None:
    """Catch `projections` up with the log; the first that raised fails with its error."""
    from eventstore.projections.runner import ProjectionRunner

    raised: dict[str, list[Exception]] = {p.name: [] for p in projections}
    traced = [_traced_projection(p, raised[p.name]) for p in projections]
    runner = ProjectionRunner(log, traced)
    for report in runner.catch_up():
        if report.error is None:
            continue
        status = next(s for s in runner.status() if s.name == report.name)
        at = f" at position {status.error_position}" if status.error_position else ""
        message = f"projection {report.name} failed{at}: {report.error}"
        cause = raised[report.name][-1] if raised[report.name] else None
        raise ProjectionFailedError(message) from cause


def _traced_projection(projection: "Projection", raised: list[Exception]) -> "Projection":
    """`projection` as the runner sees it, keeping what its fold raises (the runner keeps
    only the message) so the test can show the traceback."""
    from eventstore.projections.base import Fold, Projection

    class TracedFold(Fold):
        def __init__(self, inner: Fold) -> None:
            self.inner = inner

        def apply(self, context: "ProjectionContext", events: Sequence[StoredEvent]) -> None:
            try:
                self.inner.apply(context, events)
            except Exception as error:
                raised.append(error)
                raise

        def flush(self, context: "ProjectionContext") -> None:
            try:
                self.inner.flush(context)
            except Exception as error:
                raised.append(error)
                raise

        @property
        def held(self) -> int:
            return self.inner.held

    def start(self: Projection) -> "Fold":
        return TracedFold(projection.start())

    def effective_version(self: Projection) -> int:
        return projection.effective_version

    # A class made here, not a subclass of the user's: its __init__ may take arguments.
    traced: type[Projection] = type(
        type(projection).__name__,
        (Projection,),
        {
            "name": projection.name,
            "version": projection.version,
            "description": projection.description,
            "tables": projection.tables,
            "start": start,
            "effective_version": property(effective_version),
        },
    )
    return traced()


@dataclass(frozen=True)
class ReactorRun:
    """What `run_reactor` did: the S3 events it appended, the reactor's reactions to those it
    wanted, and the outcome events recorded in the log."""

    causes: tuple[NewEvent, ...]
    reactions: tuple["Reaction", ...]
    recorded: tuple[StoredEvent, ...]

    @property
    def ok(self) -> bool:
        return all(reaction.ok for reaction in self.reactions)

    @property
    def errors(self) -> list[str]:
        """The reason of each failed reaction (`ReactorError: empty file`)."""
        return [reaction.error for reaction in self.reactions if reaction.error is not None]

    @property
    def outcomes(self) -> list[RecordedOutcome]:
        return [read_outcome(stored) for stored in self.recorded]

    def _of_kind(self, kind: OutcomeKind) -> list[RecordedOutcome]:
        return [outcome for outcome in self.outcomes if outcome.kind is kind]

    @property
    def processed(self) -> list[RecordedOutcome]:
        return self._of_kind(OutcomeKind.PROCESSED)

    @property
    def produced(self) -> list[RecordedOutcome]:
        """One per object written: its bucket, key, version id, ETag, size and cause."""
        return self._of_kind(OutcomeKind.PRODUCED)

    @property
    def failed(self) -> list[RecordedOutcome]:
        return self._of_kind(OutcomeKind.FAILED)


def run_reactor(
    reactor: "Reactor",
    events: Notifications | Iterable[Notifications] = (),
    *,
    aws: "MotoS3",
    log: "SqlEventStore | EventStore",
    uploads: Mapping[str, bytes | str] | None = None,
    bucket: str | None = None,
    attempt: int = 1,
    check: bool = True,
) -> ReactorRun:
    """Run `reactor` as its Lambda consumer would, against moto: upload `uploads` (key ->
    body) to `bucket` (the fixture's by default), append those uploads' S3 events and
    `events` to the log, react to each the reactor wants and has not processed, and record
    the outcomes. With `check` (the default) a failed reaction raises ReactorFailedError
    once the outcomes are recorded; without it, look at `run.errors` and `run.failed`."""
    from eventstore.reactors.aws import S3ObjectStore, SqsMessageSender
    from eventstore.reactors.runner import ReactorRunner

    causes = events_of(events)
    for key, body in (uploads or {}).items():
        causes.extend(events_of(aws.put(key, body, bucket=bucket)))
    sql_log, store = _split(log)
    sql_log.append(causes)
    raised: list[Exception] = []
    runner = ReactorRunner(
        _traced_reactor(reactor, raised),
        sql_log,
        S3ObjectStore(aws.client),
        SqsMessageSender(aws.sqs),
    )
    delivery = f"run_reactor-{uuid.uuid4()}"  # as one SQS message's id would
    reactions = [
        runner.react(cause, delivery=delivery, attempt=attempt)
        for cause in runner.unprocessed(causes)
    ]
    recorded = runner.record(reactions)
    if store is not None:
        _catch_up(sql_log, store.projections)
    run = ReactorRun(tuple(causes), tuple(reactions), recorded.stored)
    if check and not run.ok:
        failures = [f"{r.cause.stream}: {r.error}" for r in reactions if not r.ok]
        message = f"reactor {reactor.name} failed on {len(failures)} event(s): " + "; ".join(
            failures
        )
        raise ReactorFailedError(message, run) from (raised[0] if raised else None)
    return run


def _traced_reactor(reactor: "Reactor", raised: list[Exception]) -> "Reactor":
    """`reactor` as the runner sees it, keeping what it raises (the runner records only the
    message) so the test can show the traceback."""
    from eventstore.reactors.base import Reactor

    def react(self: Reactor, event: NewEvent, io: "ReactorIO") -> None:
        try:
            reactor.react(event, io)
        except Exception as error:
            raised.append(error)
            raise

    traced: type[Reactor] = type(
        type(reactor).__name__,
        (Reactor,),
        {
            "name": reactor.name,
            "version": reactor.version,
            "description": reactor.description,
            "wants": reactor.wants,
            "react": react,
        },
    )
    return traced()
