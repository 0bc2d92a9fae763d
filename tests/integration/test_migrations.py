"""The migrations are the only way the schema is made: they must build exactly what
eventstore/store/schema.py describes, and the code must expect the head revision."""

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import migrations
from eventstore.store.database import create_engine, current_revision, upgrade_schema
from eventstore.store.schema import SCHEMA_REVISION, metadata
from eventstore.store.sql import SqlEventStore
from eventstore.wiring import event_store_on
from tests.notification_factory import new_events, put_records


def script_directory() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return ScriptDirectory.from_config(config)


def test_schema_revision_is_the_single_alembic_head() -> None:
    heads = script_directory().get_heads()
    assert heads == [SCHEMA_REVISION]


def test_every_revision_chains_back_to_the_first() -> None:
    revisions = list(script_directory().walk_revisions())
    assert revisions[0].revision == SCHEMA_REVISION
    assert revisions[-1].down_revision is None
    for later, earlier in pairwise(revisions):
        assert later.down_revision == earlier.revision


def test_upgraded_database_matches_the_metadata(tmp_path: Path) -> None:
    # Given an empty SQLite file upgraded by the migrations
    engine = create_engine(f"sqlite:///{tmp_path / 'schema.db'}")
    try:
        assert upgrade_schema(engine) == SCHEMA_REVISION
        # When Alembic compares it with the tables the code queries
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            diffs = compare_metadata(context, metadata)
            revision = current_revision(connection)
    finally:
        engine.dispose()
    # Then there is no difference at all (tables, columns, types, nullability, indexes,
    # unique constraints): nothing is ignored
    assert diffs == []
    assert revision == SCHEMA_REVISION


def test_upgrade_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'again.db'}")
    try:
        upgrade_schema(engine)
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO projection_checkpoints (name, version, position, updated_at)"
                    " VALUES ('object_catalog', 202, 0, '2026-11-29 00:00:00.000000')"
                )
            )
            checkpoints = connection.execute(
                sa.text("SELECT name, version, position FROM projection_checkpoints")
            ).all()
        assert [tuple(row) for row in checkpoints] == [("object_catalog", 202, 0)]
        assert upgrade_schema(engine) == SCHEMA_REVISION
        with engine.connect() as connection:
            again = connection.execute(
                sa.text("SELECT name, version, position FROM projection_checkpoints")
            ).all()
        assert again == checkpoints
    finally:
        engine.dispose()


def test_named_constraints_follow_the_naming_convention(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'names.db'}")
    try:
        upgrade_schema(engine)
        inspector = sa.inspect(engine)
        assert {i["name"] for i in inspector.get_indexes("events")} == {
            "ix_events_bucket_key_event_time",
            "ix_events_event_time",
            "ix_events_principal_id_event_time",
        }
        assert [u["name"] for u in inspector.get_unique_constraints("events")] == [
            "uq_events_event_id"
        ]
    finally:
        engine.dispose()


def test_the_comparison_would_see_a_drift(tmp_path: Path) -> None:
    # Given metadata with one column the migrations do not create
    drifted = sa.MetaData(naming_convention=dict(metadata.naming_convention))
    for table in metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["events"].append_column(sa.Column("bucket_owner", sa.Text(), nullable=True))
    drifted.tables["object_catalog"].c.size.type = sa.Text()
    engine = create_engine(f"sqlite:///{tmp_path / 'drift.db'}")
    try:
        upgrade_schema(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, drifted)
    finally:
        engine.dispose()
    # Then the comparison reports both differences (so an empty result above means something)
    flat = [d[0] if isinstance(d, list) else d for d in diffs]
    assert any(d[0] == "add_column" and d[2] == "events" and d[3].name == "bucket_owner"
               for d in flat)  # fmt: skip
    assert any(d[0] == "modify_type" and d[3] == "size" for d in flat)


def _upgrade_to(engine: sa.Engine, revision: str) -> None:
    from alembic import command

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'previous.db'}"
        return
    with request.getfixturevalue("postgres_databases").fresh(empty=True) as url:
        yield url


def test_a_database_of_the_previous_release_upgrades_and_rebuilds_its_catalog(
    empty_url: str,
) -> None:
    # Given a database at the previous release's revision, with events, a version-1 catalog
    # and the retired prefix_stats projection's copy tables and checkpoint
    engine = create_engine(empty_url)
    try:
        _upgrade_to(engine, "20261124_0003")
        log = SqlEventStore(engine)
        log.append(new_events(put_records("b", [f"logs/2026/{i}.txt" for i in range(12)])))
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE prefix_stats_objects (bucket TEXT)"))
            connection.execute(sa.text("CREATE TABLE prefix_stats_versions (bucket TEXT)"))
            connection.execute(
                sa.text(
                    "INSERT INTO projection_checkpoints (name, version, position, updated_at)"
                    " VALUES ('prefix_stats', 102, 12, CURRENT_TIMESTAMP)"
                )
            )
            connection.execute(sa.text("UPDATE projection_checkpoints SET position = 12"))
        head_before = log.verify().head_hash

        # When it is upgraded and the projections catch up
        assert upgrade_schema(engine) == SCHEMA_REVISION
        inspector = sa.inspect(engine)
        index_names = {i["name"] for i in inspector.get_indexes("events")}
        tables = set(inspector.get_table_names())
        event_store = event_store_on(log)
        assert event_store.status("object_catalog").state == "outdated"
        reports = event_store.catch_up()

        # Then the index and the retired tables are gone, the chain verifies as before, and
        # the catalog is rebuilt at its new version with the prefix statistics it now keeps
        assert "ix_events_bucket_event_time" not in index_names
        assert not {"prefix_stats_objects", "prefix_stats_versions"} & tables
        assert all(r.error is None for r in reports)
        assert log.verify().ok and log.verify().head_hash == head_before
        status = event_store.status("object_catalog")
        assert (status.state, status.live_version, status.position) == ("live", 302, 12)
        with engine.connect() as connection:
            stats = connection.execute(sa.text("SELECT prefix, objects FROM prefix_stats")).all()
            # one version per key: all of it in the catalog row, none in object_versions
            version_rows = connection.execute(sa.text("SELECT count(*) FROM object_versions"))
            assert version_rows.scalar() == 0
            names = connection.execute(sa.text("SELECT name FROM projection_checkpoints")).all()
        assert [tuple(r) for r in stats] == [("logs/2026/", 12)]
        assert "prefix_stats" not in {n for (n,) in names}
        assert len(list(event_store.objects())) == 12
    finally:
        engine.dispose()
