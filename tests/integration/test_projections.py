"""Projections: registration, back-fill, catch-up, rebuild into shadow tables, failures."""

import gc
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore.core.events import StoredEvent
from eventstore.projections import catalog as catalog_module
from eventstore.projections.base import Fold, Projection, ProjectionContext
from eventstore.projections.catalog import CatalogFold
from eventstore.projections.registry import load_projections, projection, unregister
from eventstore.projections.runner import SHADOW_SUFFIX, ProjectionRunner
from eventstore.store.bulk import write_rows
from eventstore.store.database import create_engine, upgrade_schema
from eventstore.store.sql import SqlEventStore
from eventstore.wiring import EventStore, event_store_on
from tests.notification_factory import EMPTY_ETAG, T0, new_events, s3_record

key_counts = sa.Table(
    "key_counts",
    sa.MetaData(),
    sa.Column("key", sa.Text(), primary_key=True),
    sa.Column("events", sa.Integer(), nullable=False),
)


class KeyCounts(Projection):
    """Counts events per key; `weight` lets a test tell two versions' rows apart."""

    name = "key_counts"
    version = 1
    tables = (key_counts,)
    weight: ClassVar[int] = 1
    fail_on_key: ClassVar[str | None] = None
    applied_positions: ClassVar[list[int]] = []

    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        table = context.table("key_counts")
        for stored in events:
            if stored.event.key == self.fail_on_key:
                raise RuntimeError(f"cannot project {stored.event.key}")
            type(self).applied_positions.append(stored.position)
            updated = context.connection.execute(
                sa.update(table)
                .where(table.c.key == stored.event.key)
                .values(events=table.c.events + self.weight)
            )
            if updated.rowcount == 0:
                context.connection.execute(
                    sa.insert(table).values(key=stored.event.key, events=self.weight)
                )


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same projection behaviour is required of both backends."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(autouse=True)
def _reset_key_counts() -> Iterator[None]:
    KeyCounts.weight, KeyCounts.fail_on_key, KeyCounts.version = 1, None, 1
    KeyCounts.applied_positions = []
    yield
    unregister("key_counts")


def _store_with(url: str, *extra: Projection) -> EventStore:
    """The log and the registered projections (and `extra`), wired as every entry point is."""
    engine = create_engine(url)
    upgrade_schema(engine)
    return event_store_on(SqlEventStore(engine), [*load_projections(), *extra])


def _rows(store: EventStore, table: str) -> list[tuple[Any, ...]]:
    with store.log.engine.connect() as connection:
        return sorted(tuple(r) for r in connection.execute(sa.text(f'SELECT * FROM "{table}"')))


BUCKET = "audit-bucket"


def _at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _puts(count: int, *, prefix: str = "data/", start: int = 0) -> list[Any]:
    return new_events(
        [
            s3_record(
                BUCKET, f"{prefix}file-{i % 7}.csv", sequencer=f"{i + 1:016X}", when=_at(i),
                size=100,
            )
            for i in range(start, start + count)
        ]
    )  # fmt: skip


def test_decorated_projection_backfills_from_history(db_url: str) -> None:
    # Given a log with history written before the projection existed
    store = _store_with(db_url)
    store.log.append(_puts(25))
    # When a projection is registered with the decorator and the runner catches up
    projection(KeyCounts)
    store = _store_with(db_url)
    assert "key_counts" in [p.name for p in store.projections]
    runner = ProjectionRunner(store.log, store.projections)
    assert {s.name: s.state for s in runner.status()}["key_counts"] == "new"
    runner.catch_up()
    # Then it holds the whole history and is live
    assert sum(count for _, count in _rows(store, "key_counts")) == 25
    status = {s.name: s for s in runner.status()}["key_counts"]
    assert (status.state, status.position, status.lag) == ("live", 25, 0)


