"""The read-only audit API and its web page: one Powertools resolver (Lambda function URL
payload 2.0) that `eventstore serve` runs locally and consumers/api.py runs on Lambda.

Nothing here writes: every route is a GET over the log and the projections. SQLAlchemy and
the store are imported on the first request, not when the app is built (cold start)."""

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Query

from eventstore.api.models import (
    Activity,
    CatalogObject,
    CatalogPage,
    Event,
    EventPage,
    History,
    HourCount,
    Lineage,
    PrincipalRow,
    Principals,
    Problem,
    Projections,
    ProjectionState,
    VerifyReport,
)
from eventstore.core.timeutil import format_time, parse_option_time
from eventstore.errors import EventStoreError

if TYPE_CHECKING:
    from eventstore.core.events import StoredEvent
    from eventstore.core.objectstate import CatalogEntry
    from eventstore.wiring import EventStore

T = TypeVar("T")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000  # a page stays far below the function URL's 6 MB response limit
TITLE = "s3-eventstore audit API"

# The page's own files, shipped in the package: no build step and nothing fetched elsewhere.
STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class BadParameterError(EventStoreError):
    """A query parameter the API cannot use (answered with 400 and the reason)."""


class NotFoundError(EventStoreError):
    """The log knows nothing of what was asked for (answered with 404)."""


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"rows per page (<= {MAX_LIMIT})")]
Text = Annotated[str | None, Query()]


