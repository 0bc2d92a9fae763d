"""Ingest benchmark: Lambda SQS batches of SNS-wrapped S3 records through the real handler.

    python bench/bench_ingest.py [--events N] [--quick] [--repeat R] [--prefill M]
                                 [--skip-startup] [--dir DIR] [--json FILE] [--phases]

Contenders, each on a fresh SQLite file in a temporary folder, at batch sizes 10 and 1000
(one transaction per batch), run interleaved, the median of --repeat runs shown:

* ours     `consumers.ingest.handler` with a Lambda-like context, once per batch: parse,
           identity, append, hash chain, then projection catch-up (and one at the end) —
           everything the consumer does per invocation. Two rows: "all projections" (the
           built-ins as deployed) and "catalog only" (only the object catalog registered:
           the parse/identity/append/hash/catalog path of issue 2).
* raw      `sqlite3.executemany` of the equivalent `events` rows, prepared before the clock
           starts (same columns, same pragmas as our engine: WAL, synchronous=FULL, BEGIN
           IMMEDIATE), with a random 32-hex unique event id. Two tables: "raw-min" (integer
           primary key + the unique id index only) and "raw-same" (the DDL of our migrated
           `events` table, with its four secondary indexes).
* es       the `eventsourcing` library (PERSISTENCE_MODULE=eventsourcing.sqlite): one new
           aggregate per S3 record, whose created event carries the decoded S3 record (one
           stored event per record), `Application.save(*aggregates)` once per batch. It is
           given the decoded records (JSON decoding of the SQS/SNS wrappers is not timed for
           it), so the comparison is with its persistence alone.

Also measured: the parse alone of the same SQS events (no storage), and what each bar leaves
ours per event once the database work (raw-same) and the parse are paid. In fresh
interpreters: the import time of `consumers.ingest` and the first (cold) handler invocation,
which pays for SQLAlchemy's lazy import and engine set-up. With --prefill M, ours is also
timed at batch 1000 on a log already holding M events. With --phases, where ours spends its
time at each batch size instead (one run, each phase timed by wrapping it, so the total runs
a little slow): parsing, the append, the catch-up, and within the catch-up each built-in
fold's apply and flush.
"""

# each contender's libraries are loaded only when it runs (the cold-start child times them).
from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import hashlib
import io
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parent.parent
QUIET_ENV = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}
BATCH_SIZES = (10, 1000)
REGION = "eu-west-1"
ACCOUNT = "123456789012"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:s3-events"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:s3-events-ingest"
EPOCH = datetime(2026, 3, 1, tzinfo=UTC)

# -- synthetic S3 notifications ----------------------------------------------------------------

_PREFIXES = (
    "logs/app-server",
    "raw/events/dt={day}",
    "exports/finance reports",
    "images/user+uploads",
    "data/ünïcode/tables",
)
_PRINCIPALS = (
    "AWS:AIDAJDPLRKLG7UEXAMPLE",
    "AWS:AROAEXAMPLEROLEID:ingest-worker",
    "AWS:AROAEXAMPLEROLEID:etl-job-42",
    "A3NL1KOZZKEXAMPLE",
)


def _b64(rng: random.Random, length: int) -> str:
    return base64.b64encode(rng.randbytes(length)).decode("ascii")


def _version_id(rng: random.Random) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._"
    return "".join(rng.choice(alphabet) for _ in range(32))


