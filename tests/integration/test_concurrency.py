"""The proof that no event is ever missed under concurrent writers (DESIGN: "No missed events
under concurrency").

Eight writer processes append batches at once, each its own events plus events another writer
also appends (two queues subscribed to one topic), and after each append catch the projections
up the way the Lambda consumer does (only when the lag or the delay says so). Meanwhile a reader
process catches up the naive way — `read(after=checkpoint)`, then checkpoint = the largest
position seen — which loses an event for good if any event could commit at a position below one
already visible; and a projection runner keeps every projection (the object catalog included:
the append writes only the log) caught up. At the end: every event is in the log once,
positions run 1..N, the reader saw each position exactly once, the caught-up catalog equals the
log folded from scratch, every projection equals a rebuild from scratch, and the chain
verifies.

Runs on SQLite and PostgreSQL, several rounds each; the processes are spawned once per module
and reused, so a round costs only its appends.
"""

import random
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from itertools import pairwise
from multiprocessing import get_context
from multiprocessing.pool import Pool
from typing import Any

import pytest
import sqlalchemy as sa

from eventstore.core.events import NewEvent
from eventstore.core.objectstate import ObjectState
from eventstore.projections.catalog import catalog_entries
from eventstore.projections.runner import ProjectionRunner
from eventstore.store.database import create_engine, upgrade_schema
from eventstore.store.schema import events as events_table
from eventstore.store.sql import SqlEventStore
from tests.notification_factory import T0, new_events, s3_record, sequencer_of

WRITERS = 8
OWN_EVENTS = 60  # per writer, its own keys
SHARED_EVENTS = 64  # each appended by two writers
ROUNDS = 3
DEADLINE = 60.0  # seconds a round may take before the test gives up
# The writers catch up as the consumer does: when a projection is this many events behind, or
# its checkpoint this many seconds old (smaller than the consumer's defaults, so they do).
WRITER_MIN_LAG = 50
WRITER_MAX_DELAY = 0.5


# -- the workload (deterministic, so every process derives the same events) ---------------


def _shared_records(round_no: int) -> list[dict[str, Any]]:
    """Pairs of (put, delete marker) on shared keys: the delete has the larger sequencer, so
    the key must end deleted whichever writer's copy commits first."""
    records = []
    for j in range(SHARED_EVENTS):
        key = f"shared/{round_no}/{j // 2}"
        deleting = j % 2 == 1
        records.append(
            s3_record(
                "bucket", key,
                event_name="ObjectRemoved:DeleteMarkerCreated" if deleting else "ObjectCreated:Put",
                sequencer=sequencer_of(10 * j + 1), version_id=f"s{j}",
                when=T0 + timedelta(milliseconds=j), request_id=f"REQ-SHARED-{round_no}-{j}",
                principal=f"AWS:writer-{j % WRITERS}",
            )
        )  # fmt: skip
    return records


def _writers_of_shared(j: int) -> tuple[int, int]:
    return j % WRITERS, (j + 3) % WRITERS


def _batches_of(round_no: int, writer: int) -> list[list[NewEvent]]:
    own = [
        s3_record(
            "bucket", f"w{writer}/{i % 45:03d}.dat",  # some keys are written twice
            sequencer=sequencer_of(1000 * writer + i + 1), version_id=f"w{writer}-{i}",
            when=T0 + timedelta(seconds=writer, milliseconds=i), size=i,
            request_id=f"REQ-{round_no}-{writer}-{i}", principal=f"AWS:writer-{writer}",
        )
        for i in range(OWN_EVENTS)
    ]  # fmt: skip
    shared = [
        record
        for j, record in enumerate(_shared_records(round_no))
        if writer in _writers_of_shared(j)
    ]
    records = own + shared
    rng = random.Random(f"{round_no}-{writer}")
    rng.shuffle(records)
    batches: list[list[NewEvent]] = []
    while records:
        size = rng.choice([1, 2, 5, 10, 25])
        chunk, records = records[:size], records[size:]
        batches.append(new_events(chunk, message_id=f"w{writer}-b{len(batches)}"))
    return batches


def expected_event_ids(round_no: int) -> set[str]:
    return {e.event_id for w in range(WRITERS) for b in _batches_of(round_no, w) for e in b}