def build_app(event_store: Callable[[], "EventStore"]) -> LambdaFunctionUrlResolver:
    """The API over the event store `event_store()` returns (called per request; the caller
    keeps it open between requests)."""
    app = LambdaFunctionUrlResolver(enable_validation=True)

    # Registered by call, not as decorators: Powertools' decorator is untyped.
    app.exception_handler([RequestValidationError, EventStoreError])(_problem_of)

    @app.get("/api/events", summary="audit query over the log (the filters of `events`)")
    def events(
        *,
        bucket: Text = None,
        prefix: Text = None,
        since: Annotated[str | None, Query(description="event time >= (ISO 8601)")] = None,
        until: Annotated[str | None, Query(description="event time < (ISO 8601)")] = None,
        type: Annotated[
            list[str] | None, Query(description="event name or 'Prefix:*', comma-separated")
        ] = None,
        principal: Text = None,
        after: Annotated[int, Query(ge=0, description="position cursor")] = 0,
        limit: Limit = DEFAULT_LIMIT,
    ) -> EventPage:
        from dataclasses import replace

        query = replace(
            _query(
                bucket=bucket,
                prefix=prefix,
                since=since,
                until=until,
                types=type,
                principal=principal,
            ),
            limit=limit + 1,
        )
        page = [_event(s) for s in event_store().log.iter_events(query, after=after)]
        more = len(page) > limit
        page = page[:limit]
        return EventPage(events=page, next_after=page[-1].position if more else None)

    @app.get("/api/history", summary="every event of one object, in S3's order, by pages")
    def history(
        bucket: str,
        key: str,
        cursor: Annotated[str | None, Query(description="next_cursor of the page before")] = None,
        limit: Limit = MAX_LIMIT,
    ) -> History:
        from eventstore.store.base import HistoryCursor

        start = HistoryCursor.parse(cursor) if cursor else HistoryCursor()
        with closing(event_store().log.iter_history(bucket, key, after=start)) as stream:
            found, more = _page(stream, limit)
        if not found and cursor is None:
            raise NotFoundError(f"no events of s3://{bucket}/{key} in the log")
        return History(
            bucket=bucket,
            key=key,
            events=[_event(s) for s in found],
            next_cursor=start.after(found).text() if more else None,
        )

    @app.get("/api/objects", summary="the object catalog, now or as of a past time")
    def objects(
        *,
        bucket: Text = None,
        prefix: Text = None,
        as_of: Annotated[str | None, Query(alias="as-of", description="ISO 8601")] = None,
        include_deleted: Annotated[bool, Query(alias="include-deleted")] = False,
        cursor: Annotated[str | None, Query(description="BUCKET/KEY: rows after it")] = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> CatalogPage:
        from eventstore.wiring import CATALOG

        store = event_store()
        when = _time(as_of, "as-of")
        if when is not None:  # folded from the log itself: never behind
            lag = 0
            entries = store.objects_as_of(
                when, bucket=bucket, prefix=prefix, include_deleted=include_deleted
            )
        else:
            lag = store.status(CATALOG).lag
            entries = store.objects(bucket=bucket, prefix=prefix, include_deleted=include_deleted)
        rows, more = _page(_after_cursor(entries, cursor), limit)
        last = rows[-1] if rows else None
        return CatalogPage(
            objects=[_catalog(e) for e in rows],
            next_cursor=f"{last.bucket}/{last.key}" if more and last else None,
            as_of=format_time(when) if when else None,
            lag=lag,
        )

    @app.get("/api/activity", summary="events per hour and event name")
    def activity(
        *,
        bucket: Text = None,
        prefix: Text = None,
        since: Text = None,
        until: Text = None,
        principal: Text = None,
    ) -> Activity:
        query = _query(
            bucket=bucket, prefix=prefix, since=since, until=until, types=None, principal=principal
        )
        counts: Counter[tuple[str, str]] = Counter()
        for stored in event_store().log.iter_events(query):  # streamed: only counts are kept
            hour = stored.event.event_time.replace(minute=0, second=0, microsecond=0)
            counts[(format_time(hour), stored.event.event_name)] += 1
        hours = [HourCount(hour=h, event_name=n, events=c) for (h, n), c in sorted(counts.items())]
        return Activity(bucket=bucket, prefix=prefix, total=sum(counts.values()), hours=hours)

    @app.get("/api/principals", summary="who did what (the principal_activity projection)")
    def principals(limit: Limit = MAX_LIMIT) -> Principals:
        import sqlalchemy as sa

        from eventstore.projections.principal_activity import (
            PrincipalActivityProjection,
            principal_activity,
        )

        store = event_store()
        table = principal_activity
        statement = (
            sa.select(table)
            .order_by(table.c.events.desc(), table.c.principal_id, table.c.event_name)
            .limit(limit)
        )
        with store.log.engine.connect() as connection:
            rows = [
                PrincipalRow(
                    principal_id=r.principal_id,
                    event_name=r.event_name,
                    events=r.events,
                    first_seen=format_time(r.first_seen),
                    last_seen=format_time(r.last_seen),
                )
                for r in connection.execute(statement)
            ]
        lag = store.status(PrincipalActivityProjection.name).lag
        return Principals(principals=rows, lag=lag)

    @app.get("/api/projections", summary="checkpoint, lag and state of each projection")
    def projections() -> Projections:
        statuses = event_store().runner.status()
        rows = [
            ProjectionState(
                name=s.name, state=s.state, code_version=s.code_version,
                live_version=s.live_version, position=s.position, head=s.head, lag=s.lag,
                rebuild_position=s.rebuild_position, error_position=s.error_position,
                last_error=s.last_error, filter=s.live_filter,
            )
            for s in statuses
        ]  # fmt: skip
        head = max((s.head for s in statuses), default=event_store().log.head_position())
        return Projections(head=head, projections=rows)

    @app.get("/api/verify", summary="check the hash chain (with ?anchor=POSITION:HASH)")
    def verify(
        anchor: Annotated[str | None, Query(description="POSITION:HASH kept elsewhere")] = None,
    ) -> VerifyReport:
        from eventstore.core.hashing import Anchor

        try:
            given = Anchor.parse(anchor) if anchor else None
        except ValueError as error:
            raise BadParameterError(f"anchor: {error}") from None
        store = event_store()
        result = store.log.verify(anchor=given)
        faults = store.runner.faults()
        ok = result.ok and not faults
        return VerifyReport(
            ok=ok,
            checked=result.checked,
            head_position=result.head_position,
            first_bad_position=result.first_bad_position,
            reason=result.reason,
            head_hash=result.head_hash,
            projection_faults=faults,
            anchor=f"{result.head_position}:{result.head_hash}"
            if ok and result.head_hash
            else None,
            checked_anchor=anchor,
        )

    @app.get("/api/trace", summary="lineage: derived objects, recursively, and origins")
    def trace(bucket: str, key: str, version: Text = None) -> Lineage:
        from eventstore.reactors.commands import OUTCOMES
        from eventstore.reactors.trace import lineage_document
        from eventstore.reactors.trace import trace as lineage_of

        store = event_store()
        lineage = lineage_of(store.log, bucket, key, version)
        if not lineage.found:
            raise NotFoundError(f"the log knows nothing of s3://{bucket}/{key}")
        document = lineage_document(lineage, lag=store.status(OUTCOMES).lag)
        return Lineage.model_validate(dict(document))

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> Response[str]:
        return Response(
            200,
            "application/json",
            app.get_openapi_json_schema(title=TITLE, version="1"),
        )

    @app.get("/", include_in_schema=False)
    def page() -> Response[str]:
        return _static_response("index.html", "text/html; charset=utf-8")

    @app.get("/static/<name>", include_in_schema=False)
    def static(name: str) -> Response[str]:
        if name not in STATIC:
            raise NotFoundError(f"no file {name}")
        return _static_response(name, STATIC[name])

    return app


def _static_response(name: str, content_type: str) -> Response[str]:
    body = resources.files("eventstore.api").joinpath("static", name).read_text("utf-8")
    return Response(200, content_type, body, headers=dict(PAGE_HEADERS))


def _problem_of(error: Exception) -> Response[Any]:
    """400 with the reason for a bad request, 404 for what the log does not know."""
    if isinstance(error, RequestValidationError):
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}"
            for e in error.errors()
        )
        return _problem(400, reasons)
    return _problem(404 if isinstance(error, NotFoundError) else 400, str(error))


