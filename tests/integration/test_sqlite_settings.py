"""The SQLite engine's settings: every commit durable, the write-ahead log copied back in
large steps and cut back after a burst."""

from pathlib import Path

from eventstore.store.database import (
    WAL_CHECKPOINT_PAGES,
    WAL_SIZE_LIMIT,
    create_engine,
    upgrade_schema,
)
from eventstore.store.sql import SqlEventStore
from tests.notification_factory import new_events, s3_record


def test_every_connection_commits_durably_and_checkpoints_in_large_steps(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    upgrade_schema(engine)
    SqlEventStore(engine).append(new_events([s3_record("b", "k.txt", sequencer="01")]))
    connection = engine.raw_connection()
    try:
        pragma = connection.driver_connection.execute  # type: ignore[union-attr]
        assert pragma("PRAGMA journal_mode").fetchone() == ("wal",)
        assert pragma("PRAGMA synchronous").fetchone() == (2,)  # FULL: fsync at each commit
        assert pragma("PRAGMA wal_autocheckpoint").fetchone() == (WAL_CHECKPOINT_PAGES,)
        assert pragma("PRAGMA journal_size_limit").fetchone() == (WAL_SIZE_LIMIT,)
    finally:
        connection.close()
    engine.dispose()
