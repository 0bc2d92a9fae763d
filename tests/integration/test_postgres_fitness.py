"""PostgreSQL in production: the schema the migrations build there, the engine a Lambda
container gets (pool, no session state for RDS Proxy, timeouts), what a lost connection does,
and the whole command line against a PostgreSQL URL."""

import faulthandler
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from consumers import runtime
from consumers.ingest import handler
from eventstore.cli import main as cli
from eventstore.core.objectstate import CatalogEntry
from eventstore.errors import ConfigurationError, StorageError
from eventstore.projections.catalog import (
    ObjectCatalogProjection,
    _postgres_select,
    catalog_entries,
)
from eventstore.projections.runner import ProjectionRunner
from eventstore.store.database import APPEND_LOCK_ID, create_engine, upgrade_schema
from eventstore.store.schema import SCHEMA_REVISION, metadata, object_catalog, object_versions
from eventstore.store.sql import SqlEventStore
from tests.helpers import LambdaContext
from tests.notification_factory import (
    T0,
    new_events,
    notification,
    put_records,
    s3_record,
    sqs_lambda_event,
)
from tests.postgres_server import libpq_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def admin(postgres_url: str) -> Iterator[psycopg.Connection]:
    """A plain psycopg connection to the test database, outside the store's engine."""
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as connection:
        yield connection


def log_store(url: str) -> SqlEventStore:
    """The log alone, as every append path uses it: it knows no projection."""
    return SqlEventStore(create_engine(url))


def caught_up_catalog(store: SqlEventStore, *, include_deleted: bool = False) -> list[CatalogEntry]:
    """The object catalog once the runner has caught it up with the log."""
    reports = ProjectionRunner(store, [ObjectCatalogProjection()]).catch_up()
    assert [(r.name, r.caught_up, r.error) for r in reports] == [("object_catalog", True, None)]
    return list(catalog_entries(store.engine, include_deleted=include_deleted))


# -- the schema ---------------------------------------------------------------------------


