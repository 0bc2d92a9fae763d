"""The `eventstore` command line: thin translation from arguments to library calls."""

import argparse
import io
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy.exc import DBAPIError

from eventstore.core.hashing import Anchor
from eventstore.core.parsing import Delivery, Envelope, envelopes_of_stream, parse_envelope
from eventstore.core.timeutil import format_time, parse_option_time
from eventstore.errors import ConfigurationError, EventStoreError, MalformedMessageError
from eventstore.ingest import IngestSummary, append_deliveries
from eventstore.output import (
    CATALOG_FIELDS,
    CATALOG_TABLE_FIELDS,
    EVENT_FIELDS,
    EVENT_TABLE_FIELDS,
    FORMATS,
    catalog_row,
    escape_controls,
    event_row,
    render,
)
from eventstore.progress import Progress
from eventstore.store.base import EventQuery
from eventstore.store.database import (
    check_sqlite_file,
    create_engine,
    ensure_schema,
    resolve_url,
    upgrade_schema,
)
from eventstore.store.sql import SqlEventStore, open_store

if TYPE_CHECKING:
    import sqlalchemy as sa

    from eventstore.core.hashing import VerifyResult
    from eventstore.projections.base import Projection
    from eventstore.projections.runner import ProjectionRunner
    from eventstore.wiring import EventStore

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # as a shell reports a command ended by SIGINT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventstore",
        description="An append-only, verifiable log of S3 events: ingest, query, verify.",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="database URL (default: $EVENTSTORE_DB_URL, else sqlite:///./eventstore.db)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", help="apply the migrations (Alembic)").set_defaults(
        run=cmd_db_upgrade
    )

    ingest = commands.add_parser("ingest", help="ingest notifications from files ('-' = stdin)")
    ingest.add_argument("files", nargs="+", metavar="FILE")
    ingest.set_defaults(run=cmd_ingest)

    history = commands.add_parser("history", help="every event of one object, in S3 order")
    history.add_argument("uri", metavar="s3://BUCKET/KEY")
    _add_format(history)
    history.set_defaults(run=cmd_history)

    events = commands.add_parser("events", help="audit query over the log")
    events.add_argument("--bucket")
    events.add_argument("--prefix")
    events.add_argument("--since", metavar="TIME", help="event time >= TIME (ISO 8601)")
    events.add_argument("--until", metavar="TIME", help="event time < TIME (ISO 8601)")
    events.add_argument(
        "--type", action="append", default=[], metavar="NAME",
        help="event name or 'Prefix:*' pattern; repeatable",
    )  # fmt: skip
    events.add_argument("--principal", metavar="ID")
    events.add_argument("--limit", type=_positive_int)
    _add_format(events)
    events.set_defaults(run=cmd_events)

    objects = commands.add_parser("objects", help="the object catalog, now or at a past time")
    objects.add_argument("--bucket")
    objects.add_argument("--prefix")
    objects.add_argument("--as-of", metavar="TIME", help="reconstruct the catalog at TIME")
    objects.add_argument("--include-deleted", action="store_true", help="list deleted keys too")
    _add_format(objects)
    objects.set_defaults(run=cmd_objects)

    verify = commands.add_parser("verify", help="check the hash chain; exit 1 if broken")
    verify.add_argument(
        "--anchor",
        metavar="POSITION:HASH",
        help="a head printed by an earlier verify and kept elsewhere: also detects rows cut "
        "off the end and a chain rewritten whole",
    )
    _add_format(verify)
    verify.set_defaults(run=cmd_verify)

    projections = commands.add_parser("projections", help="registered projections")
    actions = projections.add_subparsers(
        dest="projections_command", required=True, metavar="ACTION"
    )
    listing = actions.add_parser("list", help="every registered projection")
    _add_format(listing)
    listing.set_defaults(run=cmd_projections_list)
    status = actions.add_parser("status", help="checkpoint, lag and state of each projection")
    _add_format(status)
    status.set_defaults(run=cmd_projections_status)
    catch_up = actions.add_parser("catch-up", help="bring every projection to the head now")
    catch_up.set_defaults(run=cmd_projections_catch_up)
    rebuild = actions.add_parser("rebuild", help="rebuild into shadow tables and swap in")
    rebuild.add_argument("name", nargs="?", help="projection to rebuild")
    rebuild.add_argument("--all", action="store_true", help="rebuild every projection")
    rebuild.add_argument(
        "--dry-run", action="store_true",
        help="build aside and report row counts and differences against the live tables",
    )  # fmt: skip
    rebuild.set_defaults(run=cmd_projections_rebuild)
    show = actions.add_parser("show", help="the rows of a projection's first table")
    show.add_argument("name")
    show.add_argument("--limit", type=_positive_int, default=1000)
    _add_format(show)
    show.set_defaults(run=cmd_projections_show)

    replay = commands.add_parser("replay", help="rebuild or back-fill from history")
    replay.add_argument(
        "--from", dest="source", required=True, choices=sorted(REPLAY_SOURCES),
        help="log: rebuild projections from the log; archive / s3 / sqs: back-fill the log",
    )  # fmt: skip
    replay.add_argument("target", nargs="?", help="s3://bucket/prefix/ or a queue URL")
    replay.add_argument(
        "--projection",
        action="append",
        default=[],
        metavar="NAME",
        help="with --from log: the projection(s) to rebuild (default: all)",
    )
    replay.add_argument("--bucket")
    replay.add_argument("--prefix")
    replay.add_argument("--since", metavar="TIME")
    replay.add_argument("--until", metavar="TIME")
    replay.add_argument("--type", action="append", default=[], metavar="NAME")
    replay.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="with archive / s3 / sqs: the AWS endpoint (a moto server, MinIO)",
    )
    replay.add_argument("--region", help="with archive / s3 / sqs: the AWS region")
    replay.set_defaults(run=cmd_replay)

    reconcile = commands.add_parser(
        "reconcile", help="compare the log with what S3 holds; exit 1 when incomplete"
    )
    reconcile.add_argument("target", metavar="s3://BUCKET[/PREFIX]")
    reconcile.add_argument(
        "--inventory", metavar="s3://.../manifest.json",
        help="read S3's side from an S3 Inventory report (CSV) instead of ListObjectVersions",
    )  # fmt: skip
    reconcile.add_argument(
        "--repair", action="store_true",
        help="back-fill what differs from S3's object versions, then report again",
    )  # fmt: skip
    reconcile.add_argument(
        "--depth", type=int, default=1, metavar="N", help="folders per prefix in the report"
    )
    reconcile.add_argument("--format", choices=("table", "json"), default="table")
    reconcile.add_argument("--endpoint-url", metavar="URL", help="the S3 endpoint (moto, MinIO)")
    reconcile.add_argument("--region", help="the AWS region")
    reconcile.set_defaults(run=cmd_reconcile)

    trace = commands.add_parser(
        "trace", help="lineage: an object's events, what reactors derived from them, and back"
    )
    trace.add_argument("uri", metavar="s3://BUCKET/KEY")
    trace.add_argument("--version", dest="version_id", metavar="V", help="one version only")
    trace.add_argument("--format", choices=("table", "json"), default="table")
    trace.set_defaults(run=cmd_trace)

    reactors = commands.add_parser("reactors", help="registered reactors, their outcomes, re-runs")
    reactor_actions = reactors.add_subparsers(
        dest="reactors_command", required=True, metavar="ACTION"
    )
    reactors_list = reactor_actions.add_parser("list", help="every registered reactor")
    _add_format(reactors_list)
    reactors_list.set_defaults(run=cmd_reactors_list)
    reactors_status = reactor_actions.add_parser(
        "status", help="outcomes, backlog and latency per reactor; exit 1 if one is failing"
    )
    reactors_status.add_argument("name", nargs="?", help="one reactor (default: all)")
    _add_format(reactors_status)
    reactors_status.set_defaults(run=cmd_reactors_status)
    reactors_run = reactor_actions.add_parser(
        "run", help="re-run a reactor over the log's history (resumable)"
    )
    reactors_run.add_argument("name")
    reactors_run.add_argument("--from", dest="source", required=True, choices=("log",))
    reactors_run.add_argument("--bucket")
    reactors_run.add_argument("--prefix")
    reactors_run.add_argument("--since", metavar="TIME", help="event time >= TIME (ISO 8601)")
    reactors_run.add_argument("--until", metavar="TIME", help="event time < TIME (ISO 8601)")
    reactors_run.add_argument("--type", action="append", default=[], metavar="NAME")
    reactors_run.add_argument(
        "--dry-run", action="store_true", help="list the events it would react to (in --format)"
    )
    reactors_run.add_argument(
        "--chunk", type=_positive_int, default=100, metavar="N",
        help="events per chunk; each chunk's outcomes are recorded before the next (default 100)",
    )  # fmt: skip
    reactors_run.add_argument("--endpoint-url", metavar="URL", help="the AWS endpoint")
    reactors_run.add_argument("--region", help="the AWS region")
    _add_format(reactors_run)
    reactors_run.set_defaults(run=cmd_reactors_run)
    check = reactor_actions.add_parser(
        "check-template",
        help="compare each reactor function's filter policy in the template with the reactor",
    )
    check.add_argument("--template", metavar="PATH", help="default: infra/template.yaml")
    check.set_defaults(run=cmd_reactors_check_template)
    search = commands.add_parser("search", help="full-text search over extracted text")
    search.add_argument(
        "words", nargs="+", metavar="WORD",
        help="plain words, all of them required (put -- before a word starting with '-')",
    )  # fmt: skip
    search.add_argument(
        "--prefix", help="only objects whose key, or whose upload's key, starts with this"
    )
    search.add_argument("--limit", type=_positive_int, default=20, help="at most this many hits")
    _add_format(search)
    search.set_defaults(run=cmd_search)

    serve = commands.add_parser(
        "serve", help="the read-only HTTP API and web page (loopback by default)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free)")
    serve.set_defaults(run=cmd_serve)
    status_parser = commands.add_parser(
        "status", help="one-screen health; exit 1 when something needs attention"
    )
    status_parser.add_argument("--format", choices=("table", "json"), default="table")
    status_parser.add_argument(
        "--dlq", action="append", default=[], metavar="QUEUE_URL",
        help="a dead-letter queue to count (repeatable; default $EVENTSTORE_DLQ_URLS)",
    )  # fmt: skip
    status_parser.add_argument("--endpoint-url", help="SQS endpoint (an emulator)")
    status_parser.add_argument("--region", help="AWS region of the queues")
    status_parser.set_defaults(run=cmd_status)
    export = commands.add_parser(
        "export", help="the log as Parquet by event day, for Athena; only what is new",
        description="Writes the events after DEST's checkpoint as DEST/dt=YYYY-MM-DD/"
        "events-FIRST-LAST.parquet and moves the checkpoint; a run after a crash writes "
        "nothing twice.",
    )  # fmt: skip
    export.add_argument("destination", metavar="DEST", help="a directory, or s3://BUCKET/PREFIX/")
    export.add_argument(
        "--range", type=_positive_int, default=500_000, dest="range_events", metavar="N",
        help="events per run step (each day of a step is one file; default 500000)",
    )  # fmt: skip
    export.add_argument("--endpoint-url", metavar="URL", help="with s3://: the S3 endpoint")
    export.add_argument("--region", help="with s3://: the AWS region")
    export.set_defaults(run=cmd_export)

    demo = commands.add_parser(
        "demo", help="the whole fan-out on this machine (moto server), into a fresh SQLite log",
        description="Runs the S3 -> SNS -> SQS -> Lambda fan-out locally and leaves the log in "
        "--db (a SQLite file, default ./eventstore.db; a previous demo log there is replaced).",
    )  # fmt: skip
    demo.add_argument("--template", metavar="FILE", help="template (default: infra/template.yaml)")
    demo.add_argument(
        "--serve", action="store_true",
        help="then serve the audit page over the demo's log (prints the URL; Ctrl-C stops)",
    )  # fmt: skip
    demo.add_argument("--port", type=int, default=8080, help="with --serve (default 8080; 0: any)")
    demo.set_defaults(run=cmd_demo)

    return parser


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _store(args: argparse.Namespace, *, create: bool = False) -> SqlEventStore:
    """The store of --db. Only commands that write pass `create`: a mistyped path given to a
    query must say so, not create an empty database and report on nothing."""
    url = resolve_url(args.db)
    check_sqlite_file(url, create=create)
    return open_store(url)


