"""The migrations are the only way the schema is made: they must build exactly what
eventstore/store/schema.py describes, and the code must expect the head revision."""

from itertools import pairwise
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import migrations
from eventstore.store.database import create_engine, current_revision, upgrade_schema
from eventstore.store.schema import SCHEMA_REVISION, metadata


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
            checkpoints = connection.execute(
                sa.text("SELECT name, version, position FROM projection_checkpoints")
            ).all()
        assert ("object_catalog", 1, 0) in [tuple(row) for row in checkpoints]
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
