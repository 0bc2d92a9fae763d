"""PostgreSQL benchmark: the ingest handler with concurrent writers, next to raw psycopg and the
eventsourcing library, and audit queries on a log of a million events.

    python bench/bench_postgres.py [--events N] [--rows-1m N] [--skip-1m] [--durable]

Starts a throwaway PostgreSQL (tests/postgres_server.py) unless EVENTSTORE_BENCH_POSTGRES_URL
names one (its role must be able to CREATE DATABASE). Every contender gets a fresh database
whose schema the migrations built, and the same number of events of about 1 KB each.

* handler   `consumers.ingest.handler` in 1, 4 and 8 spawned processes (like Lambda
            containers), each invoked with Lambda SQS events of 10 or 100 messages, each
            message an SNS notification of one S3 record: parse, identity, the serialised
            append with the hash chain, the object catalog and its checkpoint, Powertools
            logging and metrics. One warm-up invocation per process is not timed (cold start).
* log only  `SqlEventStore.append` of the parsed events with no projections, in the same
            1, 4 and 8 processes: what the log itself costs, without the object catalog.
* psycopg   `executemany` (batch 10 and 100, one transaction each) and COPY (batch 1000) of
            the equivalent rows, prepared before the clock starts, into a copy of `events`
            (same columns and indexes): the floor of what any append can cost.
* jsonb     the same executemany with the verbatim record column as jsonb instead of text.
* es        the eventsourcing library's PostgreSQL persistence (PERSISTENCE_MODULE=
            eventsourcing.postgres, POSTGRES_DBNAME/HOST/PORT/USER/PASSWORD): one aggregate per
            S3 record, `Application.save(*aggregates)` per batch, single writer; and its
            recorder's `insert_events` directly.

Then the audit queries: a log of --rows-1m events is filled with INSERT ... SELECT
generate_series (a benchmark fixture: its hash chain is not valid), and an object's history and
a prefix + time-range audit query are timed through SqlEventStore, with their EXPLAIN plans.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
import sqlalchemy as sa
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.domain import event as es_event
from eventsourcing.persistence import InfrastructureFactory, StoredEvent

from eventstore.core.hashing import GENESIS_HASH, chain_hash
from eventstore.store.base import EventQuery
from eventstore.store.database import create_engine
from eventstore.store.schema import events
from eventstore.store.sql import SqlEventStore, _event_filters, _padded_sequencer
from tests.notification_factory import (
    T0,
    new_events,
    notification,
    s3_record,
    sequencer_of,
    sqs_lambda_event,
)
from tests.postgres_server import (
    PostgresServer,
    TestDatabases,
    libpq_url,
)

ENV_URL = "EVENTSTORE_BENCH_POSTGRES_URL"
HANDLER_LABELS = ("handler", "handler, no catch-up", "log only")
PADDING = 420  # bytes of unknown fields, for S3 records of about 1 KB
COLUMNS = (
    "position", "event_id", "stream", "event_name", "event_time", "bucket", "key", "version_id",
    "sequencer", "size", "etag", "principal_id", "source_ip", "request_id", "region", "source",
    "causation_id", "correlation_id", "record", "recorded_at", "hash",
)  # fmt: skip


# -- workload ---------------------------------------------------------------------------


def records_of(writer: int, start: int, count: int) -> list[dict[str, Any]]:
    return [
        s3_record(
            "bench-bucket", f"w{writer}/data/{i:07d}.parquet", sequencer=sequencer_of(i + 1),
            version_id=f"v{i}", when=T0 + timedelta(milliseconds=i), size=i,
            request_id=f"REQ{writer:02d}{i:010d}", padding=PADDING,
        )
        for i in range(start, start + count)
    ]  # fmt: skip


def lambda_events(writer: int, start: int, count: int, batch: int) -> list[dict[str, Any]]:
    """Lambda SQS events of `batch` messages, one SNS-wrapped S3 record per message."""
    records = records_of(writer, start, count)
    return [
        sqs_lambda_event([notification([r]) for r in records[i : i + batch]])
        for i in range(0, count, batch)
    ]


class _Context:
    """A Lambda context; `remaining_ms` is the time the invocation has left, which bounds the
    handler's in-invocation projection catch-up (under 3 s left: none at all)."""

    remaining_ms = 300_000
    function_name = "s3-eventstore-ingest"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:s3-eventstore-ingest"
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/s3-eventstore-ingest"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def handler_writer(
    url: str, writer: int, count: int, batch: int, start_at: float, *, catch_up: bool
) -> tuple[float, float]:
    """One Lambda container: warm up, wait for the start, invoke; return (start, end) times."""
    os.environ["EVENTSTORE_DB_URL"] = url
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- Powertools logs and metrics, as on Lambda
    # Imported only now: Powertools binds its log stream to sys.stdout when it is created.
    from consumers.ingest import handler
    from eventstore.projections.runner import ProjectionRunner
    from eventstore.store.pg_append import LockHolds

    context = _Context()
    if not catch_up:
        context.remaining_ms = 2_000
    handler(lambda_events(writer, 10_000_000, batch, batch)[0], context)  # cold start, untimed
    invocations = lambda_events(writer, 0, count, batch)
    caught_up = {"seconds": 0.0, "cpu_seconds": 0.0, "events": 0}
    original = ProjectionRunner.catch_up

    def timed_catch_up(self: Any, **options: Any) -> Any:
        started, cpu = time.perf_counter(), time.process_time()
        reports = original(self, **options)
        caught_up["seconds"] += time.perf_counter() - started
        caught_up["cpu_seconds"] += time.process_time() - cpu
        caught_up["events"] += sum(r.applied for r in reports)
        return reports

    ProjectionRunner.catch_up = timed_catch_up  # type: ignore[method-assign]
    LockHolds.enabled, LockHolds.seconds = True, []
    time.sleep(max(0.0, start_at - time.time()))
    began, cpu = time.perf_counter(), time.process_time()
    for event in invocations:
        response = handler(event, context)
        if response["batchItemFailures"]:
            raise RuntimeError(f"handler failed messages: {response}")
    ended = time.perf_counter()
    STATS_OF_CHILD.update(
        lock_holds=list(LockHolds.seconds), handler_cpu_seconds=time.process_time() - cpu,
        **caught_up,
    )  # fmt: skip
    return began, ended