def test_catch_up_while_ingestion_goes_on_applies_each_event_once(db_url: str) -> None:
    store = _store_with(db_url, KeyCounts())
    runner = ProjectionRunner(store.log, store.projections, chunk=3)
    for round_ in range(5):
        store.log.append(_puts(7, start=round_ * 7))
        runner.catch_up()
    assert sorted(KeyCounts.applied_positions) == list(range(1, 36))
    assert sum(count for _, count in _rows(store, "key_counts")) == 35


def test_version_bump_rebuilds_in_shadow_tables_and_swaps_atomically(db_url: str) -> None:
    # Given version 1 live over 20 events
    store = _store_with(db_url, KeyCounts())
    store.log.append(_puts(20))
    ProjectionRunner(store.log, store.projections).catch_up()
    before = _rows(store, "key_counts")
    assert sum(c for _, c in before) == 20
    # When the code changes (version 2 counts double) and the rebuild stops part-way
    KeyCounts.version, KeyCounts.weight = 2, 2
    runner = ProjectionRunner(store.log, store.projections, chunk=5, rebuild_chunk=5, flush_bound=5)
    with _killed_at_apply_call(3), pytest.raises(Killed):
        runner.rebuild(["key_counts"])
    # Then readers still see version 1, complete, while the shadow table fills
    assert _rows(store, "key_counts") == before
    assert {s.name: s.state for s in runner.status()}["key_counts"] == "rebuilding"
    assert 0 < sum(c for _, c in _rows(store, "key_counts" + SHADOW_SUFFIX)) < 40
    # And once caught up the new version replaces it whole, and the shadow is gone
    runner.catch_up()
    assert sum(c for _, c in _rows(store, "key_counts")) == 40
    with store.log.engine.connect() as connection:
        assert not sa.inspect(connection).has_table("key_counts" + SHADOW_SUFFIX)
    status = {s.name: s for s in runner.status()}["key_counts"]
    assert (status.state, status.live_version, status.position) == ("live", 2, 20)


class Killed(BaseException):
    """The process dying mid-rebuild (not an error a projection could be blamed for)."""


@contextmanager
def _killed_at_apply_call(number: int) -> Iterator[None]:
    calls = {"n": 0}
    original = KeyCounts.apply

    def dying_apply(
        self: KeyCounts, context: ProjectionContext, events: Sequence[StoredEvent]
    ) -> None:
        calls["n"] += 1
        if calls["n"] == number:
            raise Killed
        original(self, context, events)

    KeyCounts.apply = dying_apply  # type: ignore[method-assign]
    try:
        yield
    finally:
        KeyCounts.apply = original  # type: ignore[method-assign]


def test_interrupted_rebuild_resumes_where_it_stopped(db_url: str) -> None:
    store = _store_with(db_url, KeyCounts())
    store.log.append(_puts(30))
    # Flushed every 5 events; the process dies in the fourth flush.
    runner = ProjectionRunner(store.log, store.projections, chunk=5, rebuild_chunk=5, flush_bound=5)
    with _killed_at_apply_call(4), pytest.raises(Killed):
        runner.rebuild(["key_counts"])
    stopped_at = {s.name: s for s in ProjectionRunner(store.log, store.projections).status()}[
        "key_counts"
    ].rebuild_position
    assert stopped_at == 15
    KeyCounts.applied_positions = []
    runner.rebuild(["key_counts"])
    assert KeyCounts.applied_positions == list(range(16, 31))
    assert sum(c for _, c in _rows(store, "key_counts")) == 30


