"""Rebuild benchmark: refold the built-in projections over 100k and 1M events in SQLite.

    python bench/bench_rebuild.py [--sizes 100000,1000000] [--quick] [--repeat R]
                                  [--cache DIR] [--dir DIR] [--json FILE]

For each size N, each contender runs in a fresh interpreter (so its peak RSS, from
`resource.getrusage(...).ru_maxrss`, is its own) and is timed from the first read to the end:

* ours           `ProjectionRunner.rebuild(every built-in)` (through eventstore.wiring) on a
                 copy of a log of N events: every built-in projection rebuilt from position 0
                 into shadow tables and swapped in, over one read of the log. The rate is
                 N / wall time. Projections fold the typed columns; no record is decoded.
* ours-read      `SqlEventStore.read()` over the same log: every event back as a StoredEvent
                 with its record decoded (it is lazy: the benchmark reads it), the
                 like-for-like of the eventsourcing read below.
* raw            a sqlite3 scan of the same `events` rows in position order, with orjson
                 decoding the stored record of each: a floor for "read the log".
* db-floor       the database work a rebuild cannot avoid, with no per-event Python: a sqlite3
                 scan of the same `events` rows (every column, pages of 1000) and the insert
                 (executemany, one transaction) of every row the rebuilt projection tables
                 hold at the end, into empty copies of them; those rows are read from ours'
                 result before the clock starts. What eventsourcing's time leaves beyond this
                 is all a rebuild has for making events and folding them.
* eventsourcing  the `eventsourcing` library reading N stored events back as domain events
                 (`recorder.select_notifications` pages of 1000 + `mapper.to_domain_event`),
                 from its own SQLite file holding one created event per S3 record.

The logs are filled once per size (ours through `SqlEventStore.append` in batches of 1000, with
no projections; eventsourcing through `Application.save`, 1000 aggregates per call) and kept
in --cache, so a second run skips the filling.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after PYTHONPATH, so another checkout can be measured (A/B)
sys.path.insert(0, str(ROOT / "bench"))

FILL_BATCH = 1000
READ_PAGE = 1000


def _records(count: int) -> Any:
    """The synthetic S3 records of bench_ingest, made a chunk at a time."""
    from bench_ingest import make_records

    chunk = 10_000
    for start in range(0, count, chunk):
        yield from make_records(min(chunk, count - start), seed=start + 1, start=start)


# -- filling ----------------------------------------------------------------------------------


def fill_ours(path: Path, count: int) -> None:
    from eventstore.core.events import Source
    from eventstore.core.parsing import Envelope, parse_envelope
    from eventstore.store.database import create_engine, upgrade_schema
    from eventstore.store.sql import SqlEventStore

    engine = create_engine(f"sqlite:///{path}")
    upgrade_schema(engine)
    store = SqlEventStore(engine)  # the log alone: the rebuild under test builds every projection
    batch: list[dict[str, Any]] = []
    for record in _records(count):
        batch.append(record)
        if len(batch) == FILL_BATCH:
            _append(store, batch, parse_envelope, Envelope, Source)
            batch = []
    if batch:
        _append(store, batch, parse_envelope, Envelope, Source)
    engine.dispose()


def _append(
    store: Any, records: list[dict[str, Any]], parse: Any, envelope: Any, source: Any
) -> None:
    delivery = parse(envelope("fill", {"Records": records}, source.S3))
    store.append(delivery.events)


def fill_eventsourcing(path: Path, count: int) -> None:
    from es_model import S3Event
    from eventsourcing.application import Application

    app = Application(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    )
    batch: list[dict[str, Any]] = []
    for record in _records(count):
        batch.append(record)
        if len(batch) == FILL_BATCH:
            app.save(*(S3Event(r) for r in batch))
            batch = []
    if batch:
        app.save(*(S3Event(r) for r in batch))
    app.close()


def filled(cache: Path, kind: str, count: int) -> Path:
    path = cache / f"{kind}-{count}.db"
    if path.exists():
        if kind == "ours":  # a log cached by older code: bring its schema up to date
            subprocess.run([sys.executable, __file__, "_upgrade", str(path)], check=True, cwd=ROOT)
        return path
    partial = path.with_suffix(".partial")
    for leftover in cache.glob(f"{partial.name}*"):
        leftover.unlink()
    started = time.perf_counter()
    # In a child: the driver stays small, and a child inherits its parent's ru_maxrss.
    subprocess.run(
        [sys.executable, __file__, "_fill", kind, str(partial), str(count)], check=True, cwd=ROOT
    )
    _checkpoint_wal(partial)
    partial.rename(path)
    print(f"  filled {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def _checkpoint_wal(path: Path) -> None:
    """Fold the WAL into the file, so that copying the file copies the whole log."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


