"""Tampering with the SQLite file behind the log's back: `eventstore verify` must notice,
exit 1 and name the first bad position; an untouched log verifies (exit 0)."""

import json
import sqlite3
from pathlib import Path

import pytest

from eventstore import cli
from tests.conftest import EVENTS_DIR

FIXTURES = ["sqs_sns_batch_realistic.json", "s3_put.json", "s3_delete_unversioned.json"]
HEAD = 9  # seven events from the batch, two from the other files


@pytest.fixture
def db_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "tamper.db"
    code = cli.main(
        ["--db", f"sqlite:///{path}", "ingest", *(str(EVENTS_DIR / f) for f in FIXTURES)]
    )
    assert code == 0
    capsys.readouterr()
    return path


def tamper(db_file: Path, *statements: str) -> None:
    connection = sqlite3.connect(db_file)
    try:
        with connection:
            for statement in statements:
                connection.execute(statement)
    finally:
        connection.close()


def verify(db_file: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(["--db", f"sqlite:///{db_file}", "verify"])
    return code, capsys.readouterr().out


def assert_broken_at(db_file: Path, capsys: pytest.CaptureFixture[str], position: int) -> None:
    code, out = verify(db_file, capsys)
    assert code == 1
    assert out.startswith(f"BROKEN at position {position}:")
    code = cli.main(["--db", f"sqlite:///{db_file}", "verify", "--format", "json"])
    (report,) = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["ok"] is False
    assert report["first_bad_position"] == position
    assert report["reason"]


def test_an_untouched_log_verifies(db_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = verify(db_file, capsys)
    assert code == 0
    assert out.startswith(f"ok: hash chain intact over {HEAD} events (head {HEAD})")


def test_reading_the_log_does_not_break_it(
    db_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{db_file}"
    for args in (["events"], ["objects", "--include-deleted"], ["history", "s3://acme-invoices/x"]):
        assert cli.main(["--db", url, *args]) == 0
    assert verify(db_file, capsys)[0] == 0


# Each edit touches row 3 (the overwrite of order-7781: it has a size, etag, version...).
COLUMN_EDITS = {
    "record": "record = replace(record, '2419', '2420')",
    "size": "size = size + 1",
    "key_and_stream": "key = key || '.bak', stream = stream || '.bak'",
    "event_time": "event_time = replace(event_time, '09:16:40', '09:16:41')",
    "event_time_microseconds": "event_time = replace(event_time, '.902000', '.902001')",
    "principal_id": "principal_id = 'AWS:AIDAINNOCENTBYSTANDER'",
    "principal_id_null": "principal_id = NULL",
    "event_name": "event_name = 'ObjectCreated:Copy'",
    "bucket_and_stream": (
        "bucket = 'acme-other', stream = replace(stream, 'acme-orders', 'acme-other')"
    ),
    "version_id": "version_id = 'S3c0ndV3rs10nOfOrder7781bbbbbbbbc'",
    "sequencer": "sequencer = '0065E19B48A1C3E5F8'",
    "etag": "etag = 'd41d8cd98f00b204e9800998ecf8427e'",
    "source_ip": "source_ip = '198.51.100.7'",
    "request_id": "request_id = 'FORGED0000000000'",
    "region": "region = 'us-east-1'",
    "source": "source = 'archive'",
    "causation_id": "causation_id = 'some-other-message'",
    "correlation_id": "correlation_id = 'cli:elsewhere'",
    "event_id": "event_id = '00000000000000000000000000000000'",
    "recorded_at": "recorded_at = replace(recorded_at, substr(recorded_at, 1, 4), '2025')",
    "hash": "hash = '0000000000000000000000000000000000000000000000000000000000000000'",
    "key_only": "key = key || '.bak'",
    "stream_only": "stream = 's3://acme-orders/elsewhere'",
    "event_time_unreadable": "event_time = 'the day before yesterday'",
    "record_unreadable": "record = '{not json'",
    "source_unknown": "source = 'carrier-pigeon'",
}


@pytest.mark.parametrize("edit", COLUMN_EDITS.values(), ids=list(COLUMN_EDITS))
def test_an_edited_column_is_found(
    db_file: Path, capsys: pytest.CaptureFixture[str], edit: str
) -> None:
    # Given a log whose row 3 was edited directly in the database file
    tamper(db_file, f"UPDATE events SET {edit} WHERE position = 3")
    # Then verify names row 3
    assert_broken_at(db_file, capsys, 3)


def test_every_column_of_the_events_table_is_covered(db_file: Path) -> None:
    connection = sqlite3.connect(db_file)
    try:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(events)")}
    finally:
        connection.close()
    edited = {
        part.split("=")[0].strip() for edit in COLUMN_EDITS.values() for part in edit.split(", ")
    }
    assert columns - edited == {"position"}  # position: see the delete, insert and swap tests


def test_an_edit_of_the_first_row_is_found(
    db_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper(db_file, "UPDATE events SET size = 1 WHERE position = 1")
    assert_broken_at(db_file, capsys, 1)


def test_an_edit_of_the_last_row_is_found(
    db_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper(db_file, f"UPDATE events SET principal_id = 'nobody' WHERE position = {HEAD}")
    assert_broken_at(db_file, capsys, HEAD)


def test_a_deleted_row_is_found(db_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tamper(db_file, "DELETE FROM events WHERE position = 5")
    assert_broken_at(db_file, capsys, 5)


def test_a_deleted_first_row_is_found(db_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tamper(db_file, "DELETE FROM events WHERE position = 1")
    assert_broken_at(db_file, capsys, 1)


def test_a_deleted_and_renumbered_row_is_found(
    db_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a forger who deleted row 5 and closed the gap
    tamper(
        db_file,
        "DELETE FROM events WHERE position = 5",
        "UPDATE events SET position = -(position - 1) WHERE position > 5",
        "UPDATE events SET position = -position WHERE position < 0",
    )
    # Then the row now at 5 does not link to row 4
    assert_broken_at(db_file, capsys, 5)


def test_a_forged_row_appended_at_the_head_is_found(
    db_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a copy of row 2 passed off as a new event, with a made-up id and row 2's hash
    tamper(
        db_file,
        f"INSERT INTO events SELECT {HEAD + 1}, 'f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0', stream,"
        " event_name, event_time, bucket, key, version_id, sequencer, size, etag, principal_id,"
        " source_ip, request_id, region, source, causation_id, correlation_id, record,"
        " recorded_at, hash FROM events WHERE position = 2",
    )
    assert_broken_at(db_file, capsys, HEAD + 1)


def test_a_forged_row_inserted_in_the_middle_is_found(
    db_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a forged delete slipped in at position 4, the later rows moved up one
    tamper(
        db_file,
        "UPDATE events SET position = -(position + 1) WHERE position >= 4",
        "UPDATE events SET position = -position WHERE position < 0",
        "INSERT INTO events SELECT 4, 'abababababababababababababababab', stream,"
        " 'ObjectRemoved:Delete', event_time, bucket, key, version_id, '0065E19B48A1C3E5F8', NULL,"
        " NULL, principal_id, source_ip, request_id, region, source, causation_id,"
        " correlation_id, record, recorded_at, hash FROM events WHERE position = 3",
    )
    assert_broken_at(db_file, capsys, 4)


def test_two_swapped_rows_are_found(db_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given rows 2 and 6 exchanged positions
    tamper(
        db_file,
        "UPDATE events SET position = -2 WHERE position = 2",
        "UPDATE events SET position = 2 WHERE position = 6",
        "UPDATE events SET position = 6 WHERE position = -2",
    )
    assert_broken_at(db_file, capsys, 2)


def test_two_adjacent_swapped_rows_are_found(
    db_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper(
        db_file,
        f"UPDATE events SET position = -1 WHERE position = {HEAD - 1}",
        f"UPDATE events SET position = {HEAD - 1} WHERE position = {HEAD}",
        f"UPDATE events SET position = {HEAD} WHERE position = -1",
    )
    assert_broken_at(db_file, capsys, HEAD - 1)


def test_the_first_of_several_tamperings_is_named(
    db_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper(
        db_file,
        "UPDATE events SET size = 0 WHERE position = 7",
        "UPDATE events SET region = 'ap-south-1' WHERE position = 4",
        "DELETE FROM events WHERE position = 8",
    )
    assert_broken_at(db_file, capsys, 4)


def test_appending_after_verify_keeps_the_chain(
    db_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{db_file}"
    assert cli.main(["--db", url, "ingest", str(EVENTS_DIR / "s3_copy.json")]) == 0
    capsys.readouterr()
    code, out = verify(db_file, capsys)
    assert code == 0
    assert f"over {HEAD + 1} events" in out