def test_failing_projection_stops_at_its_event_and_resumes_once_fixed(db_url: str) -> None:
    store = _store_with(db_url, KeyCounts())
    runner = ProjectionRunner(store.log, store.projections)
    runner.catch_up()
    KeyCounts.fail_on_key = "data/poison.csv"
    store.log.append(_puts(5))
    store.log.append(
        new_events([s3_record(BUCKET, "data/poison.csv", sequencer="00A0", when=_at(60), size=100)])
    )
    store.log.append(_puts(3, start=5))
    reports = {r.name: r for r in runner.catch_up()}
    # the failure is recorded at the poison event; the other projections carried on
    assert reports["key_counts"].error is not None
    status = {s.name: s for s in runner.status()}
    assert status["key_counts"].state == "failed"
    assert status["key_counts"].error_position == 6
    assert status["key_counts"].position == 5
    assert "cannot project data/poison.csv" in (status["key_counts"].last_error or "")
    assert status["object_catalog"].state == "live"
    assert status["principal_activity"].position == 9
    assert store.log.head_position() == 9
    # once fixed, it resumes from the failing event
    KeyCounts.fail_on_key = None
    runner.catch_up()
    status = {s.name: s for s in runner.status()}
    assert (status["key_counts"].state, status["key_counts"].position) == ("live", 9)
    assert sum(c for _, c in _rows(store, "key_counts")) == 9


class Broken(KeyCounts):
    name = "broken"
    tables = (
        sa.Table(
            "broken",
            sa.MetaData(),
            sa.Column("key", sa.Text(), primary_key=True),
            sa.Column("events", sa.Integer(), nullable=False),
        ),
    )

    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        raise RuntimeError("a bug")


def test_a_failing_projection_fails_neither_the_append_nor_the_others(db_url: str) -> None:
    store = _store_with(db_url, Broken())
    store.catch_up()
    result = store.log.append(_puts(4))
    reports = {r.name: r for r in store.catch_up()}
    assert result.appended == 4
    assert "a bug" in (reports["broken"].error or "")
    assert len(list(store.objects())) == 4
    status = {s.name: s for s in store.runner.status()}
    assert status["broken"].state == "failed"
    assert status["object_catalog"].position == 4


def test_dry_run_reports_differences_without_touching_live_tables(db_url: str) -> None:
    store = _store_with(db_url)
    store.log.append(_puts(10))
    runner = ProjectionRunner(store.log, store.projections)
    runner.catch_up()
    with store.log.write() as connection:
        connection.execute(sa.text("DELETE FROM object_catalog WHERE key = 'data/file-3.csv'"))
    diffs = {d.table: d for d in runner.dry_run("object_catalog")}
    assert diffs["object_catalog"].live_rows == 6
    assert diffs["object_catalog"].rebuilt_rows == 7
    assert (diffs["object_catalog"].only_live, diffs["object_catalog"].only_rebuilt) == (0, 1)
    assert diffs["object_catalog"].samples_only_rebuilt[0]["key"] == "data/file-3.csv"
    assert diffs["object_versions"].only_live == 0
    assert len(_rows(store, "object_catalog")) == 6  # untouched
    with store.log.engine.connect() as connection:
        assert not sa.inspect(connection).has_table("object_catalog__dryrun")


def test_filtered_replay_from_log_builds_from_matching_events_only(db_url: str) -> None:
    from eventstore.store.base import EventQuery

    store = _store_with(db_url, KeyCounts())
    store.log.append(_puts(6, prefix="a/") + _puts(4, prefix="b/", start=6))
    runner = ProjectionRunner(store.log, store.projections)
    runner.rebuild(["key_counts"], event_filter=EventQuery(prefix="b/"))
    assert sum(c for _, c in _rows(store, "key_counts")) == 4
    store.log.append(_puts(2, prefix="a/", start=10) + _puts(1, prefix="b/", start=12))
    runner.catch_up()  # the filter stays with the live projection
    assert sum(c for _, c in _rows(store, "key_counts")) == 5


# -- incremental equals rebuilt, for random histories -------------------------------------