# What a handler process measured besides its time: the append lock's hold times, and the
# seconds and events of its catch-ups (sent back with its result).
STATS_OF_CHILD: dict[str, Any] = {}


def handler_job(
    url: str, writer: int, count: int, batch: int, start_at: float, *, catch_up: bool
) -> tuple[float, float, dict[str, Any]]:
    began, ended = handler_writer(url, writer, count, batch, start_at, catch_up=catch_up)
    return began, ended, dict(STATS_OF_CHILD)


def log_writer(
    url: str, writer: int, count: int, batch: int, start_at: float
) -> tuple[float, float]:
    """`SqlEventStore.append` with no projections at all: the log alone (parsed events in)."""
    store = SqlEventStore(create_engine(url))
    store.append(new_events(records_of(writer, 10_000_000, batch)))  # connect, untimed
    batches = [new_events(records_of(writer, start, batch)) for start in range(0, count, batch)]
    time.sleep(max(0.0, start_at - time.time()))
    began = time.perf_counter()
    for parsed in batches:
        store.append(parsed)
    return began, time.perf_counter()


LAST_STATS: dict[str, float] = {}  # of the last run_handler: lock hold times, catch-up cost


def run_handler(
    databases: TestDatabases,
    writers: int,
    batch: int,
    total: int,
    *,
    catch_up: bool = True,
    log_only: bool = False,
) -> float:
    url = databases.create()
    per_writer = total // writers
    try:
        with get_context("spawn").Pool(writers) as pool:
            start_at = time.time() + 2.0 + 0.3 * writers  # after every process has warmed up
            jobs = [
                pool.apply_async(log_writer, (url, w, per_writer, batch, start_at))
                if log_only
                else pool.apply_async(
                    handler_job, (url, w, per_writer, batch, start_at), {"catch_up": catch_up}
                )
                for w in range(writers)
            ]
            spans = [job.get(timeout=600) for job in jobs]
        elapsed = max(s[1] for s in spans) - min(s[0] for s in spans)
        engine = create_engine(url)
        try:
            store = SqlEventStore(engine)
            if catch_up and not log_only:
                # Catch-up included: the projections end at the head, as after `ingest`.
                from eventstore.wiring import event_store_on

                started = time.perf_counter()
                event_store_on(store).catch_up()
                elapsed += time.perf_counter() - started
            if not log_only:
                holds = sorted(h for s in spans for h in s[2]["lock_holds"])
                seconds = sum(s[2]["seconds"] for s in spans)
                cpu_seconds = sum(s[2]["cpu_seconds"] for s in spans)
                folded = sum(s[2]["events"] for s in spans)
                LAST_STATS.update(
                    lock_hold_median_ms=1000 * holds[len(holds) // 2] if holds else 0.0,
                    lock_hold_p95_ms=1000 * holds[int(len(holds) * 0.95)] if holds else 0.0,
                    catch_up_us_per_event=1e6 * seconds / folded if folded else 0.0,
                    catch_up_cpu_us_per_event=1e6 * cpu_seconds / folded if folded else 0.0,
                    handler_cpu_us_per_event=1e6
                    * sum(s[2]["handler_cpu_seconds"] for s in spans)
                    / (writers * per_writer),
                )
            head = store.head_position()
            expected = writers * (per_writer + batch)  # the warm-up batch included
            if head != expected or not store.verify().ok:
                raise RuntimeError(f"log has {head} events, expected {expected}, or is broken")
        finally:
            engine.dispose()
        return writers * per_writer / elapsed
    finally:
        databases.drop(url)


# -- raw psycopg ------------------------------------------------------------------------


def raw_rows(count: int) -> list[tuple[Any, ...]]:
    """Rows of the `events` table for `count` events, hash chain and all, as our append
    would write them."""
    events = new_events(records_of(99, 0, count))
    rows = []
    previous = GENESIS_HASH
    now = datetime.now(UTC)
    for position, event in enumerate(events, start=1):
        record_json = json.dumps(event.record, ensure_ascii=False, separators=(",", ":"))
        digest = chain_hash(previous, position, event, record_json, now)
        previous = digest
        rows.append((
            position, event.event_id, event.stream, event.event_name, event.event_time,
            event.bucket, event.key, event.version_id, event.sequencer, event.size, event.etag,
            event.principal_id, event.source_ip, event.request_id, event.region, str(event.source),
            event.causation_id, "bench", record_json, now, digest,
        ))  # fmt: skip
    return rows


def run_raw(databases: TestDatabases, rows: list[tuple[Any, ...]], batch: int, how: str,
            record_type: str = "text") -> float:  # fmt: skip
    url = databases.create()
    try:
        with psycopg.connect(libpq_url(url)) as connection:
            connection.execute("CREATE TABLE raw_events (LIKE events INCLUDING ALL)")
            if record_type == "jsonb":
                connection.execute(
                    "ALTER TABLE raw_events ALTER COLUMN record TYPE jsonb USING record::jsonb"
                )
            connection.commit()
            insert = (
                f"INSERT INTO raw_events ({', '.join(COLUMNS)}) "
                f"VALUES ({', '.join(['%s'] * len(COLUMNS))})"
            )
            began = time.perf_counter()
            for i in range(0, len(rows), batch):
                chunk = rows[i : i + batch]
                with connection.cursor() as cursor:
                    if how == "copy":
                        with cursor.copy(
                            f"COPY raw_events ({', '.join(COLUMNS)}) FROM STDIN"
                        ) as copy:
                            for row in chunk:
                                copy.write_row(row)
                    else:
                        cursor.executemany(insert, chunk)
                connection.commit()
            elapsed = time.perf_counter() - began
        return len(rows) / elapsed
    finally:
        databases.drop(url)


# -- the eventsourcing library ----------------------------------------------------------


def es_environment(url: str) -> dict[str, str]:
    parsed = sa.engine.make_url(url)
    host = parsed.query.get("host") or parsed.host or "127.0.0.1"
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(parsed.database),
        "POSTGRES_HOST": str(host),
        "POSTGRES_PORT": str(parsed.port or 5432),
        "POSTGRES_USER": str(parsed.username or "postgres"),
        "POSTGRES_PASSWORD": str(parsed.password or ""),
        "POSTGRES_POOL_SIZE": "1",
        "POSTGRES_MAX_OVERFLOW": "0",
        "CREATE_TABLE": "y",
    }