def _event_store(args: argparse.Namespace, *, create: bool = False) -> "EventStore":
    """The log with its projections (eventstore.wiring: the one place they are put together);
    `create` as for _store."""
    from eventstore.wiring import open_event_store

    url = resolve_url(args.db)
    check_sqlite_file(url, create=create)
    return open_event_store(url)


def _report_catch_up(event_store: "EventStore") -> None:
    """Catch every projection up, so a person's next query sees what was just stored."""
    for report in event_store.catch_up():
        if report.error:
            print(f"eventstore: projection {report.name} failed: {report.error}", file=sys.stderr)


def _warn_if_behind(event_store: "EventStore", name: str) -> int:
    """Say on stderr when a projection a query reads is behind the log; return its lag."""
    status = event_store.status(name)
    if status.state == "live":
        return 0
    print(
        f"eventstore: projection {name} is {status.state}, {status.lag} events behind the log"
        f" (head {status.head}); `eventstore projections catch-up` brings it up to date"
        + (f"; last error: {status.last_error}" if status.last_error else ""),
        file=sys.stderr,
    )
    return status.lag


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    url = resolve_url(args.db)
    check_sqlite_file(url, create=True)
    engine = create_engine(url)
    revision = upgrade_schema(engine)
    ensure_schema(engine, auto_upgrade_sqlite=False)  # at the head revision, yet damaged?
    print(f"database at revision {revision}")
    return EXIT_OK