def test_the_migrations_build_the_schema_the_code_describes(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
            revision = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert revision.scalar() == SCHEMA_REVISION
    finally:
        engine.dispose()


def test_column_types_are_chosen_for_postgres(admin: psycopg.Connection) -> None:
    rows = admin.execute(
        "SELECT table_name, column_name, data_type, collation_name FROM information_schema.columns"
        " WHERE table_schema = 'public'"
    ).fetchall()
    columns = {(t, c): (d, coll) for t, c, d, coll in rows}

    for table, column in [("events", "position"), ("events", "size"),
                          ("object_catalog", "last_position"),
                          ("projection_checkpoints", "position")]:  # fmt: skip
        assert columns[(table, column)][0] == "bigint", (table, column)
    for table, column in [("events", "event_time"), ("events", "recorded_at"),
                          ("object_catalog", "last_event_time")]:  # fmt: skip
        assert columns[(table, column)][0] == "timestamp with time zone", (table, column)
    # Prefix ranges compare keys bytewise, whatever the database's default collation.
    for table, column in [("events", "bucket"), ("events", "key"), ("events", "stream"),
                          ("events", "event_name"), ("object_catalog", "bucket"),
                          ("object_catalog", "key"), ("object_versions", "key")]:  # fmt: skip
        assert columns[(table, column)][1] == "C", (table, column)
    # The verbatim record is text, byte for byte what was hashed (jsonb would reorder keys).
    assert columns[("events", "record")][0] == "text"


def test_constraint_and_index_names_match_sqlite(postgres_url: str, sqlite_url: str) -> None:
    def names(url: str) -> set[str]:
        engine = create_engine(url)
        try:
            if engine.dialect.name == "sqlite":
                upgrade_schema(engine)
            inspector = sa.inspect(engine)
            found: set[str] = set()
            for table in ("events", "object_catalog", "object_versions", "projection_checkpoints"):
                found.add(str(inspector.get_pk_constraint(table)["name"]))
                found.update(str(i["name"]) for i in inspector.get_indexes(table))
                found.update(str(u["name"]) for u in inspector.get_unique_constraints(table))
            return found
        finally:
            engine.dispose()

    on_postgres = names(postgres_url)
    assert {"pk_events", "uq_events_event_id", "ix_events_bucket_key_event_time"} <= on_postgres
    assert on_postgres - {"uq_events_event_id"} == names(sqlite_url) - {"uq_events_event_id"}


def test_db_upgrade_builds_an_empty_database_and_is_idempotent(
    postgres_databases: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with postgres_databases.fresh(empty=True) as url:
        assert cli(["--db", url, "db", "upgrade"]) == 0
        assert cli(["--db", url, "db", "upgrade"]) == 0
        assert cli(["--db", url, "verify"]) == 0
    assert capsys.readouterr().out.count(f"revision {SCHEMA_REVISION}") == 2


def test_an_unmigrated_database_is_refused_not_created(
    postgres_databases: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with postgres_databases.fresh(empty=True) as url:
        assert cli(["--db", url, "objects"]) == 2
        assert "eventstore db upgrade" in capsys.readouterr().err
        engine = create_engine(url)
        try:
            assert not sa.inspect(engine).has_table("events")
        finally:
            engine.dispose()


# -- the engine a Lambda container gets ---------------------------------------------------


def test_the_engine_holds_one_connection_or_none(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    single = create_engine(postgres_url)
    assert isinstance(single.pool, sa.pool.QueuePool)
    assert (single.pool.size(), single.pool._max_overflow) == (1, 0)
    monkeypatch.setenv("EVENTSTORE_DB_POOL", "null")
    proxied = create_engine(postgres_url)
    assert isinstance(proxied.pool, sa.pool.NullPool)
    monkeypatch.setenv("EVENTSTORE_DB_POOL", "lots")
    with pytest.raises(ConfigurationError):
        create_engine(postgres_url)
    monkeypatch.delenv("EVENTSTORE_DB_POOL")
    assert (
        create_engine(postgres_url.replace("postgresql+psycopg", "postgresql")).driver == "psycopg"
    )
    single.dispose()
    proxied.dispose()


def test_appends_leave_no_session_state_behind(postgres_url: str) -> None:
    """What would pin an RDS Proxy connection: settings changed for the session, prepared
    statements, advisory locks held past the transaction. None may outlive an append."""
    store = log_store(postgres_url)
    try:
        for batch in range(12):  # psycopg would prepare a statement after 5 runs by default
            store.append(new_events(put_records("b", [f"k{batch}"], start=batch)))
        with store.engine.connect() as connection:  # the same pooled server connection
            assert connection.execute(sa.text("SHOW statement_timeout")).scalar() == "0"
            assert connection.execute(sa.text("SHOW lock_timeout")).scalar() == "0"
            prepared = connection.execute(sa.text("SELECT count(*) FROM pg_prepared_statements"))
            assert prepared.scalar() == 0
            locks = connection.execute(
                sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
            )
            assert locks.scalar() == 0
        with store.write() as connection:  # ...while inside a write they are in force
            assert connection.execute(sa.text("SHOW statement_timeout")).scalar() == "1min"
            assert connection.execute(sa.text("SHOW lock_timeout")).scalar() == "15s"
            isolation = connection.execute(sa.text("SHOW transaction_isolation")).scalar()
            assert isolation == "read committed"
    finally:
        store.engine.dispose()


def test_appends_are_read_committed_even_if_the_server_default_is_not(
    postgres_url: str, admin: psycopg.Connection
) -> None:
    """Gap-free appends need each statement to see what committed before it; a database
    whose default is REPEATABLE READ must not change that."""
    database = admin.info.dbname
    admin.execute(
        f"ALTER DATABASE \"{database}\" SET default_transaction_isolation = 'repeatable read'"
    )
    store = log_store(postgres_url)
    try:
        with store.write() as connection:
            isolation = connection.execute(sa.text("SHOW transaction_isolation")).scalar()
        assert isolation == "read committed"
    finally:
        store.engine.dispose()


def test_an_append_waiting_too_long_for_the_lock_fails_whole(
    postgres_url: str, admin: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTSTORE_DB_LOCK_TIMEOUT", "200ms")
    store = log_store(postgres_url)
    try:
        with admin.transaction():
            admin.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK_ID,))
            started = time.monotonic()
            with pytest.raises(StorageError, match="lock timeout"):
                store.append(new_events(put_records("b", ["a", "b"])))
            assert time.monotonic() - started < 5
        assert store.head_position() == 0
        assert store.append(new_events(put_records("b", ["a", "b"]))).appended == 2
    finally:
        store.engine.dispose()


def test_a_batch_of_1000_events_of_about_1_mb_appends_without_hanging(postgres_url: str) -> None:
    """A large INSERT must not be pipelined with its COMMIT: psycopg's pipeline mode can hang
    once a message outgrows the socket buffers (psycopg #685). A hang fails the test, with
    every thread's traceback, instead of blocking the suite."""
    records = put_records("big", [f"large/{i:04d}.bin" for i in range(1000)], padding=1000)
    batch = new_events(records)
    assert len(batch) == 1000
    assert sum(len(json.dumps(r)) for r in records) >= 1_000_000
    store = log_store(postgres_url)
    faulthandler.dump_traceback_later(60, exit=True)
    try:
        result = store.append(batch)
        again = store.append(batch)  # the known-id check alone, with ~1 MB of records again
    finally:
        faulthandler.cancel_dump_traceback_later()
    try:
        assert (result.appended, result.duplicates) == (1000, 0)
        assert sum(len(s.record_json) for s in result.stored) >= 1_000_000
        assert (again.appended, again.duplicates) == (0, 1000)
        log = list(store.read())
        assert [s.position for s in log] == list(range(1, 1001))
        assert {s.event.event_id for s in log} == {e.event_id for e in batch}
        assert store.verify().ok
    finally:
        store.engine.dispose()


# -- lost connections ---------------------------------------------------------------------


def _waiting_for_append_lock(admin: psycopg.Connection, timeout: float = 10.0) -> int:
    """The pid of the backend waiting for the append lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = admin.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
        if row is not None:
            return int(row[0])
        time.sleep(0.02)
    raise AssertionError("no append is waiting for the lock")


def test_a_connection_lost_mid_append_stores_nothing_and_a_retry_stores_all(
    postgres_url: str, admin: psycopg.Connection
) -> None:
    store = log_store(postgres_url)
    batch = new_events(put_records("b", ["x/1", "x/2", "x/3"]))
    outcome: dict[str, Any] = {}

    def append() -> None:
        try:
            outcome["result"] = store.append(batch)
        except Exception as error:  # handed to the test thread below
            outcome["error"] = error

    try:
        with admin.transaction():
            admin.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK_ID,))
            writer = threading.Thread(target=append)
            writer.start()
            # The append is inside its transaction, waiting for the lock: cut it off there.
            pid = _waiting_for_append_lock(admin)
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            writer.join(timeout=10)
        assert isinstance(outcome.get("error"), StorageError), outcome
        assert "nothing was stored" in str(outcome["error"])
        assert store.head_position() == 0
        assert caught_up_catalog(store, include_deleted=True) == []

        retried = store.append(batch)  # the engine replaces the dead connection

        assert (retried.appended, retried.duplicates) == (3, 0)
        assert [s.position for s in store.read()] == [1, 2, 3]
        assert list(catalog_entries(store.engine)) == []  # the append stores only the log
        assert [e.key for e in caught_up_catalog(store)] == ["x/1", "x/2", "x/3"]
        assert store.verify().ok
    finally:
        store.engine.dispose()


def test_a_connection_dropped_between_invocations_is_replaced_silently(
    postgres_url: str, admin: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pooled connection is pinged once it has been idle this long: here, always.
    monkeypatch.setenv("EVENTSTORE_DB_IDLE_PING_SECONDS", "0")
    store = log_store(postgres_url)
    try:
        store.append(new_events(put_records("b", ["a"])))
        with store.engine.connect() as connection:
            pid = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))  # e.g. RDS failover, idle cut

        result = store.append(new_events(put_records("b", ["b"], start=1)))

        assert result.appended == 1
        with store.engine.connect() as connection:
            assert connection.execute(sa.text("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        store.engine.dispose()


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_the_lambda_handler_fails_the_whole_invocation_when_the_database_is_lost(
    postgres_url: str, admin: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setenv("EVENTSTORE_DB_URL", postgres_url)
    records = put_records("b", [f"k{i}" for i in range(6)])
    first = sqs_lambda_event([notification(records[:3])])
    second = sqs_lambda_event([notification(records[3:])])
    try:
        assert handler(first, LambdaContext()) == {"batchItemFailures": []}
        with admin.transaction():
            admin.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK_ID,))
            outcome: dict[str, Any] = {}

            def invoke() -> None:
                try:
                    outcome["response"] = handler(second, LambdaContext())
                except Exception as error:  # handed to the test thread below
                    outcome["error"] = error

            thread = threading.Thread(target=invoke)
            thread.start()
            admin.execute("SELECT pg_terminate_backend(%s)", (_waiting_for_append_lock(admin),))
            thread.join(timeout=10)
        # Not a partial response: the invocation fails, so SQS delivers the batch again.
        assert isinstance(outcome.get("error"), StorageError), outcome
        log = runtime.event_store().log
        assert log.head_position() == 3

        assert handler(second, LambdaContext()) == {"batchItemFailures": []}  # the redelivery
        assert log.head_position() == 6
        assert handler(second, LambdaContext()) == {"batchItemFailures": []}  # and once more
        assert log.head_position() == 6
        assert log.verify().ok
        # The catalog, caught up after the invocations, holds each key once.
        assert [e.key for e in caught_up_catalog(log)] == [f"k{i}" for i in range(6)]
    finally:
        cached = runtime._event_stores.pop(postgres_url, None)
        if cached is not None:
            cached.log.engine.dispose()


# -- every command against PostgreSQL ------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli(list(argv))
    return code, capsys.readouterr().out


def test_every_command_works_against_postgres(
    postgres_databases: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [
        s3_record("media", "photos/été 2026/a.jpg", sequencer="10", version_id="v1", when=T0,
                  principal="AWS:alice"),
        s3_record("media", "photos/été 2026/b.jpg", sequencer="11", when=T0.replace(minute=1),
                  principal="AWS:bob"),
        s3_record("media", "photos/été 2026/a.jpg", event_name="ObjectRemoved:DeleteMarkerCreated",
                  sequencer="12", version_id="v2", when=T0.replace(minute=2),
                  principal="AWS:alice"),
        s3_record("media", "docs/readme.txt", sequencer="13", when=T0.replace(minute=3)),
    ]  # fmt: skip
    lambda_event = tmp_path / "lambda-event.json"
    lambda_event.write_text(json.dumps(sqs_lambda_event([notification(records)])))
    with postgres_databases.fresh(empty=True) as url:
        db = ("--db", url)
        assert _run(capsys, *db, "db", "upgrade")[0] == 0

        code, out = _run(capsys, *db, "ingest", str(lambda_event))
        assert code == 0 and json.loads(out) == {
            "received": 4, "appended": 4, "duplicates": 0, "conflicts": 0, "skipped": 0,
            "failed": 0,
        }  # fmt: skip
        code, out = _run(capsys, *db, "ingest", str(lambda_event))
        assert json.loads(out)["duplicates"] == 4

        code, out = _run(
            capsys, *db, "history", "s3://media/photos/été 2026/a.jpg", "--format", "json"
        )
        assert code == 0
        assert [r["event_name"] for r in json.loads(out)] == [
            "ObjectCreated:Put", "ObjectRemoved:DeleteMarkerCreated",
        ]  # fmt: skip

        code, out = _run(
            capsys, *db, "events", "--bucket", "media", "--prefix", "photos/été",
            "--since", "2026-03-01T12:01:00Z", "--until", "2026-03-01T14:02:00+02:00",
            "--type", "ObjectCreated:*", "--format", "jsonl",
        )  # fmt: skip
        assert code == 0
        assert [json.loads(line)["key"] for line in out.splitlines()] == ["photos/été 2026/b.jpg"]

        code, out = _run(capsys, *db, "objects", "--format", "json")
        assert sorted(r["key"] for r in json.loads(out)) == [
            "docs/readme.txt",
            "photos/été 2026/b.jpg",
        ]
        code, out = _run(
            capsys, *db, "objects", "--include-deleted", "--prefix", "photos/", "--format", "csv"
        )
        assert code == 0 and out.count("photos/") == 2
        code, out = _run(
            capsys, *db, "objects", "--as-of", "2026-03-01T12:01:30Z", "--format", "json"
        )
        assert sorted(r["key"] for r in json.loads(out)) == [
            "photos/été 2026/a.jpg",
            "photos/été 2026/b.jpg",
        ]

        code, out = _run(capsys, *db, "projections", "list", "--format", "json")
        names = {r["name"] for r in json.loads(out)}
        assert {"object_catalog", "principal_activity"} <= names
        assert "prefix_stats" not in names  # kept by the catalog's fold now
        # `ingest` caught the projections up after its append (read-your-writes).
        code, out = _run(capsys, *db, "projections", "status", "--format", "json")
        assert {(r["name"], r["state"], r["lag"]) for r in json.loads(out)} == {
            (name, "live", 0) for name in names
        }
        assert _run(capsys, *db, "projections", "catch-up")[0] == 0
        assert _run(capsys, *db, "projections", "rebuild", "object_catalog")[0] == 0
        assert _run(capsys, *db, "projections", "rebuild", "--all")[0] == 0
        assert _run(capsys, *db, "projections", "rebuild", "object_catalog", "--dry-run")[0] == 0
        code, out = _run(capsys, *db, "projections", "show", "prefix_stats", "--format", "json")
        assert code == 0
        assert {(r["bucket"], r["prefix"], r["objects"]) for r in json.loads(out)} == {
            ("media", "docs/", 1), ("media", "photos/été 2026/", 1),
        }  # fmt: skip
        code, out = _run(capsys, *db, "projections", "show", "object_catalog", "--format", "json")
        assert code == 0 and len(json.loads(out)) == 3  # the deleted key has its row too
        assert _run(capsys, *db, "replay", "--from", "log", "--prefix", "photos/")[0] == 0
        assert _run(capsys, *db, "replay", "--from", "log")[0] == 0
        code, out = _run(capsys, *db, "objects", "--format", "json")
        assert sorted(r["key"] for r in json.loads(out)) == [
            "docs/readme.txt",
            "photos/été 2026/b.jpg",
        ]

        code, out = _run(capsys, *db, "verify", "--format", "json")
        (report,) = json.loads(out)
        assert code == 0 and report["checked"] == 4 and report["ok"]
        anchor = f"{report['head_position']}:{report['head_hash']}"
        assert _run(capsys, *db, "verify", "--anchor", anchor)[0] == 0


def test_catalog_lookups_use_the_index_before_the_table_is_analysed(
    admin: psycopg.Connection,
) -> None:
    # A young catalog has no statistics yet; the lookups the catalog's catch-up makes for
    # each chunk's keys must still be one index probe per key, not a scan of the whole bucket.
    admin.execute(
        "INSERT INTO object_catalog (bucket, key, version_id, size, etag, sequencer,"
        " last_event_name, last_event_time, last_event_version_id, last_position, deleted)"
        " SELECT 'b', 'k' || i, 'v', 1, 'e', 's', 'ObjectCreated:Put', now(), 'v', i, false"
        " FROM generate_series(1, 5000) AS i"
    )
    keys = [f"k{i}" for i in range(1, 11)]
    for table in (object_catalog, object_versions):
        sql = _postgres_select(table.name, tuple(table.c.keys()))
        plan = "\n".join(row[0] for row in admin.execute("EXPLAIN ANALYZE " + sql, (keys, "b")))
        assert "Index Scan" in plan, plan
        assert "Rows Removed by Filter" not in plan, plan
        assert "Seq Scan" not in plan, plan