# -- what each spawned process runs -----------------------------------------------------


def _wait_until(start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))


def write(url: str, round_no: int, writer: int, start_at: float) -> tuple[list[str], int]:
    """Append this writer's batches as fast as it can, catching the projections up after an
    append when they are due (as a consumer does); return (ids it stored, duplicates)."""
    batches = _batches_of(round_no, writer)
    engine = create_engine(url)
    store = SqlEventStore(engine)
    runner = ProjectionRunner(store)
    stored: list[str] = []
    duplicates = 0
    try:
        _wait_until(start_at)
        for batch in batches:
            result = store.append(batch, correlation_id=f"writer-{writer}")
            stored.extend(s.event.event_id for s in result.stored)
            duplicates += result.duplicates
            head = result.stored[-1].position if result.stored else None
            reports = runner.catch_up(head=head, min_lag=WRITER_MIN_LAG, max_delay=WRITER_MAX_DELAY)
            errors = [(r.name, r.error) for r in reports if r.error is not None]
            assert errors == [], errors
    finally:
        engine.dispose()
    return stored, duplicates


def catch_up_reader(url: str, expected: int, start_at: float, seed: int) -> list[tuple[int, str]]:
    """Read after a checkpoint, move the checkpoint to the largest position seen, repeat, in
    pages of random size, until `expected` events were seen (or the deadline passes)."""
    rng = random.Random(seed)
    engine = create_engine(url)
    store = SqlEventStore(engine)
    seen: list[tuple[int, str]] = []
    checkpoint = 0
    deadline = time.monotonic() + DEADLINE
    try:
        _wait_until(start_at)
        while len(seen) < expected and time.monotonic() < deadline:
            page = list(store.read(after=checkpoint, limit=rng.choice([1, 3, 7, 50, 500])))
            seen.extend((s.position, s.event.event_id) for s in page)
            if page:
                checkpoint = max(s.position for s in page)
    finally:
        engine.dispose()
    return seen


def run_projections(url: str, expected: int, start_at: float) -> int:
    """Keep every projection caught up while the writers write; return the rounds."""
    engine = create_engine(url)
    runner = ProjectionRunner(SqlEventStore(engine), chunk=64)
    rounds = 0
    deadline = time.monotonic() + DEADLINE
    try:
        _wait_until(start_at)
        while time.monotonic() < deadline:
            runner.catch_up()
            rounds += 1
            statuses = runner.status()
            if all(s.state == "live" and s.position >= expected for s in statuses):
                break
            time.sleep(0.01)
    finally:
        engine.dispose()
    return rounds


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def processes() -> Iterator[Pool]:
    """Spawned (not forked) processes, like separate Lambda containers; reused across rounds."""
    with get_context("spawn").Pool(WRITERS + 2) as pool:
        yield pool


@pytest.fixture(
    params=[
        pytest.param(("sqlite", r), id=f"sqlite-round{r}") for r in range(1, 2)
    ] + [
        pytest.param(("postgres", r), id=f"postgres-round{r}", marks=pytest.mark.postgres)
        for r in range(1, ROUNDS + 1)
    ]
)  # fmt: skip
def database(request: pytest.FixtureRequest) -> tuple[str, int]:
    backend, round_no = request.param
    if backend == "sqlite":
        url: str = request.getfixturevalue("sqlite_url")
        engine = create_engine(url)
        upgrade_schema(engine)
        engine.dispose()
    else:
        url = request.getfixturevalue("postgres_url")
    return url, round_no


# -- the proof --------------------------------------------------------------------------


