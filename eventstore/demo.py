"""`eventstore demo`: the whole fan-out on this machine. moto's server stands in for AWS, the
resources come from infra/template.yaml, the consumers run under the local event-source
mapping, and the resulting SQLite log is left behind for further `eventstore` commands."""

import logging
import os
import shlex
import shutil
import sqlite3
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import boto3

from eventstore.core.parsing import parse_sqs_body
from eventstore.errors import ConfigurationError, MalformedMessageError
from eventstore.local.embedded import embedded_aws
from eventstore.local.fanout import MOTO_SKIPPED_TYPES, create_fanout
from eventstore.local.poller import SqsPoller, drain
from eventstore.output import (
    CATALOG_FIELDS,
    CATALOG_TABLE_FIELDS,
    EVENT_FIELDS,
    catalog_row,
    event_row,
    render,
)
from eventstore.store.database import parse_url
from eventstore.store.sql import open_store
from eventstore.wiring import open_event_store

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

    from eventstore.local.fanout import Fanout, QueueInfo
    from eventstore.local.poller import Handler
    from eventstore.wiring import EventStore

STACK_NAME = "eventstore-demo"
DEMO_BUCKET = "eventstore-demo-data"
HISTORY_KEY = "sales/2026/03/orders.csv"
POLLERS_PER_QUEUE = 2
DRAIN_TIMEOUT = 40.0
HISTORY_FIELDS = ("position", "event_time", "event_name", "key", "size", "etag", "source")

# The environment the consumers see, as Lambda would give it (credentials are moto's dummies).
_LAMBDA_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's placeholder
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_METRICS_DISABLED": "true",
    # The consumers' errors (a reactor's failed attempts) would print as JSON in the middle of
    # the story; step 8 shows them (eventstore reactors status).
    "POWERTOOLS_LOG_LEVEL": "CRITICAL",
    "POWERTOOLS_DEV": "false",
}


@dataclass
class DemoResult:
    """What the demo did, for its caller (the tests read it)."""

    db_url: str
    seconds: float = 0.0
    uploads: dict[str, int] = field(default_factory=dict)
    queue_events: dict[str, Counter[str]] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    archived: int = 0
    events: int = 0
    verified: bool = False
    search_hits: list[str] = field(default_factory=list)  # the uploads the search found
    reactor_failures: dict[str, int] = field(default_factory=dict)  # failing events per reactor


def run_demo(
    db_url: str | None = None,
    *,
    template: Path | str | None = None,
    out: TextIO | None = None,
) -> DemoResult:
    """Run the demo into the SQLite file `db_url` (default ./eventstore.db), printing to `out`."""
    out = out or sys.stdout
    started = time.monotonic()
    path = _demo_database(db_url)
    url = f"sqlite:///{path}"
    replaced = _reset_database(path)
    result = DemoResult(db_url=url)
    say = _printer(out)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log between the output
    # Here several reactor functions (one per Lambda container on AWS) run in one process, so
    # their concurrent invocations meet in Powertools' shared metric set, which warns that a
    # dimension is set twice. The demo publishes no metrics.
    warnings.filterwarnings("ignore", message="Dimension 'reactor' has already been added")
    with embedded_aws() as endpoint:
        env = {**_LAMBDA_ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint, "EVENTSTORE_DB_URL": url}
        with _environment(env):
            say("eventstore demo: the S3 -> SNS -> SQS -> Lambda fan-out on this machine")
            say(f"  embedded AWS   moto server at {endpoint} (stopped when the demo ends)")
            say(
                f"  event log      {path}"
                + ("  (the previous demo log was replaced)" if replaced else "")
            )
            open_store(url)  # creates the schema by running the migrations
            _run(result, endpoint, template, say, out)
    result.seconds = time.monotonic() - started
    say(f"\nDone in {result.seconds:.1f} s. Try next:")
    db = shlex.quote(url)
    for command in (
        f"history {shlex.quote(f's3://{DEMO_BUCKET}/données/été/résumé.csv')}",
        "events --type 'ObjectCreated:*' --prefix sales/",
        "objects --include-deleted --format json",
        f"trace s3://{DEMO_BUCKET}/{UPLOAD_KEY} --format json",
        f"trace s3://{DEMO_BUCKET}/converted/2026/03/budget.jsonl",
        "reactors status",
        "search prototype --prefix uploads/",
        "projections status",
        "verify",
    ):
        say(f"  {command_prefix()} --db {db} {command}")
    return result