def _problem(status: int, reason: str) -> Response[Any]:
    return Response(
        status, "application/json", Problem(status=status, error=reason).model_dump_json()
    )


def _time(text: str | None, name: str) -> datetime | None:
    try:
        return parse_option_time(text, name) if text else None
    except EventStoreError as error:
        raise BadParameterError(str(error)) from None


def _query(
    *,
    bucket: str | None,
    prefix: str | None,
    since: str | None,
    until: str | None,
    types: list[str] | None,
    principal: str | None,
) -> Any:
    from eventstore.store.base import EventQuery

    return EventQuery(
        bucket=bucket or None,
        prefix=prefix or None,
        since=_time(since, "since"),
        until=_time(until, "until"),
        types=tuple(t for t in types or () if t),
        principal=principal or None,
    )


def _after_cursor(
    entries: Iterator["CatalogEntry"], cursor: str | None
) -> Iterator["CatalogEntry"]:
    """The entries after BUCKET/KEY (entries come in (bucket, key) order)."""
    if not cursor:
        return entries
    bucket, slash, key = cursor.partition("/")
    if not slash or not bucket:
        raise BadParameterError(f"cursor: not BUCKET/KEY: {cursor!r}")
    return (e for e in entries if (e.bucket, e.key) > (bucket, key))


def _page(entries: Iterator[T], limit: int) -> tuple[list[T], bool]:
    """Up to `limit` rows, and whether there are more."""
    rows: list[T] = []
    for entry in entries:
        if len(rows) == limit:
            return rows, True
        rows.append(entry)
    return rows, False


def _event(stored: "StoredEvent") -> Event:
    from eventstore.output import event_row

    row = event_row(stored)
    row["event_time"] = format_time(row["event_time"])
    return Event.model_validate(row)


def _catalog(entry: "CatalogEntry") -> CatalogObject:
    from eventstore.output import catalog_row

    row = catalog_row(entry)
    row["last_event_time"] = format_time(row["last_event_time"])
    return CatalogObject.model_validate(row)