KEYS = ["logs/a.csv", "logs/2026/b.json", "img/c d.png", "top.txt"]
NAMES = [
    "ObjectCreated:Put", "ObjectCreated:Copy", "ObjectRemoved:Delete",
    "ObjectRemoved:DeleteMarkerCreated", "ObjectTagging:Put", "LifecycleExpiration:Delete",
]  # fmt: skip


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Any], list[int]]:
    count = draw(st.integers(min_value=1, max_value=30))
    records = []
    for index in range(count):
        name = draw(st.sampled_from(NAMES))
        versioned = draw(st.booleans())
        sequenced = name != "ObjectTagging:Put" and draw(st.integers(0, 9)) > 0
        key = draw(st.sampled_from(KEYS))
        version_id = f"v{draw(st.integers(0, 3))}" if versioned else None
        sequencer = f"{draw(st.integers(1, 400)):X}" if sequenced else None
        when = _at(draw(st.integers(0, 50)))
        size = draw(st.integers(0, 5000))
        created = name.startswith("ObjectCreated:")  # only these carry a size and an eTag
        records.append(
            s3_record(
                BUCKET,
                key,
                event_name=name,
                version_id=version_id,
                sequencer=sequencer,
                when=when,
                size=size if created else None,
                etag=EMPTY_ETAG if created else None,
                principal=draw(st.sampled_from(["AWS:alice", "AWS:bob"])),
                request_id=f"R{index}",
            )
        )
    splits = draw(st.lists(st.integers(1, count), max_size=4))
    return new_events(records), sorted(set(splits))


BUILT_IN_TABLES = ["object_catalog", "object_versions", "prefix_stats", "principal_activity"]


@contextmanager
def _fresh_database(request: pytest.FixtureRequest, backend: str) -> Iterator[str]:
    if backend == "sqlite":
        folder = request.getfixturevalue("tmp_path_factory").mktemp("p")
        yield f"sqlite:///{folder / 'events.db'}"
    else:
        with request.getfixturevalue("postgres_databases").fresh() as url:
            yield url


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    history=histories(),
    knobs=st.tuples(st.integers(1, 8), st.none() | st.integers(1, 6), st.integers(1, 6)),
)
def test_incremental_projections_equal_a_rebuild_from_scratch(
    request: pytest.FixtureRequest,
    backend: str,
    history: tuple[list[Any], list[int]],
    knobs: tuple[int, int | None, int],
) -> None:
    """Catch-ups over random batches and chunk sizes, one of them killed between the fold and
    its flush, give the tables a rebuild from scratch gives; and so does a rebuild that
    flushes every few entries and forgets what it flushed (reading it back)."""
    events, splits = history
    chunk, crash_at, bound = knobs
    with _fresh_database(request, backend) as url, _keep_after_flush(0):
        _check_incremental_equals_rebuilt(
            url, events, splits, chunk=chunk, bound=bound, crash_at=crash_at
        )


@contextmanager
def _crash_in_flush(number: int | None) -> Iterator[None]:
    """Kill the process (a BaseException) in the `number`-th flush of the catalog's fold."""
    original = CatalogFold.flush
    calls = {"n": 0}

    def flush(self: CatalogFold, context: ProjectionContext) -> None:
        calls["n"] += 1
        if calls["n"] == number:
            raise Killed
        original(self, context)

    CatalogFold.flush = flush  # type: ignore[method-assign]
    try:
        yield
    finally:
        CatalogFold.flush = original  # type: ignore[method-assign]


@contextmanager
def _keep_after_flush(keys: int) -> Iterator[None]:
    original = catalog_module.KEEP_AFTER_FLUSH
    catalog_module.KEEP_AFTER_FLUSH = keys
    try:
        yield
    finally:
        catalog_module.KEEP_AFTER_FLUSH = original