def command_prefix() -> str:
    """How to run `eventstore` from here, as printed for the reader to copy: the bare name
    only when it is on the PATH as the program running now (`./dev demo` runs
    .venv/bin/eventstore, which is not on the PATH)."""
    program = Path(sys.argv[0])
    on_path = shutil.which("eventstore")
    if program.name == "eventstore":
        if on_path is not None and Path(on_path).resolve() == program.resolve():
            return "eventstore"
        try:
            shown = program.resolve().relative_to(Path.cwd())
        except ValueError:
            shown = program.resolve()
        return shlex.quote(str(shown) if shown.parent != Path() else f"./{shown}")
    return f"{shlex.quote(sys.executable)} -m eventstore.cli"


def _run(
    result: DemoResult,
    endpoint: str,
    template: Path | str | None,
    say: Callable[[str], None],
    out: TextIO,
) -> None:
    fanout = create_fanout(
        template_path=template,
        parameters={"BucketName": DEMO_BUCKET, "CodeBucket": "not-used-locally"},
        stack_name=STACK_NAME,
        endpoint_url=endpoint,
        skip_types=MOTO_SKIPPED_TYPES,
    )
    _describe_fanout(fanout, say)

    session = boto3.session.Session(region_name=fanout.region)
    s3: S3Client = session.client("s3", endpoint_url=endpoint)
    sqs = session.client("sqs", endpoint_url=endpoint)
    result.uploads = _upload(s3, fanout.buckets["Bucket"])
    summary = ", ".join(f"{n} {k}{'' if n == 1 else 's'}" for k, n in result.uploads.items())
    say(f"\n2. Changed the bucket s3://{fanout.buckets['Bucket']}: {summary}")

    pollers: list[SqsPoller] = []
    tallies: dict[str, Counter[str]] = {}
    lock = threading.Lock()
    for queue in fanout.source_queues():
        consumer = fanout.consumer_of(queue.logical_id)
        handler: Handler = _acknowledge  # a filtered queue without a function: just count
        if consumer is not None:
            # Queue URLs and bucket names may be shared process-wide; each reactor function's
            # own reactor is bound by its handler (ConsumerSpec.load_handler).
            os.environ.update(consumer.shared_environment() | {"EVENTSTORE_DB_URL": result.db_url})
            handler = consumer.load_handler()
        source = fanout.event_source(queue.logical_id, concurrency=POLLERS_PER_QUEUE)
        tallies[queue.logical_id] = Counter()
        pollers.append(
            SqsPoller(
                sqs, source, _tallying(handler, tallies[queue.logical_id], lock), retry_after=1
            )
        )
    drained = time.monotonic()
    drain(pollers, timeout=DRAIN_TIMEOUT)
    result.queue_events = tallies
    for queue in fanout.source_queues():
        dead = fanout.queue_for_dead_letters_of(queue.logical_id)
        if dead is not None:
            result.dead_letters[queue.logical_id] = _depth(sqs, dead)
    _describe_queues(
        fanout, pollers=pollers, tallies=tallies, result=result,
        seconds=time.monotonic() - drained, say=say,
    )  # fmt: skip

    event_store = open_event_store(result.db_url)
    # The consumers catch projections up within their time budget; a person reads after all.
    for report in event_store.catch_up():
        if report.error:
            say(f"  projection {report.name} failed: {report.error}")
    store = event_store.log
    history = [event_row(s) for s in store.history(fanout.buckets["Bucket"], HISTORY_KEY)]
    say(f"\n4. History of s3://{fanout.buckets['Bucket']}/{HISTORY_KEY} (eventstore history)")
    render(history, EVENT_FIELDS, "table", out, table_fields=HISTORY_FIELDS)
    catalog = [catalog_row(e) for e in event_store.objects(include_deleted=True)]
    say("\n5. The object catalog (eventstore objects --include-deleted)")
    render(catalog, CATALOG_FIELDS, "table", out, table_fields=CATALOG_TABLE_FIELDS)

    _show_reactors(event_store, fanout.buckets["Bucket"], result, say, out)

    archive_bucket = fanout.buckets["ArchiveBucket"]
    listing = s3.list_objects_v2(Bucket=archive_bucket).get("Contents", [])
    result.archived = len(listing)
    example = listing[0]["Key"] if listing else "(none)"
    say(
        f"\n9. Archive: {result.archived} raw notifications in s3://{archive_bucket}/,"
        f" e.g. {example}"
    )

    verdict = store.verify()
    result.events = verdict.checked
    result.verified = verdict.ok
    if verdict.ok:
        say(f"\n10. verify: ok, hash chain intact over {verdict.checked} events")
    else:
        say(f"\n10. verify: BROKEN at position {verdict.first_bad_position}: {verdict.reason}")
    store.engine.dispose()


