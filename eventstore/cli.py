"""The `eventstore` command line: thin translation from arguments to library calls."""

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from eventstore.core.parsing import envelopes_of_file
from eventstore.core.timeutil import parse_option_time
from eventstore.errors import ConfigurationError, EventStoreError
from eventstore.ingest import IngestSummary, append_deliveries, parse_all
from eventstore.output import (
    CATALOG_FIELDS,
    CATALOG_TABLE_FIELDS,
    EVENT_FIELDS,
    EVENT_TABLE_FIELDS,
    FORMATS,
    catalog_row,
    event_row,
    render,
)
from eventstore.store.base import EventQuery
from eventstore.store.database import create_engine, resolve_url, upgrade_schema
from eventstore.store.sql import SqlEventStore, open_store

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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
    _add_format(verify)
    verify.set_defaults(run=cmd_verify)

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


def _store(args: argparse.Namespace) -> SqlEventStore:
    return open_store(args.db)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    engine = create_engine(resolve_url(args.db))
    revision = upgrade_schema(engine)
    print(f"database at revision {revision}")
    return EXIT_OK


def _read_input(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"cannot read {name}: {error}") from None


def cmd_ingest(args: argparse.Namespace) -> int:
    texts = [(name, _read_input(name)) for name in args.files]  # fail before storing anything
    store = _store(args)
    summary = IngestSummary()
    for name, text in texts:
        deliveries = parse_all(envelopes_of_file(text, name=name), summary)
        append_deliveries(store, deliveries, summary, correlation_id=f"cli:{name}")
    for failure in summary.failures:
        print(f"eventstore: failed message {failure.message_id}: {failure.reason}", file=sys.stderr)
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
    rows = [event_row(s) for s in _store(args).history(bucket, key)]
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
    rows = [event_row(s) for s in _store(args).select_events(query)]
    render(rows, EVENT_FIELDS, args.format, sys.stdout, table_fields=EVENT_TABLE_FIELDS)
    return EXIT_OK


def cmd_objects(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.as_of:
        when = parse_option_time(args.as_of, "--as-of")
        entries = store.objects_as_of(
            when, bucket=args.bucket, prefix=args.prefix, include_deleted=args.include_deleted
        )
    else:
        entries = store.objects(
            bucket=args.bucket, prefix=args.prefix, include_deleted=args.include_deleted
        )
    rows = [catalog_row(e) for e in entries]
    render(rows, CATALOG_FIELDS, args.format, sys.stdout, table_fields=CATALOG_TABLE_FIELDS)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    result = _store(args).verify()
    if args.format == "table":
        if result.ok:
            print(f"ok: hash chain intact over {result.checked} events (head {result.head_position})")
        else:
            print(f"BROKEN at position {result.first_bad_position}: {result.reason}")
    else:
        report = {
            "ok": result.ok,
            "checked": result.checked,
            "head_position": result.head_position,
            "first_bad_position": result.first_bad_position,
            "reason": result.reason,
        }
        print(json.dumps(report if args.format != "json" else [report]))
    return EXIT_OK if result.ok else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except EventStoreError as error:
        print(f"eventstore: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