def _check_incremental_equals_rebuilt(
    url: str,
    events: list[Any],
    splits: list[int],
    *,
    chunk: int,
    bound: int,
    crash_at: int | None = None,
) -> None:
    store = _store_with(url)
    runner = ProjectionRunner(store.log, store.projections, chunk=chunk)
    bounds = [0, *splits, len(events)]
    with _crash_in_flush(crash_at):
        for start, end in pairwise(bounds):
            store.log.append(events[start:end])
            try:
                runner.catch_up()
            except Killed:
                runner.catch_up()  # the next invocation: nothing half-applied, nothing lost
    incremental = {table: _rows(store, table) for table in BUILT_IN_TABLES}
    rebuilder = ProjectionRunner(
        store.log, store.projections, chunk=chunk, rebuild_chunk=chunk, flush_bound=bound
    )
    rebuilder.rebuild([p.name for p in store.projections])
    rebuilt = {table: _rows(store, table) for table in BUILT_IN_TABLES}
    assert incremental == rebuilt
    store.log.engine.dispose()


# -- a projection shipped by another package ----------------------------------------------

PLUGIN = Path(__file__).resolve().parents[1] / "plugin_package"


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install the example package into a folder of its own (no network, no build
    isolation), as a deployment would install a projection package."""
    source = tmp_path_factory.mktemp("src") / "plugin"
    shutil.copytree(PLUGIN, source)  # pip builds in the tree: keep the repository clean
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True,
    )  # fmt: skip
    return target


def test_entry_point_projection_is_found_and_backfills(
    installed_plugin: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store_with(db_url)
    readme = s3_record(BUCKET, "x/readme.md", sequencer="FFFF", when=_at(99), size=100)
    store.log.append(_puts(9) + new_events([readme]))
    monkeypatch.syspath_prepend(str(installed_plugin))
    names = [p.name for p in load_projections()]
    assert "extension_counts" in names
    store = _store_with(db_url)
    ProjectionRunner(store.log, store.projections).catch_up()
    assert _rows(store, "extension_counts") == [("csv", 9), ("md", 1)]


def test_catch_up_given_the_head_asks_nothing_while_nothing_can_be_due(db_url: str) -> None:
    store = _store_with(db_url, KeyCounts())
    runner = ProjectionRunner(store.log, store.projections)
    store.log.append(_puts(5))
    runner.catch_up(min_lag=100, max_delay=60)  # builds the new projections: all at 5
    store.log.append(_puts(3, start=5))
    statements: list[str] = []
    sa.event.listen(store.log.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    # Lag 3 < 100 and the checkpoints moved under 60 s ago: not a single query.
    runner.catch_up(min_lag=100, max_delay=60, head=8)
    assert statements == []
    assert {s.name: s.position for s in runner.status()}["key_counts"] == 5

    # A lag at the threshold, or a checkpoint older than the delay, is caught up.
    runner.catch_up(min_lag=3, max_delay=60, head=8)
    assert {s.name: s.position for s in runner.status()}["key_counts"] == 8
    store.log.append(_puts(1, start=8))
    runner.catch_up(min_lag=100, max_delay=0, head=9)
    assert {s.name: s.position for s in runner.status()}["key_counts"] == 9


def test_a_runner_that_finds_the_folding_done_by_another_looks_less_often(db_url: str) -> None:
    # Given two containers' runners on one log, and every projection live at 5
    store = _store_with(db_url, KeyCounts())
    leader = ProjectionRunner(store.log, store.projections)
    follower = ProjectionRunner(store.log, store.projections)
    store.log.append(_puts(5))
    leader.catch_up()
    # When the follower looks and finds nothing to do (another runner keeps them caught up)
    follower.catch_up(min_lag=10, max_delay=60, head=5)
    store.log.append(_puts(10, start=5))
    leader.catch_up(min_lag=10, max_delay=60, head=15)  # the leader folds 6..15
    statements: list[str] = []
    sa.event.listen(store.log.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    # Then at a lag of min_lag since it last looked, it does not even ask
    follower.catch_up(min_lag=10, max_delay=60, head=15)
    assert statements == []
    # And at twice that it looks, and folds what nobody has folded yet
    store.log.append(_puts(10, start=15))
    follower.catch_up(min_lag=10, max_delay=60, head=25)
    assert statements
    assert {s.name: s.position for s in follower.status()}["key_counts"] == 25


@pytest.mark.parametrize("chunk", [2, 3, 1000])
def test_a_catch_up_folds_its_callers_own_append_without_reading_it_back(
    db_url: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given live projections at 4, another writer's 3 events, then the caller's own 5
    store = _store_with(db_url, KeyCounts())
    store.log.append(_puts(4))
    store.catch_up()
    store.log.append(_puts(3, start=4))
    own = store.log.append(_puts(5, start=7)).stored
    read: list[int] = []
    original = SqlEventStore.read_in

    def counting(self: SqlEventStore, connection: Any, **options: Any) -> Iterator[StoredEvent]:
        for stored in original(self, connection, **options):
            read.append(stored.position)
            yield stored

    monkeypatch.setattr(SqlEventStore, "read_in", counting)
    # When the caller catches up, handing over what it appended
    runner = ProjectionRunner(store.log, store.projections, chunk=chunk)
    reports = runner.catch_up(head=own[-1].position, appended=own)
    # Then every event is folded once, in order, and only the other writer's were read
    assert all(r.caught_up and not r.error for r in reports)
    assert KeyCounts.applied_positions == list(range(1, 13))
    assert read == [5, 6, 7]
    # And the state is what a rebuild from the log alone makes
    folded = {name: _rows(store, name) for name in ("key_counts", "object_catalog")}
    monkeypatch.setattr(SqlEventStore, "read_in", original)
    KeyCounts.version = 2
    rebuilt = _store_with(db_url, KeyCounts())
    rebuilt.runner.rebuild([p.name for p in rebuilt.projections])
    assert {name: _rows(rebuilt, name) for name in folded} == folded


def test_a_writer_alone_folds_its_appends_of_several_calls_without_reading_them_back(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner remembers the run of events its callers appended: a later catch-up folds
    the earlier calls' events from memory too, while each append follows on from the last
    one in the chain. Another writer's append in between breaks the run: those events, and
    the ones before them, are read."""
    store = _store_with(db_url, KeyCounts())
    store.log.append(_puts(2))
    runner = ProjectionRunner(store.log, store.projections, chunk=100)
    runner.catch_up()
    read: list[int] = []
    original = SqlEventStore.read_in

    def counting(self: SqlEventStore, connection: Any, **options: Any) -> Iterator[StoredEvent]:
        for stored in original(self, connection, **options):
            read.append(stored.position)
            yield stored

    monkeypatch.setattr(SqlEventStore, "read_in", counting)
    # Three appends by this writer alone, the catch-up left for later (min_lag) in between
    for start in (2, 5, 8):
        own = store.log.append(_puts(3, start=start)).stored
        runner.catch_up(head=own[-1].position, appended=own, min_lag=9, max_delay=3600)
    assert KeyCounts.applied_positions == [1, 2, *range(3, 12)] and read == []
    # Another writer's append, then this writer's: the run starts again after the gap
    store.log.append(_puts(2, start=11))
    own = store.log.append(_puts(2, start=13)).stored
    runner.catch_up(head=own[-1].position, appended=own)
    assert KeyCounts.applied_positions == list(range(1, 16)) and read == [12, 13]
    # A catch-up with no append of its own reads: the run was last checked against the log's
    # chain by an append, and the log may have been restored since
    own = store.log.append(_puts(2, start=15)).stored
    runner.catch_up(head=own[-1].position, appended=own, min_lag=9, max_delay=3600)
    runner.catch_up()
    assert KeyCounts.applied_positions == list(range(1, 18)) and read[2:] == [16, 17]