def make_records(count: int, *, seed: int, start: int = 0) -> list[dict[str, Any]]:
    """`count` realistic S3 event records (eventVersion 2.1, ~1 KB each) for versioned
    buckets: mostly creates of distinct keys under a few prefixes, some overwrites and
    deletes (delete markers) of keys created earlier, every one with a sequencer, version
    id, principal, source IP and request ids. Keys are form-URL-encoded as S3 sends them."""
    rng = random.Random(seed)
    created: list[tuple[str, str]] = []
    records: list[dict[str, Any]] = []
    for index in range(start, start + count):
        when = EPOCH + timedelta(milliseconds=37 * index)
        roll = rng.random()
        if created and roll < 0.10:
            bucket, key = created[rng.randrange(len(created))]
            name = "ObjectRemoved:DeleteMarkerCreated"
        elif created and roll < 0.15:
            bucket, key = created[rng.randrange(len(created))]
            name = "ObjectCreated:Put"
        else:
            bucket = f"acme-data-lake-{rng.choice(('prod', 'staging'))}"
            prefix = rng.choice(_PREFIXES).format(day=when.strftime("%Y-%m-%d"))
            key = f"{prefix}/{when:%Y/%m/%d}/host-{rng.randrange(64):02d}/part-{index:07d}.json.gz"
            name = rng.choice(
                ("ObjectCreated:Put",) * 8
                + ("ObjectCreated:CompleteMultipartUpload", "ObjectCreated:Copy")
            )
            created.append((bucket, key))
        obj: dict[str, Any] = {"key": quote_plus(key, safe="/")}
        if not name.startswith("ObjectRemoved:"):
            obj["size"] = rng.randrange(1, 512 * 1024 * 1024)
            obj["eTag"] = rng.randbytes(16).hex()
        obj["versionId"] = _version_id(rng)
        obj["sequencer"] = f"{0x0062E99A88DC400000 + 4099 * index:018X}"
        records.append(
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.")
                + f"{when.microsecond // 1000:03d}Z",
                "eventName": name,
                "userIdentity": {"principalId": rng.choice(_PRINCIPALS)},
                "requestParameters": {
                    "sourceIPAddress": f"203.0.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                },
                "responseElements": {
                    "x-amz-request-id": rng.randbytes(8).hex().upper(),
                    "x-amz-id-2": _b64(rng, 57),
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "s3-events-to-sns",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "A3NL1KOZZKEXAMPLE"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": obj,
                },
            }
        )
    return records