def _show_reactors(
    event_store: "EventStore",
    bucket: str,
    result: DemoResult,
    say: Callable[[str], None],
    out: TextIO,
) -> None:
    """The reactors' side of the story: an upload's lineage, a search, their status."""
    from eventstore.projections.search import search
    from eventstore.reactors.commands import lineage_lines, status_row
    from eventstore.reactors.registry import load_reactors
    from eventstore.reactors.status import reactor_statuses
    from eventstore.reactors.trace import trace
    from eventstore.search_command import SEARCH_FIELDS, SEARCH_TABLE_FIELDS, hit_row

    say(f"\n6. Lineage of s3://{bucket}/{UPLOAD_KEY} (eventstore trace)")
    for line in lineage_lines(trace(event_store.log, bucket, UPLOAD_KEY)):
        say(f"  {line}")
    hits = search(event_store.log.engine, SEARCH_WORDS)
    result.search_hits = [hit.cause_key for hit in hits]
    say(f"\n7. Full-text search over extracted text (eventstore search {SEARCH_WORDS})")
    render(
        [hit_row(h) for h in hits], SEARCH_FIELDS, "table", out, table_fields=SEARCH_TABLE_FIELDS
    )
    statuses = reactor_statuses(event_store.log.engine, load_reactors())
    result.reactor_failures = {s.reactor: s.failing_events for s in statuses if s.failing}
    say("\n8. Reactors (eventstore reactors status)")
    rows = [status_row(s) for s in statuses]
    render(rows, tuple(rows[0]) if rows else (), "table", out, table_fields=_STATUS_FIELDS)


_STATUS_FIELDS = (
    "reactor", "processed", "produced", "failed_attempts", "failing_events", "latency_p50_s",
    "last_error",
)  # fmt: skip


def _describe_fanout(fanout: "Fanout", say: Callable[[str], None]) -> None:
    say(f"\n1. Created from infra/template.yaml (stack {fanout.stack_name}):")
    say(f"  bucket s3://{fanout.buckets['Bucket']} -> topic {fanout.topics['Topic']}")
    consumers = {c.queue: c for c in fanout.consumers}
    for subscription in fanout.subscriptions:
        queue = fanout.queues[subscription.queue]
        dead = fanout.queue_for_dead_letters_of(queue.logical_id)
        routing = (
            "only " + _filter_text(subscription.filter_policy)
            if subscription.filter_policy
            else "every event"
        )
        body = (
            "S3 notification (raw delivery)"
            if subscription.raw_message_delivery
            else "SNS envelope"
        )
        consumer = consumers.get(queue.logical_id)
        runs = "no function in the template: the demo reads and counts"
        if consumer is not None:
            what = f"reactor {consumer.reactor}" if consumer.reactor else consumer.handler
            runs = (
                f"{what} (batch {consumer.batch_size},"
                f" window {consumer.batching_window:g} s, {POLLERS_PER_QUEUE} pollers)"
            )
        say(f"  queue {queue.name:<30} {routing}; body: {body}")
        dead_name = dead.name if dead else "-"
        say(f"  {'':<36} DLQ {dead_name} after {queue.max_receive_count} receives; {runs}")
    if "CsvOutputQueue" in fanout.queues:
        say(f"  queue {fanout.queues['CsvOutputQueue'].name:<30} what csv-to-json converted")
    if "CopyTargetBucket" in fanout.buckets:
        say(f"  bucket s3://{fanout.buckets['CopyTargetBucket']} where copy-to-bucket copies")
    if fanout.skipped:
        say(f"  not created in moto: {', '.join(fanout.skipped)} (moto misreads their conditions)")