def test_threads_sharing_a_runner_fold_each_event_once(db_url: str) -> None:
    """The local poller's threads share one runner per database: each appends and hands its
    events to the catch-up while the others do the same. Every event is folded once, and the
    tables are what a rebuild makes."""
    store = _store_with(db_url, KeyCounts())
    runner = ProjectionRunner(store.log, store.projections, chunk=7)
    runner.catch_up()
    errors: list[BaseException] = []

    def write(thread: int) -> None:
        try:
            for step in range(12):
                start = 1000 * thread + 3 * step
                own = store.log.append(_puts(3, start=start, prefix=f"t{thread}/")).stored
                runner.catch_up(head=own[-1].position, appended=own)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    runner.catch_up()
    assert sorted(KeyCounts.applied_positions) == list(range(1, 4 * 12 * 3 + 1))
    folded = {name: _rows(store, name) for name in ("key_counts", "object_catalog")}
    KeyCounts.version = 2
    rebuilt = _store_with(db_url, KeyCounts())
    rebuilt.runner.rebuild([p.name for p in rebuilt.projections])
    assert {name: _rows(rebuilt, name) for name in folded} == folded


def test_live_projections_at_different_positions_catch_up_together_each_event_once(
    db_url: str,
) -> None:
    store = _store_with(db_url, KeyCounts())
    store.log.append(_puts(10))
    ProjectionRunner(store.log, store.projections).catch_up()
    store.log.append(_puts(5, start=10))
    activity = [p for p in store.projections if p.name == "principal_activity"]
    ProjectionRunner(store.log, activity).catch_up()  # principal_activity at 15, key_counts at 10
    store.log.append(_puts(5, start=15))

    ProjectionRunner(
        store.log, store.projections, chunk=3
    ).catch_up()  # one read per chunk for both

    positions = {
        s.name: s.position for s in ProjectionRunner(store.log, store.projections).status()
    }
    assert positions["key_counts"] == positions["principal_activity"] == 20
    assert sorted(KeyCounts.applied_positions) == list(range(1, 21))
    assert sum(count for _, count in _rows(store, "key_counts")) == 20
    assert sum(row[2] for row in _rows(store, "principal_activity")) == 20