def _open_input(name: str) -> BinaryIO:
    if name == "-":
        buffer = getattr(sys.stdin, "buffer", None)  # absent when stdin was replaced by text
        return buffer if buffer is not None else io.BytesIO(sys.stdin.read().encode("utf-8"))
    try:
        return open(name, "rb")
    except OSError as error:
        raise ConfigurationError(f"cannot read {name}: {error}") from None


def _deliveries(
    items: Iterable[Envelope | MalformedMessageError], summary: IngestSummary, progress: Progress
) -> Iterator[Delivery]:
    """Parse each envelope as it comes; failures are counted and reported at once, not kept."""
    for item in items:
        failure = item if isinstance(item, MalformedMessageError) else None
        if isinstance(item, Envelope):
            try:
                delivery = parse_envelope(item)
            except MalformedMessageError as error:
                failure = error
            else:
                summary.add_delivery(delivery)
                progress.advance(delivery.received)
                yield delivery
        if failure is not None:
            summary.failed += 1
            where = failure.message_id or "?"
            progress.message(
                f"eventstore: failed message {escape_controls(f'{where}: {failure.reason}')}"
            )
            progress.advance()


def cmd_ingest(args: argparse.Namespace) -> int:
    # Every input is opened before anything is stored: a typo fails the run, not half of it.
    inputs: list[tuple[str, BinaryIO]] = []
    try:
        for name in args.files:
            inputs.append((name, _open_input(name)))
        event_store = _event_store(args, create=True)
        summary = IngestSummary()
        for name, stream in inputs:
            progress = Progress(f"ingest {name}")
            envelopes = envelopes_of_stream(stream, name=name)
            deliveries = _deliveries(envelopes, summary, progress)
            append_deliveries(event_store.log, deliveries, summary, correlation_id=f"cli:{name}")
            if progress.enabled:
                progress.close()
    finally:
        for name, stream in inputs:
            if name != "-":
                stream.close()
    catching_up = Progress("catch-up")  # read-your-writes: the projections, before returning
    reports = event_store.runner.catch_up(progress=catching_up)
    if catching_up.enabled:
        catching_up.close()
    for report in reports:
        if report.error:
            print(f"eventstore: projection {report.name} failed: {report.error}", file=sys.stderr)
    print(json.dumps(summary.as_dict()))
    return EXIT_FAILED if summary.failed else EXIT_OK


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://BUCKET/KEY` with the key as typed (decoded)."""
    if not uri.startswith("s3://"):
        raise ConfigurationError(f"not an s3://BUCKET/KEY address: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        raise ConfigurationError(f"s3:// address needs a bucket and a key: {uri!r}")
    return bucket, key


def cmd_history(args: argparse.Namespace) -> int:
    bucket, key = parse_s3_uri(args.uri)
    rows = (event_row(s) for s in _store(args).iter_history(bucket, key))
    render(rows, EVENT_FIELDS, args.format, sys.stdout, table_fields=EVENT_TABLE_FIELDS)
    return EXIT_OK


def cmd_events(args: argparse.Namespace) -> int:
    query = EventQuery(
        bucket=args.bucket,
        prefix=args.prefix,
        since=parse_option_time(args.since, "--since") if args.since else None,
        until=parse_option_time(args.until, "--until") if args.until else None,
        types=tuple(args.type),
        principal=args.principal,
        limit=args.limit,
    )
    rows = (event_row(s) for s in _store(args).iter_events(query))
    render(rows, EVENT_FIELDS, args.format, sys.stdout, table_fields=EVENT_TABLE_FIELDS)
    return EXIT_OK


def cmd_objects(args: argparse.Namespace) -> int:
    from eventstore.wiring import CATALOG

    when = parse_option_time(args.as_of, "--as-of") if args.as_of else None
    event_store = _event_store(args)
    if when is not None:  # folded from the log itself: never behind
        entries = event_store.objects_as_of(
            when, bucket=args.bucket, prefix=args.prefix, include_deleted=args.include_deleted
        )
    else:
        _warn_if_behind(event_store, CATALOG)
        entries = event_store.objects(
            bucket=args.bucket, prefix=args.prefix, include_deleted=args.include_deleted
        )
    rows = (catalog_row(e) for e in entries)
    render(rows, CATALOG_FIELDS, args.format, sys.stdout, table_fields=CATALOG_TABLE_FIELDS)
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    from eventstore.projections.search import SearchIndexProjection
    from eventstore.search_command import run_search

    event_store = _event_store(args)
    _warn_if_behind(event_store, SearchIndexProjection.name)
    return run_search(args, event_store)


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        anchor = Anchor.parse(args.anchor) if args.anchor else None
    except ValueError as error:
        raise ConfigurationError(f"--anchor: {error}") from None
    event_store = _event_store(args)
    result = event_store.log.verify(anchor=anchor)
    # A chain cut short (and perhaps grown again) verifies by itself; the projections'
    # checkpoints remember the rows they folded, as an anchor does.
    faults = event_store.runner.faults()
    ok = result.ok and not faults
    _record_verify(event_store, result, ok=ok, anchor=args.anchor, faults=faults)
    if args.format == "table":
        if result.ok:
            print(
                f"ok: hash chain intact over {result.checked} events (head {result.head_position})"
            )
            if result.head_hash and not faults:
                print(f"anchor: {result.head_position}:{result.head_hash}")
        else:
            reason = escape_controls(result.reason or "")
            print(f"BROKEN at position {result.first_bad_position}: {reason}")
        for name, fault in sorted(faults.items()):
            print(f"BROKEN: projection {name}: {escape_controls(fault)}")
    else:
        report = {
            "ok": ok,
            "checked": result.checked,
            "head_position": result.head_position,
            "first_bad_position": result.first_bad_position,
            "reason": result.reason,
            "head_hash": result.head_hash,
            "projection_faults": faults,
        }
        print(json.dumps(report if args.format != "json" else [report]))
    return EXIT_OK if ok else EXIT_FAILED


def _record_verify(
    event_store: "EventStore",
    result: "VerifyResult",
    *,
    ok: bool,
    anchor: str | None,
    faults: dict[str, str],
) -> None:
    """Keep the result for `eventstore status`. A database this user may only read keeps
    nothing: verify still answers, and says why status will not know."""
    from eventstore.health import record_verify

    reason = result.reason or "; ".join(f"projection {n}: {f}" for n, f in sorted(faults.items()))
    try:
        record_verify(event_store.log.engine, result, ok=ok, anchor=anchor, reason=reason or None)
    except DBAPIError as error:
        print(
            f"eventstore: verify result not recorded: {escape_controls(str(error.orig))}",
            file=sys.stderr,
        )


def cmd_status(args: argparse.Namespace) -> int:
    from eventstore.status_command import status_command

    return status_command(
        _event_store(args),
        dlq=args.dlq,
        fmt=args.format,
        endpoint_url=args.endpoint_url,
        region=args.region,
    )


def _runner(args: argparse.Namespace, *, create: bool = False) -> "ProjectionRunner":
    return _event_store(args, create=create).runner


def cmd_projections_list(args: argparse.Namespace) -> int:
    rows = [
        {"name": p.name, "version": p.effective_version,
         "tables": ", ".join(t.name for t in p.tables), "description": p.description}
        for p in _runner(args).projections
    ]  # fmt: skip
    render(rows, ("name", "version", "tables", "description"), args.format, sys.stdout)
    return EXIT_OK


def cmd_projections_status(args: argparse.Namespace) -> int:
    rows = [
        {"name": s.name, "state": s.state, "code_version": s.code_version,
         "live_version": s.live_version, "position": s.position, "head": s.head, "lag": s.lag,
         "rebuild_position": s.rebuild_position, "error_position": s.error_position,
         "last_error": s.last_error, "filter": s.live_filter}
        for s in _runner(args).status()
    ]  # fmt: skip
    fields = (
        "name", "state", "code_version", "live_version", "position", "head", "lag",
        "rebuild_position", "error_position", "last_error", "filter",
    )  # fmt: skip
    render(rows, fields, args.format, sys.stdout, table_fields=fields[:-1])
    return EXIT_OK


def cmd_projections_catch_up(args: argparse.Namespace) -> int:
    runner = _runner(args, create=True)
    progress = Progress("catch-up", runner.store.head_position())
    reports = runner.catch_up(progress=progress)
    failed = [r for r in reports if r.error]
    progress.close(f"{len(reports)} projections, {len(failed)} failed")
    for report in failed:
        print(f"eventstore: projection {report.name} failed: {report.error}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_projections_rebuild(args: argparse.Namespace) -> int:
    runner = _runner(args, create=True)
    if args.all == bool(args.name):
        raise ConfigurationError("name one projection, or give --all")
    names = [p.name for p in runner.projections] if args.all else [args.name]
    return _rebuild(runner, names, EventQuery(), dry_run=args.dry_run)


def _rebuild(
    runner: "ProjectionRunner", names: list[str], query: EventQuery, *, dry_run: bool
) -> int:
    head = runner.store.head_position()
    if dry_run:
        report: list[dict[str, object]] = []
        for name in names:
            progress = Progress(f"dry run {name}", head)
            diffs = runner.dry_run(name, event_filter=query, progress=progress)
            progress.close()
            report.append({"projection": name, "tables": [
                {"table": d.table, "live_rows": d.live_rows, "rebuilt_rows": d.rebuilt_rows,
                 "only_live": d.only_live, "only_rebuilt": d.only_rebuilt,
                 "samples_only_live": [_json_safe(r) for r in d.samples_only_live],
                 "samples_only_rebuilt": [_json_safe(r) for r in d.samples_only_rebuilt]}
                for d in diffs]})  # fmt: skip
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return EXIT_OK
    progress = Progress("rebuild", head * len(names))
    reports = runner.rebuild(names, event_filter=query, progress=progress)
    failed = [r for r in reports if r.error]
    progress.close(f"{sum(r.swapped for r in reports)} swapped in, {len(failed)} failed")
    for failure in failed:
        print(f"eventstore: projection {failure.name} failed: {failure.error}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _json_safe(row: dict[str, object]) -> dict[str, object]:
    return {k: (format_time(v) if isinstance(v, datetime) else v) for k, v in row.items()}


def _streamed(store: SqlEventStore, statement: "sa.Select[Any]") -> Iterator["sa.Row[Any]"]:
    """The rows of one query (one snapshot), fetched a page at a time as they are written."""
    from eventstore.store import base

    with store.engine.connect() as connection:
        yield from connection.execution_options(yield_per=base.PAGE_ROWS).execute(statement)


def cmd_projections_show(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    event_store = _event_store(args)
    runner = event_store.runner
    projection, table = _projection_table(runner, args.name)
    _warn_if_behind(event_store, projection.name)
    with runner.store.engine.connect() as connection:
        if not sa.inspect(connection).has_table(table.name):
            raise ConfigurationError(
                f"projection {args.name} is not built yet: see `projections status`"
            )
    rows = (row._asdict() for row in _streamed(runner.store, sa.select(table).limit(args.limit)))
    render(rows, [c.name for c in table.columns], args.format, sys.stdout)
    return EXIT_OK


def _projection_table(runner: "ProjectionRunner", name: str) -> tuple["Projection", "sa.Table"]:
    """A projection's first table, or the projection that keeps the table `name`."""
    for projection in runner.projections:
        if projection.name == name:
            return projection, projection.tables[0]
        for table in projection.tables:
            if table.name == name:
                return projection, table
    runner.get(name)  # raises, listing the projections
    raise AssertionError("unreachable")


def replay_from_log(args: argparse.Namespace) -> int:
    """Rebuild projections from the log, optionally from a filtered part of it only."""
    runner = _runner(args, create=True)
    names = args.projection or [p.name for p in runner.projections]
    query = EventQuery(
        bucket=args.bucket,
        prefix=args.prefix,
        since=parse_option_time(args.since, "--since") if args.since else None,
        until=parse_option_time(args.until, "--until") if args.until else None,
        types=tuple(args.type),
    )
    return _rebuild(runner, names, query, dry_run=False)


def replay_from_aws(args: argparse.Namespace) -> int:
    """Back-fill the log from the archive bucket, S3's version listing or an SQS queue."""
    from eventstore.replay.command import run_replay

    only_log = [f"--{n}" for n in ("projection", "bucket", "prefix", "type") if getattr(args, n)]
    if only_log:
        raise ConfigurationError(f"{', '.join(only_log)} apply only to --from log")
    return run_replay(
        args.source,
        args.target,
        event_store=lambda: _event_store(args, create=True),
        endpoint_url=args.endpoint_url,
        region=args.region,
        since=parse_option_time(args.since, "--since") if args.since else None,
        until=parse_option_time(args.until, "--until") if args.until else None,
    )


REPLAY_SOURCES: dict[str, Callable[[argparse.Namespace], int]] = {
    "log": replay_from_log,
    "archive": replay_from_aws,
    "s3": replay_from_aws,
    "sqs": replay_from_aws,
}


def cmd_replay(args: argparse.Namespace) -> int:
    return REPLAY_SOURCES[args.source](args)


def cmd_reconcile(args: argparse.Namespace) -> int:
    from eventstore.replay.reconcile_command import run_reconcile

    return run_reconcile(
        args.target,
        event_store=lambda: _event_store(args),
        inventory=args.inventory,
        repair=args.repair,
        depth=args.depth,
        fmt=args.format,
        endpoint_url=args.endpoint_url,
        region=args.region,
    )


def cmd_trace(args: argparse.Namespace) -> int:
    from eventstore.reactors.commands import OUTCOMES, trace_command

    bucket, key = parse_s3_uri(args.uri)
    event_store = _event_store(args)
    lag = _warn_if_behind(event_store, OUTCOMES)
    return trace_command(
        event_store, bucket, key, version_id=args.version_id, fmt=args.format, lag=lag
    )


def cmd_reactors_list(args: argparse.Namespace) -> int:
    from eventstore.reactors.commands import list_command

    return list_command(args.format)


def cmd_reactors_status(args: argparse.Namespace) -> int:
    from eventstore.reactors.commands import OUTCOMES, status_command

    event_store = _event_store(args)
    _warn_if_behind(event_store, OUTCOMES)
    return status_command(event_store, args.name, args.format)


def cmd_reactors_run(args: argparse.Namespace) -> int:
    from eventstore.reactors.commands import run_command

    return run_command(
        lambda: _event_store(args),
        args.name,
        bucket=args.bucket,
        prefix=args.prefix,
        since=parse_option_time(args.since, "--since") if args.since else None,
        until=parse_option_time(args.until, "--until") if args.until else None,
        types=tuple(args.type),
        dry_run=args.dry_run,
        endpoint_url=args.endpoint_url,
        region=args.region,
        chunk_size=args.chunk,
        fmt=args.format,
    )


def cmd_reactors_check_template(args: argparse.Namespace) -> int:
    """Exit 1, naming each difference, when the template and the reactors disagree."""
    from eventstore.local.reactors import reactor_drift

    differences = reactor_drift(args.template)
    for difference in differences:
        print(difference)
    if differences:
        return EXIT_FAILED
    print("the template's reactor functions match the reactors' declarations")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from eventstore.api.server import serve

    event_store = _event_store(args)  # opened once: every request shares its engine
    serve(lambda: event_store, host=args.host, port=args.port)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from eventstore.export.command import export_command

    return export_command(
        _store(args),
        args.destination,
        range_events=args.range_events,
        endpoint_url=args.endpoint_url,
        region=args.region,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from eventstore.demo import run_demo

    result = run_demo(args.db, template=args.template)
    if not result.verified:
        return EXIT_FAILED
    if args.serve:
        from eventstore.api.server import serve
        from eventstore.wiring import open_event_store

        event_store = open_event_store(result.db_url)

        def ready(url: str) -> None:
            print(f"\nThe audit page over this log: open {url} (Ctrl-C stops)", flush=True)

        serve(lambda: event_store, port=args.port, ready=ready)  # Ctrl-C: exit 130
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except EventStoreError as error:
        print(f"eventstore: error: {escape_controls(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except DBAPIError as error:
        # What the checks on opening could not see, e.g. a page of the file damaged.
        print(f"eventstore: error: database: {escape_controls(str(error.orig))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        # Each batch is its own transaction and event ids are unique: a re-run completes.
        print("eventstore: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