def _filter_text(policy: dict[str, Any]) -> str:
    """An S3 notification filter policy (MessageBody scope) in a few words:
    `ObjectCreated:*, key uploads/*`."""
    record = policy.get("Records", {})
    parts = [", ".join(_pattern(n) for n in record.get("eventName", []))]
    keys = record.get("s3", {}).get("object", {}).get("key", [])
    if keys:
        parts.append("key " + " or ".join(_pattern(k) for k in keys))
    return ", ".join(p for p in parts if p)


def _pattern(condition: Any) -> str:
    if isinstance(condition, dict) and "prefix" in condition:
        return f"{condition['prefix']}*"
    if isinstance(condition, dict) and "suffix" in condition:
        return f"*{condition['suffix']}"
    return str(condition)


def _describe_queues(
    fanout: "Fanout",
    *,
    pollers: list[SqsPoller],
    tallies: dict[str, Counter[str]],
    result: DemoResult,
    seconds: float,
    say: Callable[[str], None],
) -> None:
    say(f"\n3. Consumers drained every queue in {seconds:.1f} s; what each queue delivered:")
    for queue, poller in zip(fanout.source_queues(), pollers, strict=True):
        stats = poller.stats
        names = ", ".join(
            f"{name} x{count}" for name, count in sorted(tallies[queue.logical_id].items())
        )
        dead = result.dead_letters.get(queue.logical_id, 0)
        say(
            f"  {queue.name:<30} {stats.received:>3} messages in {stats.invocations:>2} batches, "
            f"{stats.deleted:>3} deleted, {dead} dead-lettered: {names or '-'}"
        )  # fmt: skip
    say(
        "  (moto emits an extra ObjectTagging:Put after every upload, and its records carry no"
        " sequencer or versionId; real S3's do)"
    )


def _tallying(handler: "Handler", tally: Counter[str], lock: threading.Lock) -> "Handler":
    """`handler`, counting the S3 event names each batch carries (test events included)."""

    def counted(event: dict[str, Any], context: Any) -> Any:
        names: list[str] = []
        for record in event.get("Records", []):
            try:
                delivery = parse_sqs_body(record["body"], message_id=record["messageId"])
            except MalformedMessageError:
                names.append("(malformed)")
                continue
            names.extend(e.event_name for e in delivery.events)
            names.extend(["s3:TestEvent (skipped)"] * delivery.skipped)
        with lock:
            tally.update(names)
        return handler(event, context)

    return counted


def _acknowledge(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"batchItemFailures": []}


def _depth(sqs: Any, queue: "QueueInfo") -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


# --- the bucket's story -------------------------------------------------------------------------
UPLOAD_KEY = "uploads/2026/03/budget.csv"
BROKEN_KEY = "uploads/2026/03/broken.csv"
SEARCH_WORDS = "quarterly budget"
_UPLOAD_CSV = (
    "department;quarter;budget;note\n"
    'Research;Q1;120000;"prototype, phase 2"\n'
    "Operations;Q1;80000;quarterly budget review\n"
)
_NOTES = (
    "Meeting notes, 3 March 2026.\n"
    "The quarterly budget is approved; Research gets the prototype funding.\n"
)
_CSV_V1 = "order_id,customer,amount\n1001,ACME,129.90\n1002,Globex,42.00\n"
_CSV_V2 = _CSV_V1 + "1003,Initech,310.25\n1004,Umbrella,18.75\n"