_aggregate: Any = None


def es_aggregate_class() -> Any:
    """An aggregate per S3 object, its created event carrying the S3 record (defined once:
    eventsourcing registers every class under its topic)."""
    global _aggregate  # noqa: PLW0603
    if _aggregate is None:

        class S3Object(Aggregate):
            @es_event("Changed")
            def __init__(self, record: dict[str, Any]) -> None:
                self.record = record

        _aggregate = S3Object
    return _aggregate


def run_es_application(databases: TestDatabases, count: int, batch: int) -> float:
    S3Object = es_aggregate_class()
    url = databases.create()
    try:
        app: Application[Any] = Application(env=es_environment(url))
        records = [r for r in records_of(98, 0, count)]
        began = time.perf_counter()
        for i in range(0, count, batch):
            app.save(*(S3Object(record) for record in records[i : i + batch]))
        elapsed = time.perf_counter() - began
        app.close()
        return count / elapsed
    finally:
        databases.drop(url)


def run_es_recorder(databases: TestDatabases, count: int, batch: int) -> float:
    url = databases.create()
    try:
        factory = InfrastructureFactory.construct(env=es_environment(url))
        recorder = factory.application_recorder()
        states = [json.dumps(r).encode() for r in records_of(97, 0, count)]
        stored = [StoredEvent(uuid.uuid4(), 1, "bench:S3Event", state) for state in states]
        began = time.perf_counter()
        for i in range(0, count, batch):
            recorder.insert_events(stored[i : i + batch])
        elapsed = time.perf_counter() - began
        factory.close()
        return count / elapsed
    finally:
        databases.drop(url)