# -- the fast API, as a user writes it ------------------------------------------------------


def _bytes_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("bucket", sa.Text(), primary_key=True),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
    )


bytes_by_bucket = _bytes_table("bytes_by_bucket")


class BytesByBucket(Projection):
    """Bytes ever created per bucket, folded in memory and written once per flush."""

    name = "bytes_by_bucket"
    version = 1
    tables = (bytes_by_bucket,)

    def start(self) -> Fold:
        return _BytesFold()


class _BytesFold(Fold):
    def __init__(self) -> None:
        self.totals: dict[str, int] = {}

    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        for stored in events:
            if stored.event.event_name.startswith("ObjectCreated:"):
                bucket = stored.event.bucket
                self.totals[bucket] = self.totals.get(bucket, 0) + (stored.event.size or 0)

    def flush(self, context: ProjectionContext) -> None:
        table = context.table("bytes_by_bucket")
        stored: dict[str, int] = {}
        if not context.fresh and self.totals:
            rows = context.connection.execute(
                sa.select(table).where(table.c.bucket.in_(list(self.totals)))
            )
            stored = {row.bucket: row.bytes for row in rows}
        rows_out = [(b, stored.get(b, 0) + n) for b, n in self.totals.items()]
        write_rows(context.connection, table, rows_out, upsert=True)
        self.totals = {}

    @property
    def held(self) -> int:
        return len(self.totals)


def test_a_users_fold_backfills_catches_up_and_rebuilds_to_the_same_rows(db_url: str) -> None:
    # Given history written before a user's fold-based projection is registered
    store = _store_with(db_url)
    store.log.append(_puts(30))
    projection(BytesByBucket)
    try:
        store = _store_with(db_url)
        runner = ProjectionRunner(store.log, store.projections, chunk=7, flush_bound=3)
        # When it back-fills, then catches up with more events in small chunks
        assert all(r.error is None for r in runner.catch_up())
        store.log.append(_puts(12, start=30))
        runner.catch_up()
        caught_up = _rows(store, "bytes_by_bucket")
        # Then it holds every created byte, and a rebuild from scratch gives the same row
        assert caught_up == [(BUCKET, 42 * 100)]
        (report,) = runner.rebuild(["bytes_by_bucket"])
        assert report.swapped and _rows(store, "bytes_by_bucket") == caught_up
    finally:
        unregister("bytes_by_bucket")