def _upload(s3: "S3Client", bucket: str) -> dict[str, int]:
    """Puts, an overwrite, a copy, a tagging and deletes, with awkward keys. Returns counts."""
    counts: Counter[str] = Counter()

    def put(key: str, body: str, content_type: str) -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode("utf-8"), ContentType=content_type)
        counts["new object"] += 1

    put(HISTORY_KEY, _CSV_V1, "text/csv")
    put("sales/2026/03/refunds.csv", "order_id,amount\n1002,42.00\n", "text/csv")
    put(
        "config/pipelines/daily.json",
        '{"schedule": "0 2 * * *", "targets": ["sales/"]}',
        "application/json",
    )
    put("reports/q1 summary.json", '{"quarter": "Q1", "revenue": 500.90}', "application/json")
    put("données/été/résumé.csv", "ville,ventes\nLyon,12\nNantes,7\n", "text/csv")
    put("exports/q1+q2 totals.csv", "quarter,total\nQ1,500.90\nQ2,0\n", "text/csv")
    put(
        "logs/app/2026-03-01.jsonl", '{"level": "info", "msg": "started"}\n', "application/x-ndjson"
    )
    put("tmp/scratch.json", '{"draft": true}', "application/json")
    # For the reactors (uploads/: csv-to-json, extract-text, copy-to-bucket): a CSV the
    # sniffer reads as semicolon-separated, notes to search, and a CSV with a short row, which
    # csv-to-json refuses on every attempt until its queue dead-letters it.
    put(UPLOAD_KEY, _UPLOAD_CSV, "text/csv")
    put("uploads/meeting-notes.txt", _NOTES, "text/plain")
    put(BROKEN_KEY, "sku,name,price\nA-1,Widget,9.90\nA-2,Gadget\n", "text/csv")
    put(HISTORY_KEY, _CSV_V2, "text/csv")  # the overwrite: a second version
    counts["overwrite"] += 1
    counts["new object"] -= 1
    s3.copy_object(
        Bucket=bucket,
        Key="backup/sales/2026-03-orders.csv",
        CopySource={"Bucket": bucket, "Key": HISTORY_KEY},
    )
    counts["copy"] += 1
    s3.put_object_tagging(
        Bucket=bucket,
        Key="reports/q1 summary.json",
        Tagging={"TagSet": [{"Key": "classification", "Value": "internal"}]},
    )
    counts["tagging"] += 1
    for key in ("tmp/scratch.json", "sales/2026/03/refunds.csv"):
        # Versioned bucket: delete every version, so the object is gone for good (moto emits
        # ObjectRemoved:Delete for the last one; it emits nothing for a delete marker).
        versions = s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
        for version in versions:
            if version["Key"] == key:
                s3.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
        counts["permanent delete"] += 1
    return dict(counts)


# --- plumbing -----------------------------------------------------------------------------------
def _demo_database(db_url: str | None) -> Path:
    """The SQLite file the demo writes: --db if given (SQLite only), else ./eventstore.db.

    $EVENTSTORE_DB_URL is deliberately not used: the demo replaces its database."""
    if not db_url:
        return Path.cwd() / "eventstore.db"
    parsed = parse_url(db_url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        raise ConfigurationError(
            "the demo writes a SQLite file it may replace: give --db sqlite:///path/to/demo.db"
        )
    return Path(parsed.database).expanduser().resolve()


def _reset_database(path: Path) -> bool:
    """Remove a previous demo log at `path`; refuse to touch anything else. True if replaced."""
    if not path.exists():
        return False
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {
                r[0]
                for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            buckets = (
                {r[0] for r in connection.execute("SELECT DISTINCT bucket FROM events")}
                if "events" in tables
                else set()
            )
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise ConfigurationError(
            f"{path} is not an event log the demo made ({error}); left alone"
        ) from None
    others = buckets - {DEMO_BUCKET}
    if others or (tables and "events" not in tables):
        raise ConfigurationError(
            f"{path} holds events of other buckets ({', '.join(sorted(others))}), not a demo log: "
            "left alone. Pass --db sqlite:///demo.db to run the demo elsewhere."
            if others
            else f"{path} is not an event log; left alone. Pass --db sqlite:///demo.db."
        )
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return True


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the demo's duration; restore the previous ones after."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _printer(out: TextIO) -> Callable[[str], None]:
    def say(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    return say