# -- the contenders (each in a child process) -------------------------------------------------


def child_ours_read(path: Path) -> dict[str, Any]:
    from eventstore.store.sql import open_store

    store = open_store(f"sqlite:///{path}", auto_upgrade_sqlite=False)
    rss_ready = _rss_kb()
    started = time.perf_counter()
    count = sum(1 for stored in store.read() if len(stored.event.record) >= 0)  # decoded
    seconds = time.perf_counter() - started
    return {"events": count, "seconds": seconds, "rss_ready_kb": rss_ready}


def child_ours(path: Path) -> dict[str, Any]:
    from eventstore.wiring import open_event_store

    event_store = open_event_store(f"sqlite:///{path}", auto_upgrade_sqlite=False)
    names = [p.name for p in event_store.projections]
    rss_ready = _rss_kb()
    started = time.perf_counter()
    reports = event_store.runner.rebuild(names)
    seconds = time.perf_counter() - started
    if any(r.error or not r.swapped for r in reports):
        raise RuntimeError(f"rebuild failed: {reports}")
    applied = max(r.applied for r in reports)
    return {"events": applied, "seconds": seconds, "rss_ready_kb": rss_ready, "projections": names}


def child_raw(path: Path) -> dict[str, Any]:
    import orjson

    db = sqlite3.connect(path)
    rss_ready = _rss_kb()
    started = time.perf_counter()
    cursor = db.execute("SELECT * FROM events ORDER BY position")
    record = [d[0] for d in cursor.description].index("record")
    count = 0
    while rows := cursor.fetchmany(READ_PAGE):
        for row in rows:
            orjson.loads(row[record])
            count += 1
    seconds = time.perf_counter() - started
    return {"events": count, "seconds": seconds, "rss_ready_kb": rss_ready}


def child_floor(path: Path) -> dict[str, Any]:
    """`path` is a log whose projections were rebuilt (by child_ours)."""
    import sqlalchemy as sa

    from eventstore.projections.checkpoints import suffixed_tables
    from eventstore.projections.registry import load_projections

    engine = sa.create_engine(f"sqlite:///{path}")
    work: list[tuple[str, list[tuple[Any, ...]]]] = []
    with engine.begin() as connection:
        for projection in load_projections():
            for name, copy in suffixed_tables(projection, "__floor").items():
                rows = connection.exec_driver_sql(f'SELECT * FROM "{name}"').all()
                copy.create(connection)
                marks = ", ".join("?" * len(copy.columns))
                insert = f'INSERT INTO "{copy.name}" VALUES ({marks})'
                work.append((insert, [tuple(r) for r in rows]))
    engine.dispose()
    db = sqlite3.connect(path, isolation_level=None)
    rss_ready = _rss_kb()
    started = time.perf_counter()
    cursor = db.execute("SELECT * FROM events ORDER BY position")
    count = 0
    while rows := cursor.fetchmany(READ_PAGE):
        count += len(rows)
    db.execute("BEGIN IMMEDIATE")
    for sql, table_rows in work:
        db.executemany(sql, table_rows)
    db.execute("COMMIT")
    seconds = time.perf_counter() - started
    written = sum(len(table_rows) for _, table_rows in work)
    return {"events": count, "seconds": seconds, "rss_ready_kb": rss_ready, "rows": written}


def child_eventsourcing(path: Path) -> dict[str, Any]:
    from eventsourcing.application import Application

    app = Application(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    )
    recorder, mapper = app.recorder, app.mapper
    rss_ready = _rss_kb()
    started = time.perf_counter()
    count, start = 0, 1
    while notifications := recorder.select_notifications(start=start, limit=READ_PAGE):
        for notification in notifications:
            mapper.to_domain_event(notification)
            count += 1
        start = notifications[-1].id + 1
    seconds = time.perf_counter() - started
    app.close()
    return {"events": count, "seconds": seconds, "rss_ready_kb": rss_ready}


CHILDREN = {
    "ours": child_ours,
    "ours-read": child_ours_read,
    "raw": child_raw,
    "db-floor": child_floor,
    "eventsourcing": child_eventsourcing,
}