def test_concurrent_writers_lose_nothing_and_a_catching_up_reader_misses_nothing(
    processes: Pool, database: tuple[str, int]
) -> None:
    url, round_no = database
    expected_ids = expected_event_ids(round_no)
    submitted = sum(len(b) for w in range(WRITERS) for b in _batches_of(round_no, w))
    start_at = time.time() + 0.5

    reader = processes.apply_async(catch_up_reader, (url, len(expected_ids), start_at, round_no))
    runner = processes.apply_async(run_projections, (url, len(expected_ids), start_at))
    writers = [processes.apply_async(write, (url, round_no, w, start_at)) for w in range(WRITERS)]
    results = [w.get(timeout=DEADLINE) for w in writers]
    seen = reader.get(timeout=DEADLINE)
    runner_rounds = runner.get(timeout=DEADLINE)

    engine = create_engine(url)
    store = SqlEventStore(engine)
    try:
        log = list(store.read())
        n = len(log)
        # Every event exactly once; every writer's append counted it as stored or duplicate.
        assert {s.event.event_id for s in log} == expected_ids
        assert n == len(expected_ids)
        stored_by_writers = [i for ids, _ in results for i in ids]
        assert sorted(stored_by_writers) == sorted(expected_ids)
        assert sum(d for _, d in results) == submitted - n
        # Positions 1..N, no gaps; the head agrees.
        assert [s.position for s in log] == list(range(1, n + 1))
        assert store.head_position() == n
        # The naive catch-up reader saw every position once, in order, and the same events.
        assert [p for p, _ in seen] == list(range(1, n + 1))
        assert dict(seen) == {s.position: s.event.event_id for s in log}
        # The runner process caught every projection up to the head while the writers wrote
        # (the append itself writes only the log).
        assert runner_rounds >= 1
        projection_runner = ProjectionRunner(store)
        for status in projection_runner.status():
            assert (status.state, status.position) == ("live", n), status
        # The two writers of each shared pair raced; the delete marker wins in every case.
        shared = {
            e.key: e
            for e in catalog_entries(engine, prefix=f"shared/{round_no}/", include_deleted=True)
        }
        assert len(shared) == SHARED_EVENTS // 2
        assert all(e.deleted for e in shared.values())
        # The caught-up catalog equals the log folded from scratch by the catalog rules...
        states: dict[tuple[str, str], ObjectState] = {}
        for s in log:
            key = (s.event.bucket, s.event.key)
            states.setdefault(key, ObjectState(*key)).apply(s.event, s.position)
        folded = sorted(
            (e for e in (st.entry() for st in states.values()) if e is not None),
            key=lambda e: (e.bucket, e.key),
        )
        assert list(catalog_entries(engine, include_deleted=True)) == folded
        # ...and every projection, caught up by several runners while writers wrote, equals
        # a rebuild from scratch, row for row.
        for projection in projection_runner.projections:
            for diff in projection_runner.dry_run(projection.name):
                assert (diff.only_live, diff.only_rebuilt) == (0, 0), diff
                assert diff.live_rows == diff.rebuilt_rows
        # The hash chain links the rows in commit order.
        result = store.verify()
        assert result.ok and result.checked == n, result
        with engine.connect() as connection:
            correlation = connection.execute(
                sa.select(sa.func.count(sa.distinct(events_table.c.correlation_id)))
            ).scalar()
        assert correlation == WRITERS
        # The writers really did run at once: on PostgreSQL their batches interleave in the
        # log (SQLite's busy-wait tends to let one writer run on, so there only the count).
        switches = sum(
            1 for a, b in pairwise(log)
            if a.event.correlation_id != b.event.correlation_id
        )  # fmt: skip
        assert switches >= (2 * WRITERS if engine.dialect.name == "postgresql" else WRITERS - 1)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    engine = create_engine(url)
    upgrade_schema(engine)
    engine.dispose()
    return url