# -- a million events -------------------------------------------------------------------

FILL_SQL = """
INSERT INTO events (position, event_id, stream, event_name, event_time, bucket, key,
    version_id, sequencer, size, etag, principal_id, source_ip, request_id, region, source,
    causation_id, correlation_id, record, recorded_at, hash)
SELECT n,
    md5(n::text),
    's3://' || b || '/' || k,
    CASE WHEN n % 10 = 0 THEN 'ObjectRemoved:Delete' ELSE 'ObjectCreated:Put' END,
    timestamptz '2026-01-01 00:00:00+00' + n * interval '2 seconds',
    b, k, 'v' || n, lpad(to_hex(n), 16, '0'), 1000 + n % 5000, md5(k),
    'AWS:user-' || (n % 50), '198.51.100.' || (n % 250), 'REQ' || n, 'eu-west-1', 'sqs+sns',
    'msg-' || n, 'fill', :record, now(), md5(n::text || 'h') || md5(n::text || 'i')
FROM (
    SELECT n,
        'bucket-' || (n % 20000 % 4) AS b,
        'tenant-' || lpad((n % 20000 % 200)::text, 3, '0') || '/obj-' || (n % 20000) || '.json'
            AS k
    FROM generate_series(:first, :last) AS n
) AS rows
"""