def _rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _hwm_kb() -> int:
    """VmHWM: this process image's own peak RSS (ru_maxrss also counts the parent's at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_child(kind: str, path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "_child", kind, str(path)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{result.stderr[-4000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


# -- driver -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        kind, path = argv[1], Path(argv[2])
        result = CHILDREN[kind](path)
        result["rss_peak_kb"] = _rss_kb()
        result["hwm_kb"] = _hwm_kb()
        print(json.dumps(result))
        return 0
    if argv and argv[0] == "_upgrade":
        from eventstore.store.database import create_engine, upgrade_schema

        upgrade_schema(create_engine(f"sqlite:///{argv[1]}"))
        _checkpoint_wal(Path(argv[1]))
        return 0
    if argv and argv[0] == "_fill":
        kind, path, count = argv[1], Path(argv[2]), int(argv[3])
        (fill_ours if kind == "ours" else fill_eventsourcing)(path, count)
        return 0

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="log sizes, comma-separated")
    parser.add_argument("--quick", action="store_true", help="sizes 10000 and 100000, one run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (median)")
    parser.add_argument("--cache", type=Path, default=None, help="keep the filled logs here")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the working copies")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    sizes = [10_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    cache = args.cache or Path(tempfile.gettempdir()) / "bench-rebuild-cache"
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-rebuild-", dir=args.dir))
    print(
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cpus,"
        f" load average {os.getloadavg()[0]:.1f}; logs cached in {cache}"
    )

    results: dict[int, dict[str, dict[str, Any]]] = {}
    for size in sizes:
        ours_log = filled(cache, "ours", size)
        es_log = filled(cache, "es", size)
        samples: dict[str, list[dict[str, Any]]] = {kind: [] for kind in CHILDREN}
        for run in range(args.repeat):
            copy = work / f"ours-{size}-{run}.db"
            shutil.copyfile(ours_log, copy)  # the rebuild writes; the cached log stays as filled
            samples["ours"].append(run_child("ours", copy))
            samples["db-floor"].append(run_child("db-floor", copy))  # needs ours' result
            copy.unlink()
            samples["ours-read"].append(run_child("ours-read", ours_log))
            samples["raw"].append(run_child("raw", ours_log))
            samples["eventsourcing"].append(run_child("eventsourcing", es_log))
        results[size] = {}
        for kind, runs in samples.items():
            for found in runs:
                if found["events"] != size:
                    raise RuntimeError(f"{kind} went through {found['events']} events, not {size}")
            results[size][kind] = {
                "events_per_s": statistics.median(size / r["seconds"] for r in runs),
                "seconds": statistics.median(r["seconds"] for r in runs),
                "rss_ready_mb": max(r["rss_ready_kb"] for r in runs) / 1024,
                "rss_peak_mb": max(r["rss_peak_kb"] for r in runs) / 1024,
                "hwm_mb": max(r["hwm_kb"] for r in runs) / 1024,
                "rows_written": max(r.get("rows", 0) for r in runs),
            }
        if samples["ours"]:
            print(f"  projections rebuilt: {', '.join(samples['ours'][0]['projections'])}")

    print()
    print(f"{'events':>9}  {'contender':<14} {'events/s':>9} {'seconds':>8} {'RSS ready':>10}"
          f" {'RSS peak':>9} {'VmHWM':>7} {'ours/this':>9}")  # fmt: skip
    for size, by_kind in results.items():
        ours = by_kind["ours"]["events_per_s"]
        for kind, r in by_kind.items():
            ratio = "" if kind.startswith("ours") else f"{ours / r['events_per_s']:.2f}"
            print(
                f"{size:>9}  {kind:<14} {r['events_per_s']:>9.0f} {r['seconds']:>8.1f}"
                f" {r['rss_ready_mb']:>8.0f}MB {r['rss_peak_mb']:>7.0f}MB {r['hwm_mb']:>5.0f}MB"
                f" {ratio:>9}"
            )
    print("bar (issue 9): ours >= 1x eventsourcing (aim 1.5x), ours' peak RSS not growing with N")
    for size, by_kind in results.items():
        es_seconds = by_kind["eventsourcing"]["seconds"]
        left = es_seconds - by_kind["db-floor"]["seconds"]
        print(
            f"  {size}: eventsourcing's time leaves {left / size * 1e6:.1f} µs per event beyond"
            f" the database work (db-floor: the log read, {by_kind['db-floor']['rows_written']}"
            f" projection rows written) to make each event and fold it; ours spends"
            f" {(by_kind['ours']['seconds'] - by_kind['db-floor']['seconds']) / size * 1e6:.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