def test_rebuilding_the_catalog_while_appends_go_on_neither_deadlocks_nor_loses(
    db_url: str,
) -> None:
    # The catalog is rebuilt into shadow tables and swapped in (under the append lock) while
    # another writer keeps appending and catching up after its appends, as a consumer does.
    # No append or catch-up may fail or wait forever, and the swapped-in catalog must hold
    # every event: those the rebuild folded, those appended during the swap, and after it.
    url = db_url
    store = SqlEventStore(create_engine(url))
    store.append(new_events([_catalog_record(i) for i in range(600)]))
    ProjectionRunner(store).catch_up()
    failures: list[BaseException] = []
    appended: list[int] = []
    append_times: list[float] = []
    stop = time.monotonic() + DEADLINE

    def keep_appending() -> None:
        appender = SqlEventStore(create_engine(url))
        runner = ProjectionRunner(appender)
        try:
            for start in range(600, 1400, 10):
                result = appender.append(
                    new_events([_catalog_record(i) for i in range(start, start + 10)])
                )
                appended.append(result.appended)
                append_times.append(time.monotonic())
                reports = runner.catch_up(min_lag=30, max_delay=0.05)
                errors = [(r.name, r.error) for r in reports if r.error is not None]
                assert errors == [], errors
                if time.monotonic() > stop:
                    return
        except BaseException as error:  # reported below: the test fails on any of them
            failures.append(error)
        finally:
            appender.engine.dispose()

    appending = threading.Thread(target=keep_appending)
    appending.start()
    rebuilder = ProjectionRunner(store, chunk=50, rebuild_chunk=50)
    rebuilds: list[tuple[float, float]] = []
    swapped_here = 0
    while appending.is_alive() and time.monotonic() < stop:  # rebuild again and again
        started = time.monotonic()
        reports = rebuilder.rebuild(["object_catalog"])
        rebuilds.append((started, time.monotonic()))
        assert [(r.name, r.error) for r in reports] == [("object_catalog", None)]
        swapped_here += reports[0].swapped
    appending.join(timeout=DEADLINE)

    assert not appending.is_alive(), "the appender is stuck"
    assert failures == []
    assert sum(appended) == 800
    # The rebuilds (each swapped in by this runner, or by the appender's catch-up, which
    # joins a rebuild under way) really ran while appends went on.
    during = [t for t in append_times if any(a < t < b for a, b in rebuilds)]
    assert len(rebuilds) >= 2 and len(during) >= 10, (len(rebuilds), len(during))
    assert swapped_here >= 1
    ProjectionRunner(store).catch_up()  # what arrived after the last swap
    status = {s.name: s for s in ProjectionRunner(store).status()}["object_catalog"]
    assert (status.state, status.position) == ("live", store.head_position())
    assert store.head_position() == 1400
    objects = list(catalog_entries(store.engine, bucket="rebuild-bucket"))
    assert len(objects) == 700
    assert {o.version_id for o in objects} == {f"v{i}" for i in range(700, 1400)}
    for diff in ProjectionRunner(store).dry_run("object_catalog"):
        assert (diff.only_live, diff.only_rebuilt) == (0, 0), diff
    store.engine.dispose()


def _catalog_record(i: int) -> dict[str, Any]:
    """Puts on 700 keys, each key put twice (i and i + 700 share a key)."""
    return s3_record(
        "rebuild-bucket", f"k/{i % 700}", sequencer=sequencer_of(i + 1), version_id=f"v{i}",
        when=T0 + timedelta(milliseconds=i), request_id=f"REQ-REBUILD-{i}",
    )  # fmt: skip


@pytest.mark.postgres
def test_writers_racing_for_the_same_ids_store_them_once_without_error(
    postgres_url: str,
) -> None:
    """Two appends of the same event both read its id as unknown before the lock; the one
    that gets the lock second fails its INSERT on the unique constraint and retries with the
    ids read under the lock, so it counts a duplicate instead of running out of retries."""
    (event,) = new_events([s3_record("bucket", "raced.txt", sequencer="0A")])
    store = SqlEventStore(create_engine(postgres_url, pool="null"))  # a connection per writer
    holding = create_engine(postgres_url)  # the lock's holder, on a connection of its own
    results: list[Any] = []
    with holding.connect() as holder:
        holder.execute(sa.select(sa.func.pg_advisory_xact_lock(store.append_lock_id)))
        threads = [
            threading.Thread(target=lambda: results.append(store.append([event]))) for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # both read the known ids and wait for the lock
            holder.execute(
                sa.text("SELECT pg_stat_clear_snapshot()")
            )  # a fresh look, mid-transaction
            waiting = holder.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
                )
            ).scalar()
            if waiting == 2:
                break
            time.sleep(0.05)
        assert waiting == 2
        holder.commit()  # releases the lock
    for thread in threads:
        thread.join(timeout=30)
    assert sorted((r.appended, r.duplicates) for r in results) == [(0, 1), (1, 0)]
    assert store.head_position() == 1 and store.verify().ok
    store.engine.dispose()
    holding.dispose()