def fill_million(url: str, rows: int) -> float:
    record = json.dumps(records_of(0, 0, 1)[0], separators=(",", ":"))
    engine = create_engine(url)
    began = time.perf_counter()
    try:
        step = 200_000
        for first in range(1, rows + 1, step):
            with engine.begin() as connection:
                connection.execute(
                    sa.text(FILL_SQL),
                    {"record": record, "first": first, "last": min(rows, first + step - 1)},
                )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("VACUUM ANALYZE events"))
    finally:
        engine.dispose()
    return time.perf_counter() - began


def timed(function: Any, repeat: int = 20) -> tuple[float, Any]:
    """Median milliseconds over `repeat` warm runs, and the last result."""
    result = function()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), result


def explain(url: str, statement: Any) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
            rows = connection.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"))
            return "\n".join("    " + row[0] for row in rows)
    finally:
        engine.dispose()


def run_queries(databases: TestDatabases, rows: int) -> list[str]:
    url = databases.create()
    lines = []
    try:
        seconds = fill_million(url, rows)
        lines.append(
            f"filled {rows:,} events in {seconds:.1f} s (INSERT ... SELECT generate_series)"
        )
        engine = create_engine(url)
        store = SqlEventStore(engine)
        bucket, key = "bucket-3", "tenant-007/obj-1207.json"  # 50 events, one per 40,000
        one_day = EventQuery(
            bucket="bucket-2",
            prefix="tenant-042/",
            types=("ObjectCreated:*",),
            since=datetime(2026, 1, 10, tzinfo=UTC),
            until=datetime(2026, 1, 11, tzinfo=UTC),
        )
        one_hour = EventQuery(
            since=datetime(2026, 1, 10, tzinfo=UTC), until=datetime(2026, 1, 10, 1, tzinfo=UTC)
        )
        history_ms, history = timed(lambda: store.history(bucket, key))
        audit_ms, audit = timed(lambda: store.select_events(one_day))
        hour_ms, hour = timed(lambda: store.select_events(one_hour))
        engine.dispose()
        # history reads two streams; the plan of the one with sequencers (the other is alike)
        sequenced = sa.select(events).where(
            events.c.bucket == bucket, events.c.key == key, events.c.sequencer.is_not(None)
        )
        padded = _padded_sequencer(engine.dialect)
        lines += [
            f"history s3://{bucket}/{key}: {len(history)} events, {history_ms:.2f} ms (median)",
            explain(url, sequenced.order_by(padded, events.c.position)),
            f"events --bucket bucket-2 --prefix tenant-042/ --type ObjectCreated:* over one day:"
            f" {len(audit)} events, {audit_ms:.2f} ms (median)",
            explain(
                url, sa.select(events).where(*_event_filters(one_day)).order_by(events.c.position)
            ),
            f"events over one hour, every bucket: {len(hour)} events, {hour_ms:.2f} ms (median)",
            explain(
                url, sa.select(events).where(*_event_filters(one_hour)).order_by(events.c.position)
            ),
        ]
    finally:
        databases.drop(url)
    return lines


# -- main -------------------------------------------------------------------------------


@contextlib.contextmanager
def bench_databases(durable: bool) -> Any:
    given = os.environ.get(ENV_URL)
    server = None
    if given:
        admin = given
    else:
        settings = {"max_connections": "100", "shared_buffers": "256MB"}
        if not durable:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        server = PostgresServer(settings=settings).start()
        admin = server.url
    databases = TestDatabases(admin)
    databases.build_template()
    try:
        yield databases
    finally:
        databases.close()
        if server is not None:
            server.stop()


