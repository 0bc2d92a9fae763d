"""A damaged, foreign or missing database: one clear line on stderr and exit 2, never a
traceback; and only the commands that write create a database."""

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from eventstore import cli
from eventstore.store.schema import SCHEMA_REVISION
from tests.conftest import EVENTS_DIR

READ_COMMANDS = [
    ["verify"],
    ["events"],
    ["objects"],
    ["objects", "--as-of", "2026-03-01T00:00:00Z"],
    ["history", "s3://bucket/key.txt"],
    ["projections", "status"],
    ["projections", "list"],
    ["projections", "show", "object_catalog"],
    ["search", "words"],
]
WRITE_COMMANDS = [
    ["ingest", str(EVENTS_DIR / "s3_put.json")],
    ["db", "upgrade"],
    ["projections", "catch-up"],
    ["projections", "rebuild", "--all"],
    ["replay", "--from", "log"],
]
ALL_COMMANDS = READ_COMMANDS + WRITE_COMMANDS


def ids(commands: list[list[str]]) -> list[str]:
    return [" ".join(c[:2]) if not c[-1].startswith("/") else c[0] for c in commands]


def eventstore(db: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the command line on the SQLite file `db`; (exit code, stderr)."""
    code = cli.main(["--db", f"sqlite:///{db}", *args])
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, message: str) -> None:
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("eventstore: error: ")
    assert message in err


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    """An eventstore database holding one event, made by the command line."""
    path = tmp_path / "events.db"
    assert cli.main(["--db", f"sqlite:///{path}", "ingest", str(EVENTS_DIR / "s3_put.json")]) == 0
    return path


def sql(path: Path, *statements: str) -> None:
    connection = sqlite3.connect(path)
    try:
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


# -- a mistyped path ----------------------------------------------------------------------


@pytest.mark.parametrize("command", READ_COMMANDS, ids=ids(READ_COMMANDS))
def test_a_read_command_on_a_missing_file_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    # Given a path with a typo
    typo = tmp_path / "evnets.db"
    # When a command that only reads is run on it
    code, err = eventstore(typo, *command, capsys=capsys)
    # Then it says there is no database there, and does not make one
    assert_one_line_error(code, err, f"no database at {typo}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", WRITE_COMMANDS, ids=ids(WRITE_COMMANDS))
def test_a_write_command_creates_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    path = tmp_path / "new.db"
    code, err = eventstore(path, *command, capsys=capsys)
    assert code == 0, err
    assert path.exists()
    code, err = eventstore(path, "verify", capsys=capsys)
    assert code == 0, err


def test_a_read_command_on_an_empty_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "touched.db"
    path.touch()
    code, err = eventstore(path, "verify", capsys=capsys)
    assert_one_line_error(code, err, "is empty, not an eventstore database yet")
    assert path.stat().st_size == 0


# -- files that are not an eventstore database --------------------------------------------


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=ids(ALL_COMMANDS))
def test_a_text_file_is_not_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    # Given --db naming a text file
    path = tmp_path / "notes.txt"
    path.write_text("remember to rotate the keys\n")
    # When any command is run on it
    code, err = eventstore(path, *command, capsys=capsys)
    # Then it says so, and leaves the file as it was
    assert_one_line_error(code, err, f"{path} is not a SQLite database")
    assert path.read_text() == "remember to rotate the keys\n"


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=ids(ALL_COMMANDS))
def test_another_applications_sqlite_file_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    # Given --db naming another application's SQLite database
    path = tmp_path / "crm.sqlite"
    sql(path, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
        "INSERT INTO customers (name) VALUES ('Ada')")  # fmt: skip
    before = path.read_bytes()
    # When any command is run on it
    code, err = eventstore(path, *command, capsys=capsys)
    # Then it is refused, and not changed (no tables added, not even switched to WAL mode)
    assert_one_line_error(
        code, err, "is not an eventstore database (it holds other tables: customers)"
    )
    assert path.read_bytes() == before


def test_a_folder_is_not_a_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = eventstore(tmp_path, "events", capsys=capsys)
    assert_one_line_error(code, err, "is a folder, not a SQLite database file")


def test_a_file_with_a_sqlite_header_and_garbage_after_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)
    code, err = eventstore(path, "events", capsys=capsys)
    assert_one_line_error(code, err, "garbage.db")


# -- damaged eventstore databases ---------------------------------------------------------


def drop_catalog(path: Path) -> None:
    sql(path, "DROP TABLE object_catalog")


def newer_revision(path: Path) -> None:
    sql(path, "UPDATE alembic_version SET version_num = '20991231_0099'")


def garbled_revision(path: Path) -> None:
    sql(path, "UPDATE alembic_version SET version_num = 'x\x01\x02'")


def no_revision(path: Path) -> None:
    sql(path, "DELETE FROM alembic_version")


def two_revisions(path: Path) -> None:
    sql(path, "INSERT INTO alembic_version (version_num) VALUES ('20261123_0001')")


def no_alembic_version(path: Path) -> None:
    sql(path, "DROP TABLE alembic_version")


DAMAGE: list[tuple[Callable[[Path], None], str]] = [
    (drop_catalog, f"the database is damaged: table object_catalog missing (at revision "
                   f"{SCHEMA_REVISION})"),
    (newer_revision, "the database is at revision '20991231_0099', which this code does not "
                     "know: it was made by a newer eventstore"),
    (garbled_revision, "which this code does not know"),
    (no_revision, "the database is damaged: alembic_version holds 0 revisions, not one"),
    (two_revisions, "the database is damaged: alembic_version holds 2 revisions, not one"),
    (no_alembic_version, "the database has tables but no schema revision"),
]  # fmt: skip


NOT_UPGRADE = [c for c in ALL_COMMANDS if c != ["db", "upgrade"]]


@pytest.mark.parametrize("command", NOT_UPGRADE, ids=ids(NOT_UPGRADE))
@pytest.mark.parametrize(("damage", "message"), DAMAGE, ids=[d.__name__ for d, _ in DAMAGE])
def test_a_damaged_database_gets_one_line_and_exit_2(
    migrated: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], None],
    message: str,
    command: list[str],
) -> None:
    # Given an eventstore database damaged in one way
    damage(migrated)
    # When any command is run on it
    code, err = eventstore(migrated, *command, capsys=capsys)
    # Then it says what is wrong in one line and exits 2
    assert_one_line_error(code, err, message)


UPGRADE_MESSAGES = {
    drop_catalog: "the database is damaged: table object_catalog missing",
    newer_revision: "cannot upgrade the database: Can't locate revision identified by "
    "'20991231_0099'",
    garbled_revision: "cannot upgrade the database: Can't locate revision",
    # the migrations would create tables that are there already
    no_revision: "cannot upgrade the database: table events already exists",
    no_alembic_version: "cannot upgrade the database: table events already exists",
    two_revisions: "cannot upgrade the database",
}


@pytest.mark.parametrize("damage", UPGRADE_MESSAGES, ids=[d.__name__ for d in UPGRADE_MESSAGES])
def test_db_upgrade_of_a_damaged_database_gets_one_line_and_exit_2(
    migrated: Path, capsys: pytest.CaptureFixture[str], damage: Callable[[Path], None]
) -> None:
    damage(migrated)
    code, err = eventstore(migrated, "db", "upgrade", capsys=capsys)
    assert_one_line_error(code, err, UPGRADE_MESSAGES[damage])


def test_no_traceback_from_the_installed_script(tmp_path: Path) -> None:
    # Given a text file and the real `eventstore` entry point
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n")
    script = Path(sys.executable).parent / "eventstore"
    # When a query is run on it
    result = subprocess.run(
        [str(script), "--db", f"sqlite:///{path}", "events"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    # Then one line, exit 2
    assert result.returncode == 2
    assert result.stderr == f"eventstore: error: {path} is not a SQLite database\n"
