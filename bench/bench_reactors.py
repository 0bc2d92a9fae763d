"""Reactor benchmark: what recording every reactor outcome in the log costs per event.

    python bench/bench_reactors.py [--events N] [--repeat R] [--batch B] [--dir DIR]

Contenders, each on a fresh SQLite file, fed the same Lambda SQS batches (SNS-wrapped S3
Put records, one message each), run interleaved, the median of --repeat runs shown:

* ingest     `consumers.ingest.handler`: parse, append, catch-up (the log alone).
* reactor    `consumers.reactor.handler_for("put-consumer")`: the same batches through the
             reactor consumer: parse, append the S3 events, look up which were processed,
             react (put-consumer has no side effect, so only the framework is timed), append
             one `Reactor:Processed` outcome per event, catch-up (reactor_outcomes included).
* es x2      the `eventsourcing` library saving two stored events per S3 record (the event
             and an outcome), one `Application.save` per batch: at least the rows we write
             (put-consumer records an outcome for the Puts only, most of the records).

The ratio reactor/ingest is the framework's price for outcomes; reactor/(es x2) compares
it with a general event store doing the same number of writes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import (
    QUIET_ENV,
    ROOT,
    LambdaContext,
    batches_of,
    frozen_gc,
    make_records,
    run_eventsourcing,
    sqs_event,
)


def _run_handler(workdir: Path, records: list[dict[str, Any]], batch: int, which: str) -> float:
    os.environ.update(QUIET_ENV)
    url = f"sqlite:///{workdir / 'ours.db'}"
    os.environ["EVENTSTORE_DB_URL"] = url
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    from consumers import ingest, reactor, runtime

    handler = ingest.handler if which == "ingest" else reactor.handler_for("put-consumer")
    rng = random.Random(7)
    invocations = [sqs_event(chunk, rng) for chunk in batches_of(records, batch)]
    contexts = [LambdaContext(str(uuid.UUID(int=i + 1))) for i in range(len(invocations))]
    with contextlib.redirect_stdout(io.StringIO()):
        handler(sqs_event(make_records(10, seed=99, start=10_000_000), rng), LambdaContext("w"))
        with frozen_gc():
            started = time.perf_counter()
            for event, context in zip(invocations, contexts, strict=True):
                response = handler(event, context)
                if response["batchItemFailures"]:
                    raise RuntimeError(f"handler failed messages: {response}")
            runtime.event_store().catch_up()
            elapsed = time.perf_counter() - started
    with sqlite3.connect(workdir / "ours.db") as db:
        (s3,) = db.execute("SELECT count(*) FROM events WHERE source != 'reactor'").fetchone()
        (puts,) = db.execute(
            "SELECT count(*) FROM events WHERE event_name = 'ObjectCreated:Put'"
        ).fetchone()
        (outcomes,) = db.execute("SELECT count(*) FROM events WHERE source = 'reactor'").fetchone()
    if s3 != len(records) + 10 or outcomes != (puts if which == "reactor" else 0):
        raise RuntimeError(f"{which}: {s3} S3 events, {outcomes} outcomes for {puts} Puts")
    runtime._event_stores.pop(url, None)
    runtime._reactor_runners.clear()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args(argv)
    sys.path.append(str(ROOT))
    base = Path(tempfile.mkdtemp(prefix="bench-reactors-", dir=args.dir))
    records = make_records(args.events, seed=1)
    doubled = records + make_records(args.events, seed=2, start=5_000_000)
    contenders = {
        "ingest": lambda w: _run_handler(w, records, args.batch, "ingest"),
        "reactor": lambda w: _run_handler(w, records, args.batch, "reactor"),
        "es x2": lambda w: run_eventsourcing(w, doubled, args.batch * 2),
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for run in range(args.repeat):
        for number, (name, runner) in enumerate(contenders.items()):
            workdir = base / f"r{run}-{number}"
            workdir.mkdir()
            samples[name].append(args.events / runner(workdir))
    puts = sum(1 for r in records if r["eventName"] == "ObjectCreated:Put")
    rates = {name: statistics.median(values) for name, values in samples.items()}
    print(
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cpus,"
        f" load {os.getloadavg()[0]:.1f}; {args.events} S3 events, batch {args.batch},"
        f" median of {args.repeat}; {puts} of them Puts (one outcome each for put-consumer)"
    )
    print(f"{'contender':<10} {'S3 events/s':>12} {'reactor/this':>13}")
    for name, rate in rates.items():
        ratio = "" if name == "reactor" else f"{rates['reactor'] / rate:.2f}"
        print(f"{name:<10} {rate:>12.0f} {ratio:>13}")
    per_event_us = (1 / rates["reactor"] - 1 / rates["ingest"]) * 1e6
    print(f"outcome recording costs {per_event_us:.0f} µs per S3 event over ingest alone")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