def contenders(databases: TestDatabases, total: int) -> list[tuple[str, Any]]:
    rows = raw_rows(total)
    return [
        ("psycopg executemany batch 10", lambda: run_raw(databases, rows, 10, "executemany")),
        ("psycopg executemany batch 100", lambda: run_raw(databases, rows, 100, "executemany")),
        (
            "psycopg executemany batch 10, record jsonb",
            lambda: run_raw(databases, rows, 10, "executemany", "jsonb"),
        ),
        (
            "psycopg executemany batch 100, record jsonb",
            lambda: run_raw(databases, rows, 100, "executemany", "jsonb"),
        ),
        ("psycopg COPY batch 1000", lambda: run_raw(databases, rows, 1000, "copy")),
        ("es Application.save batch 10", lambda: run_es_application(databases, total, 10)),
        ("es Application.save batch 100", lambda: run_es_application(databases, total, 100)),
        ("es recorder.insert_events batch 10", lambda: run_es_recorder(databases, total, 10)),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000, help="events per contender")
    parser.add_argument("--rows-1m", type=int, default=1_000_000, help="events for the queries")
    parser.add_argument("--skip-1m", action="store_true", help="skip the query test")
    parser.add_argument("--skip-ingest", action="store_true", help="only the query test")
    parser.add_argument(
        "--handler-only",
        action="store_true",
        help="only the handler with catch-up at batch 10, 1 and 8 writers, and es at batch 10",
    )
    parser.add_argument(
        "--durable",
        action="store_true",
        help="fsync and synchronous_commit on (default off, as for a test server)",
    )
    args = parser.parse_args()
    total = args.events
    results: dict[str, float] = {}
    durability = "durable" if args.durable else "fsync off"
    with bench_databases(args.durable) as databases:
        print(f"PostgreSQL: {total} events of ~1 KB per contender ({durability})", flush=True)
        if args.skip_ingest:
            for line in run_queries(databases, args.rows_1m):
                print(line, flush=True)
            return 0
        for name, run in contenders(databases, total):
            if args.handler_only and name != "es Application.save batch 10":
                continue
            results[name] = run()
            print(f"  {name:<48} {results[name]:>9,.0f} ev/s", flush=True)
        for label in HANDLER_LABELS[:1] if args.handler_only else HANDLER_LABELS:
            for writers in (1, 8) if args.handler_only else (1, 4, 8):
                for batch in (10,) if args.handler_only else (10, 100):
                    name = f"{label} {writers}w batch {batch}"
                    results[name] = run_handler(
                        databases, writers, batch, total,
                        catch_up=label == "handler", log_only=label == "log only",
                    )  # fmt: skip
                    extra = ""
                    if label != "log only" and LAST_STATS:
                        extra = (
                            f"  lock held {LAST_STATS['lock_hold_median_ms']:.2f} ms median,"
                            f" {LAST_STATS['lock_hold_p95_ms']:.2f} ms p95;"
                            f" client CPU {LAST_STATS['handler_cpu_us_per_event']:.0f} µs/event"
                        )
                        if label == "handler":
                            extra += (
                                f"; catch-up {LAST_STATS['catch_up_us_per_event']:.0f} µs/event"
                                f" ({LAST_STATS['catch_up_cpu_us_per_event']:.0f} µs client CPU)"
                            )
                        LAST_STATS.clear()
                    print(f"  {name:<48} {results[name]:>9,.0f} ev/s{extra}", flush=True)
        if args.handler_only:
            es10 = results["es Application.save batch 10"]
            for writers in (1, 8):
                ours = results[f"handler {writers}w batch 10"]
                print(f"  handler {writers}w batch 10: {ours / es10:.2f}x es Application")
            return 0
        es10 = results["es Application.save batch 10"]
        recorder10 = results["es recorder.insert_events batch 10"]
        raw10 = results["psycopg executemany batch 10"]
        print("ratios at batch 10 (es = eventsourcing, single writer):")
        for label in HANDLER_LABELS:
            for writers in (1, 4, 8):
                ours = results[f"{label} {writers}w batch 10"]
                print(
                    f"  {label} {writers}w: {ours / es10:.2f}x es Application, "
                    f"{ours / recorder10:.2f}x es recorder, {ours / raw10:.2f}x raw executemany"
                )
        jsonb = results["psycopg executemany batch 100, record jsonb"]
        text = results["psycopg executemany batch 100"]
        print(f"  record as jsonb / as text (executemany batch 100): {jsonb / text:.2f}x")
        if not args.skip_1m:
            print("queries:", flush=True)
            for line in run_queries(databases, args.rows_1m):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