def sqs_event(records: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    """A Lambda SQS event: one message per S3 record (as S3 sends them), each body an SNS
    notification whose Message is the S3 notification."""
    messages = []
    for record in records:
        sent = int((EPOCH - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)
        notification = {
            "Type": "Notification",
            "MessageId": str(uuid.UUID(bytes=rng.randbytes(16))),
            "TopicArn": TOPIC_ARN,
            "Subject": "Amazon S3 Notification",
            "Message": json.dumps({"Records": [record]}),
            "Timestamp": record["eventTime"],
            "SignatureVersion": "1",
            "Signature": _b64(rng, 256),
            "SigningCertURL": f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-"
            "9c6465fa7f48f5cacd23014631ec1136.pem",
            "UnsubscribeURL": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe"
            f"&SubscriptionArn={TOPIC_ARN}:{uuid.UUID(bytes=rng.randbytes(16))}",
        }
        body = json.dumps(notification)
        messages.append(
            {
                "messageId": str(uuid.UUID(bytes=rng.randbytes(16))),
                "receiptHandle": "AQEB" + _b64(rng, 150),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": str(sent),
                    "SenderId": "AIDAIT2UOQQY3AUEKVGXU",
                    "ApproximateFirstReceiveTimestamp": str(sent + 5),
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": REGION,
            }
        )
    return {"Records": messages}


def batches_of(items: list[Any], size: int) -> list[list[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


@dataclass
class LambdaContext:
    """What the Lambda runtime passes as `context`, as far as the handler and Powertools look."""

    aws_request_id: str
    function_name: str = "s3-eventstore-ingest"
    function_version: str = "$LATEST"
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:s3-eventstore-ingest"
    memory_limit_in_mb: int = 1024
    log_group_name: str = "/aws/lambda/s3-eventstore-ingest"
    log_stream_name: str = "2026/03/01/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


# -- contenders ---------------------------------------------------------------------------------

WARMUP = 10  # events appended (not timed) before the clock starts, by every contender


@contextlib.contextmanager
def frozen_gc() -> Iterator[None]:
    """Keep the benchmark's own inputs (tens of MB of prepared batches) out of the cyclic
    garbage collector's way while the clock runs, for every contender alike."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def projections(which: str) -> Iterator[None]:
    """Which projections the store runs: `all` the built-ins, as deployed; `catalog` only the
    object catalog, the path issue 2 describes (parse, identity, append, hash, catalog)."""
    if which == "all":
        yield
        return
    from eventstore.projections import registry
    from eventstore.projections.catalog import ObjectCatalogProjection

    with mock.patch.object(registry, "builtin_projections", lambda: [ObjectCatalogProjection()]):
        yield


def run_ours(
    workdir: Path,
    records: list[dict[str, Any]],
    batch: int,
    *,
    which: str = "all",
    prefill: int = 0,
) -> float:
    """Invoke the handler once per batch, as Lambda would; time only the invocations."""
    os.environ.update(QUIET_ENV)
    os.environ["EVENTSTORE_DB_URL"] = f"sqlite:///{workdir / 'ours.db'}"
    from consumers.ingest import handler

    rng = random.Random(7)
    quiet = io.StringIO()  # Powertools prints its metrics blob even when they are disabled
    with projections(which), contextlib.redirect_stdout(quiet):
        warm = make_records(WARMUP, seed=99, start=10_000_000)
        handler(sqs_event(warm, rng), LambdaContext("warm-up"))
        for number, chunk in enumerate(
            batches_of(make_records(prefill, seed=3, start=20_000_000), 1000)
        ):
            handler(sqs_event(chunk, rng), LambdaContext(f"prefill-{number}"))
        invocations = [sqs_event(chunk, rng) for chunk in batches_of(records, batch)]
        contexts = [LambdaContext(str(uuid.UUID(int=i + 1))) for i in range(len(invocations))]
        from consumers import runtime

        with frozen_gc():
            started = time.perf_counter()
            for event, context in zip(invocations, contexts, strict=True):
                response = handler(event, context)
                if response["batchItemFailures"]:
                    raise RuntimeError(f"handler failed messages: {response}")
            # Catch-up included: the projections end at the head, as after `eventstore ingest`.
            runtime.event_store().catch_up()
            elapsed = time.perf_counter() - started
    _check_ours(workdir / "ours.db", len(records) + WARMUP + prefill)
    return elapsed


def parse_seconds(records: list[dict[str, Any]], batch: int) -> float:
    """Only the parse of the same SQS events (decoding, checking, the event id), no storage:
    what every event costs ours before the database sees it, and eventsourcing is not charged
    (it is handed decoded records)."""
    from eventstore.core.parsing import parse_sqs_record, sqs_records

    rng = random.Random(7)
    invocations = [sqs_event(chunk, rng) for chunk in batches_of(records, batch)]
    with frozen_gc():
        started = time.perf_counter()
        for event in invocations:
            for record in sqs_records(event):
                parse_sqs_record(record)
        return time.perf_counter() - started


def print_budget(
    rates: dict[int, dict[str, float]], parsing: dict[int, float], bars: dict[int, float]
) -> None:
    """What each bar leaves ours per event once the database work and the parse are paid."""
    for batch, bar in bars.items():
        r = rates[batch]
        allowed = 1e6 / (bar * r["eventsourcing"])
        database, parse = 1e6 / r["raw-same"], parsing[batch]
        ours = 1e6 / r["ours (all projections)"]
        print(
            f"  batch {batch}: the bar ({bar}x) allows {allowed:.1f} µs/event; the database work"
            f" alone (raw-same) takes {database:.1f} and the parse alone {parse:.1f}, leaving"
            f" {allowed - database - parse:.1f} for the append's own work (dedupe, hash chain),"
            f" the catch-up and the handler, where ours spends {ours - database - parse:.1f}"
        )


def print_phases(workdir: Path, records: list[dict[str, Any]], batch: int) -> None:
    """Run ours once with each phase timed (by wrapping it) and print µs per event."""
    import consumers.ingest
    from eventstore.projections.registry import builtin_projections
    from eventstore.projections.runner import ProjectionRunner
    from eventstore.store.sql import SqlEventStore

    spent: dict[str, float] = {}
    undo: list[tuple[Any, str, Any]] = []

    def timed(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - started

        undo.append((owner, name, original))
        setattr(owner, name, wrapper)
        spent[label] = 0.0  # printed in this order

    timed(consumers.ingest, "parse_sqs_record", "parse")
    timed(SqlEventStore, "append", "append")
    timed(ProjectionRunner, "catch_up", "catch-up")
    for projection in builtin_projections():
        fold = type(projection.start())
        if fold.__name__ != "_ApplyEachFlush":
            timed(fold, "apply", f"  {projection.name} apply")
            timed(fold, "flush", f"  {projection.name} flush")
    try:
        elapsed = run_ours(workdir, records, batch)
    finally:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)
    count = len(records)
    rate, each = count / elapsed, elapsed / count * 1e6
    print(f"batch {batch}: ours {rate:.0f} events/s, {each:.1f} µs/event")
    for label, seconds in spent.items():
        print(f"  {label:<32} {seconds / count * 1e6:7.1f} µs/event")


def _check_ours(path: Path, expected: int) -> None:
    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT count(*) FROM events").fetchone()
        (catalog,) = db.execute("SELECT count(*) FROM object_catalog").fetchone()
    if count != expected or not catalog:
        raise RuntimeError(f"expected {expected} events stored, found {count} ({catalog} keys)")


def _raw_rows(
    records: list[dict[str, Any]], rng: random.Random, first: int
) -> list[tuple[Any, ...]]:
    recorded_at = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    rows = []
    for position, record in enumerate(records, start=first):
        obj = record["s3"]["object"]
        bucket = record["s3"]["bucket"]["name"]
        key = obj["key"]
        rows.append(
            (
                position,
                rng.randbytes(16).hex(),  # random unique id, like our derived ids
                f"s3://{bucket}/{key}",
                record["eventName"],
                record["eventTime"].replace("T", " ").rstrip("Z") + "000",
                bucket,
                key,
                obj.get("versionId"),
                obj.get("sequencer"),
                obj.get("size"),
                obj.get("eTag"),
                record["userIdentity"]["principalId"],
                record["requestParameters"]["sourceIPAddress"],
                record["responseElements"]["x-amz-request-id"],
                record["awsRegion"],
                "sqs+sns",
                str(uuid.UUID(bytes=rng.randbytes(16))),
                str(uuid.UUID(bytes=rng.randbytes(16))),
                json.dumps(record, ensure_ascii=False, separators=(",", ":")),
                recorded_at,
                rng.randbytes(32).hex(),
            )
        )
    return rows


RAW_MIN_DDL = [
    """CREATE TABLE events (
        position INTEGER PRIMARY KEY, event_id VARCHAR(64) NOT NULL UNIQUE,
        stream TEXT NOT NULL, event_name TEXT NOT NULL, event_time DATETIME NOT NULL,
        bucket TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT, sequencer VARCHAR(64),
        size BIGINT, etag TEXT, principal_id TEXT, source_ip TEXT, request_id TEXT,
        region TEXT, source VARCHAR(32) NOT NULL, causation_id TEXT, correlation_id TEXT,
        record TEXT NOT NULL, recorded_at DATETIME NOT NULL, hash VARCHAR(64) NOT NULL)"""
]


def same_schema_ddl(workdir: Path) -> list[str]:
    """The DDL of our `events` table and its indexes, as the migrations create them."""
    from eventstore.store.database import create_engine, upgrade_schema

    path = workdir / "schema.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade_schema(engine)
    engine.dispose()
    with sqlite3.connect(path) as db:
        return [
            sql
            for (sql,) in db.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL"
                " ORDER BY type DESC"  # the table before its indexes
            )
        ]


def run_raw(workdir: Path, records: list[dict[str, Any]], batch: int, ddl: list[str]) -> float:
    db = sqlite3.connect(workdir / "raw.db", isolation_level=None, timeout=60)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=60000")
    for statement in ddl:
        db.execute(statement)
    rng = random.Random(11)
    insert = f"INSERT INTO events VALUES ({','.join('?' * 21)})"
    warm = _raw_rows(make_records(WARMUP, seed=99, start=10_000_000), rng, 1)
    chunks = batches_of(_raw_rows(records, rng, WARMUP + 1), batch)
    db.execute("BEGIN IMMEDIATE")
    db.executemany(insert, warm)
    db.execute("COMMIT")
    with frozen_gc():
        started = time.perf_counter()
        for rows in chunks:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(insert, rows)
            db.execute("COMMIT")
        elapsed = time.perf_counter() - started
    db.close()
    return elapsed


def run_eventsourcing(workdir: Path, records: list[dict[str, Any]], batch: int) -> float:
    from es_model import S3Event
    from eventsourcing.application import Application

    app = Application(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(workdir / "es.db")}
    )
    app.save(*(S3Event(r) for r in make_records(WARMUP, seed=99, start=10_000_000)))
    chunks = batches_of(records, batch)
    with frozen_gc():
        started = time.perf_counter()
        for chunk in chunks:
            app.save(*(S3Event(record) for record in chunk))
        elapsed = time.perf_counter() - started
    (count,) = (
        sqlite3.connect(workdir / "es.db").execute("SELECT count(*) FROM stored_events").fetchone()
    )
    app.close()
    if count != len(records) + WARMUP:
        raise RuntimeError(f"eventsourcing stored {count} events, expected {len(records) + WARMUP}")
    return elapsed


# -- import and cold-start ----------------------------------------------------------------------


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, **QUIET_ENV, **extra)
    # An existing PYTHONPATH comes first, so another checkout can be measured (A/B).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(ROOT)]))
    return env


def import_times(runs: int) -> dict[str, float]:
    """Median over fresh interpreters: `-X importtime` cumulative time of consumers.ingest,
    and the wall time of `import consumers.ingest` measured inside the process."""
    cumulative, wall = [], []
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import consumers.ingest"],
            capture_output=True, text=True, check=True, env=_child_env(), cwd=ROOT,
        )  # fmt: skip
        for line in result.stderr.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[2].strip() == "consumers.ingest":
                cumulative.append(int(parts[1]) / 1000)
        code = (
            "import time; t = time.perf_counter(); import consumers.ingest;"
            " print(time.perf_counter() - t)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True, text=True, check=True, env=_child_env(), cwd=ROOT,
        )  # fmt: skip
        wall.append(float(result.stdout) * 1000)
    return {
        "importtime_ms": statistics.median(cumulative),
        "import_wall_ms": statistics.median(wall),
    }


_COLD = """
import json, sys, time
sys.path.insert(0, BENCH_DIR)
t0 = time.perf_counter()
from consumers.ingest import handler
t1 = time.perf_counter()
sa_at_import = "sqlalchemy" in sys.modules
import bench_ingest as b
import random
rng = random.Random(3)
first = b.sqs_event(b.make_records(10, seed=5), rng)
second = b.sqs_event(b.make_records(10, seed=6, start=100), rng)
t2 = time.perf_counter()
handler(first, b.LambdaContext("cold"))
t3 = time.perf_counter()
handler(second, b.LambdaContext("warm"))
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "cold": t3 - t2, "warm": t4 - t3,
                  "sqlalchemy_loaded_by_import": sa_at_import}))
"""


def cold_starts(runs: int, workdir: Path) -> dict[str, float]:
    """First and second handler invocation (batch of 10) in fresh interpreters, on an empty
    SQLite file (the handler runs the migrations) and on an already migrated one."""
    from eventstore.store.database import create_engine, upgrade_schema

    found: dict[str, list[float]] = {}
    for run in range(runs):
        for label in ("migrated", "empty"):
            path = workdir / f"cold-{label}-{run}.db"
            if label == "migrated":
                engine = create_engine(f"sqlite:///{path}")
                upgrade_schema(engine)
                engine.dispose()
            code = _COLD.replace("BENCH_DIR", repr(str(ROOT / "bench")))
            result = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True,
                env=_child_env(EVENTSTORE_DB_URL=f"sqlite:///{path}"), cwd=ROOT,
            )  # fmt: skip
            data = json.loads(result.stdout.strip().splitlines()[-1])
            if data["sqlalchemy_loaded_by_import"]:
                found.setdefault("sqlalchemy_at_import", []).append(1.0)
            for name in ("import", "cold", "warm"):
                found.setdefault(f"{label}_{name}_ms", []).append(data[name] * 1000)
    return {name: statistics.median(values) for name, values in found.items()}


# -- driver -------------------------------------------------------------------------------------

Runner = Callable[[Path, list[dict[str, Any]], int], float]


def _written_bytes() -> int:
    """Bytes this process caused to be written to storage (Linux /proc/self/io), WAL,
    checkpoints and fsyncs included: the write amplification of a contender."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--events", type=int, default=20_000, help="events per contender and batch size"
    )
    parser.add_argument(
        "--quick", action="store_true", help="2000 events, one repeat, fewer import runs"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per measurement; the median is shown"
    )
    parser.add_argument("--dir", type=Path, default=None, help="folder for the SQLite files")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--skip-startup", action="store_true", help="skip import/cold-start timing")
    parser.add_argument(
        "--phases", action="store_true", help="only ours, its time per event by phase"
    )
    parser.add_argument(
        "--prefill", type=int, default=0, metavar="M",
        help="also time ours at batch 1000 on a log already holding M events (scaling check)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    events = 2_000 if args.quick and args.events == 20_000 else args.events
    repeat = 1 if args.quick else args.repeat
    os.environ.update(QUIET_ENV)
    sys.path.append(str(ROOT))  # after PYTHONPATH, so another checkout can be measured (A/B)

    base = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.dir))
    records = make_records(events, seed=1)
    size = statistics.mean(len(json.dumps(r)) for r in records)
    print(
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cpus,"
        f" load average {os.getloadavg()[0]:.1f}; files in {base}"
    )
    print(
        f"{events} S3 records per run (mean {size:.0f} bytes each as JSON), one SQS message each,"
        f" SNS-wrapped; median of {repeat} run(s), contenders interleaved"
    )
    print("logging: POWERTOOLS_LOG_LEVEL=WARNING, POWERTOOLS_METRICS_DISABLED=true (every run)")
    if args.phases:
        for batch in BATCH_SIZES:
            workdir = base / f"phases-b{batch}"
            workdir.mkdir()
            print_phases(workdir, records, batch)
        return 0
    ddl = same_schema_ddl(base)
    contenders: dict[str, Runner] = {
        "ours (all projections)": run_ours,
        "ours (catalog only)": lambda w, r, b: run_ours(w, r, b, which="catalog"),
        "raw-min": lambda w, r, b: run_raw(w, r, b, RAW_MIN_DDL),
        "raw-same": lambda w, r, b: run_raw(w, r, b, ddl),
        "eventsourcing": run_eventsourcing,
    }
    rates: dict[int, dict[str, float]] = {}
    written: dict[int, dict[str, float]] = {}
    parsing: dict[int, float] = {}  # µs per event
    for batch in BATCH_SIZES:
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        bytes_per_event: dict[str, list[float]] = {name: [] for name in contenders}
        for run in range(repeat):
            for number, (name, runner) in enumerate(contenders.items()):
                workdir = base / f"b{batch}-r{run}-{number}"
                workdir.mkdir()
                before = _written_bytes()
                samples[name].append(len(records) / runner(workdir, records, batch))
                bytes_per_event[name].append((_written_bytes() - before) / len(records))
        rates[batch] = {name: statistics.median(values) for name, values in samples.items()}
        written[batch] = {n: statistics.median(v) for n, v in bytes_per_event.items()}
        runs = [parse_seconds(records, batch) for _ in range(repeat)]
        parsing[batch] = statistics.median(runs) / len(records) * 1e6

    print()
    print(
        f"{'batch':>5}  {'contender':<24} {'events/s':>9} {'ours/this':>10} {'KB written/ev':>14}"
    )
    for batch, r in rates.items():
        for name, rate in r.items():
            ratios = (
                ""
                if name.startswith("ours")
                else "  ".join(f"{r[ours] / rate:.2f}" for ours in r if ours.startswith("ours"))
            )
            kb = written[batch][name] / 1024
            print(f"{batch:>5}  {name:<24} {rate:>9.0f} {ratios:>10} {kb:>14.1f}")
    print("ours/this: (all projections)  (catalog only)")
    print("bars (issue 9): ours/eventsourcing >= 0.6 at batch 10 and >= 0.9 at batch 1000; aim 1.0")
    print_budget(rates, parsing, {10: 0.6, 1000: 0.9})
    if args.prefill:
        workdir = base / "prefilled"
        workdir.mkdir()
        rate = len(records) / run_ours(workdir, records, 1000, prefill=args.prefill)
        print(
            f"ours (all projections) at batch 1000 on a log already holding {args.prefill}"
            f" events: {rate:.0f} events/s"
        )

    startup: dict[str, float] = {}
    if not args.skip_startup:
        runs = 3 if args.quick else 7
        startup.update(import_times(runs))
        startup.update(cold_starts(3 if args.quick else 5, base))
        print()
        print(
            f"import consumers.ingest (median of {runs} fresh interpreters):"
            f" -X importtime cumulative {startup['importtime_ms']:.0f} ms,"
            f" wall {startup['import_wall_ms']:.0f} ms (target <= 300 ms)"
        )
        print(
            "SQLAlchemy imported by `import consumers.ingest`:",
            "yes" if startup.get("sqlalchemy_at_import") else "no (lazily, on first invocation)",
        )
        for label in ("migrated", "empty"):
            print(
                f"handler in a fresh process, {label} SQLite file: import"
                f" {startup[f'{label}_import_ms']:.0f} ms, first invocation"
                f" {startup[f'{label}_cold_ms']:.0f} ms,"
                f" second {startup[f'{label}_warm_ms']:.1f} ms"
                " (batch of 10)"
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"events": events, "rates": rates, "written": written, "startup": startup},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
