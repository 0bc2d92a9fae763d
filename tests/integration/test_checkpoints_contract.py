"""The contract of the checkpoints' owner (SqlCheckpoints): projection checkpoint rows and the
shadow tables a rebuild fills and swaps in. One set of cases, every backend."""

from datetime import datetime

import pytest
import sqlalchemy as sa

from eventstore.projections.base import Projection
from eventstore.projections.checkpoints import (
    SHADOW_SUFFIX,
    SqlCheckpoints,
    live_tables,
    shadow_tables,
)
from eventstore.store.sql import SqlEventStore

marks = sa.Table(
    "contract_marks",
    sa.MetaData(),
    sa.Column("key", sa.Text(), primary_key=True),
    sa.Column("seen", sa.Integer(), nullable=False),
    sa.Index(None, "seen"),
)


class Marks(Projection):
    name = "contract_marks"
    version = 3
    tables = (marks,)


@pytest.fixture
def log(backend_log: SqlEventStore) -> SqlEventStore:
    return backend_log


owner = SqlCheckpoints()


def tables_of(log: SqlEventStore) -> set[str]:
    with log.engine.connect() as connection:
        return set(sa.inspect(connection).get_table_names())


def test_a_new_projection_starts_rebuilding_from_zero_into_empty_shadow_tables(
    log: SqlEventStore,
) -> None:
    with log.write() as connection:
        assert owner.start(connection, Marks(), '{"prefix": "a/"}')
    with log.engine.connect() as connection:
        row = owner.all(connection)["contract_marks"]
        assert owner.shadow_exists(connection, Marks())
    assert (row.version, row.position, row.rebuild_version, row.rebuild_position) == (0, 0, 3, 0)
    assert row.rebuild_filter == '{"prefix": "a/"}'
    assert row.rebuilding and not row.is_live_at(3)
    assert "contract_marks" + SHADOW_SUFFIX in tables_of(log)


def test_a_second_start_of_the_same_projection_is_refused(log: SqlEventStore) -> None:
    with log.write() as connection:
        assert owner.start(connection, Marks(), None)
    with log.write() as connection:
        assert not owner.start(connection, Marks(), None)


def test_lock_reads_the_row_and_none_for_an_unknown_projection(log: SqlEventStore) -> None:
    with log.write() as connection:
        owner.start(connection, Marks(), None)
    with log.write() as connection:
        locked = owner.lock(connection, "contract_marks")
        assert locked is not None and locked.name == "contract_marks"
        assert owner.lock(connection, "nobody") is None


def test_advance_moves_the_live_or_the_rebuild_position_and_records_errors(
    log: SqlEventStore,
) -> None:
    with log.write() as connection:
        owner.start(connection, Marks(), None)
        first = owner.advance(connection, "contract_marks", rebuilding=True, position=5)
    with log.write() as connection:
        second = owner.advance(
            connection, "contract_marks", rebuilding=True, position=None, error=(6, "boom")
        )
    with log.engine.connect() as connection:
        row = owner.all(connection)["contract_marks"]
    assert (row.rebuild_position, row.error_position, row.last_error) == (5, 6, "boom")
    assert row.position == 0  # the live position is untouched by a rebuild
    assert isinstance(first, datetime) and second > first
    assert row.updated_at == second  # what a runner compares to see whether it still owns it
    with log.write() as connection:
        owner.advance(connection, "contract_marks", rebuilding=False, position=9, position_hash="h")
    with log.engine.connect() as connection:
        row = owner.all(connection)["contract_marks"]
    assert (row.position, row.position_hash, row.last_error) == (9, "h", None)


def test_swap_replaces_the_live_tables_with_the_shadow_ones_whole(log: SqlEventStore) -> None:
    # Given a live version of the projection's table and a rebuilt shadow
    with log.write() as connection:
        owner.create_tables(connection, live_tables(Marks()))
        connection.execute(sa.insert(marks), [{"key": "old", "seen": 1}])
        owner.start(connection, Marks(), '{"bucket": "b"}')
        connection.execute(
            sa.insert(shadow_tables(Marks())["contract_marks"]), [{"key": "new", "seen": 2}]
        )
        owner.advance(connection, "contract_marks", rebuilding=True, position=7)
    # When it is swapped in at the head
    with log.write() as connection:
        row = owner.lock(connection, "contract_marks")
        assert row is not None
        owner.swap(connection, Marks(), row, 7, "hash-at-7")
    # Then readers see only the rebuilt rows, under the live names, and the rebuild is live
    with log.engine.connect() as connection:
        rows = connection.execute(sa.select(marks)).all()
        row = owner.all(connection)["contract_marks"]
        inspector = sa.inspect(connection)
        index_names = {i["name"] for i in inspector.get_indexes("contract_marks")}
    assert [tuple(r) for r in rows] == [("new", 2)]
    assert (row.version, row.position, row.position_hash) == (3, 7, "hash-at-7")
    assert (row.rebuild_version, row.rebuild_position, row.rebuild_filter) == (None, None, None)
    assert row.live_filter == '{"bucket": "b"}' and row.is_live_at(3)
    assert "contract_marks" + SHADOW_SUFFIX not in tables_of(log)
    assert all(SHADOW_SUFFIX not in name for name in index_names)  # renamed with the table


def test_restart_empties_the_shadow_and_starts_over(log: SqlEventStore) -> None:
    with log.write() as connection:
        owner.start(connection, Marks(), None)
        connection.execute(
            sa.insert(shadow_tables(Marks())["contract_marks"]), [{"key": "half", "seen": 1}]
        )
        owner.advance(connection, "contract_marks", rebuilding=True, position=4, error=(5, "x"))
    with log.write() as connection:
        owner.restart_rebuild(connection, Marks(), '{"types": []}')
    with log.engine.connect() as connection:
        shadow = shadow_tables(Marks())["contract_marks"]
        assert connection.execute(sa.select(shadow)).all() == []
        row = owner.all(connection)["contract_marks"]
    assert (row.rebuild_position, row.last_error, row.rebuild_filter) == (0, None, '{"types": []}')


def test_with_log_gives_the_head_and_the_hash_at_each_checkpoint_in_one_read(
    log: SqlEventStore,
) -> None:
    from tests.notification_factory import new_events, put_records

    stored = log.append(new_events(put_records("b", ["x", "y", "z"]))).stored
    with log.engine.connect() as connection:
        assert owner.with_log(connection) == (3, {}, {})
    with log.write() as connection:
        owner.start(connection, Marks(), None)
        owner.advance(connection, "contract_marks", rebuilding=False, position=2)
    with log.engine.connect() as connection:
        head, rows, hashes = owner.with_log(connection)
    assert head == 3 and rows["contract_marks"].position == 2
    assert hashes == {"contract_marks": stored[1].hash}