class _UnwrittenFold(_BytesFold):
    """A fold whose flush forgets what it folded: what it writes is not the point here."""

    def flush(self, context: ProjectionContext) -> None:
        self.totals = {}


class _PoisonedFold(_UnwrittenFold):
    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        for stored in events:
            if stored.event.key == "data/poison.csv":
                raise RuntimeError("cannot fold data/poison.csv")
        super().apply(context, events)


class PoisonedBytes(BytesByBucket):
    name = "poisoned_bytes"
    tables = (_bytes_table("poisoned_bytes"),)

    def start(self) -> Fold:
        return _PoisonedFold()


def test_a_fold_failing_during_a_rebuild_is_recorded_on_a_one_connection_engine(
    db_url: str,
) -> None:
    """A fold that raises while a rebuild reads the log is isolated after that read's
    connection is returned: the engine (a Lambda's) has one connection, and asking for a
    second one meanwhile waited out the pool's timeout (or, under other runners, deadlocked
    with a swap)."""
    store = _store_with(db_url, PoisonedBytes())
    store.log.append(_puts(3))
    store.log.append(
        new_events([s3_record(BUCKET, "data/poison.csv", sequencer="00A0", when=_at(60), size=1)])
    )
    reports = {r.name: r for r in store.catch_up()}  # raised the pool's TimeoutError
    assert "cannot fold data/poison.csv" in (reports["poisoned_bytes"].error or "")
    status = {s.name: s for s in store.runner.status()}
    assert status["poisoned_bytes"].error_position == 4


class _CollectorWatch(_UnwrittenFold):
    """Notes whether Python's cyclic garbage collector was on while it folded and flushed."""

    seen: ClassVar[list[bool]] = []

    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        type(self).seen.append(gc.isenabled())
        super().apply(context, events)

    def flush(self, context: ProjectionContext) -> None:
        type(self).seen.append(gc.isenabled())
        super().flush(context)


class CollectorWatch(BytesByBucket):
    name = "collector_watch"
    tables = (_bytes_table("collector_watch"),)

    def start(self) -> Fold:
        return _CollectorWatch()


def test_folds_run_with_the_garbage_collector_held_off_and_get_it_back_after(
    db_url: str,
) -> None:
    """Catch-ups and rebuilds hold the cyclic collector off while they fold (it walked every
    object a fold held, again and again), and turn it back on when they are done, when a
    fold raises too; a caller that had turned it off keeps it off."""
    _CollectorWatch.seen = []
    store = _store_with(db_url, CollectorWatch())
    store.log.append(_puts(10))
    assert gc.isenabled()
    (backfill,) = [r for r in store.catch_up() if r.name == "collector_watch"]  # a rebuild
    store.log.append(_puts(5, start=10))
    (live,) = [r for r in store.catch_up() if r.name == "collector_watch"]
    assert (backfill.applied, backfill.error, live.applied, live.error) == (10, None, 5, None)
    assert len(_CollectorWatch.seen) >= 4 and not any(_CollectorWatch.seen)
    assert gc.isenabled()

    poisoned = _store_with(db_url, PoisonedBytes())
    poisoned.log.append(
        new_events([s3_record(BUCKET, "data/poison.csv", sequencer="00A0", when=_at(60), size=1)])
    )
    assert any(r.error for r in poisoned.catch_up())
    assert gc.isenabled()

    gc.disable()
    try:
        store.log.append(_puts(2, start=15))
        store.catch_up()
        assert not gc.isenabled()
    finally:
        gc.enable()
