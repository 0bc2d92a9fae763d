"""`eventstore ingest` reads its input as a stream: JSON lines are parsed and appended a batch
at a time, a line that cannot be read fails alone, and an interrupted run can be re-run."""

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from eventstore import cli, ingest
from eventstore.core import parsing
from eventstore.store.sql import SqlEventStore
from tests.integration.test_cli import Run
from tests.notification_factory import notification, put_records


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    return Run(f"sqlite:///{tmp_path / 'cli.db'}", capsys)


def json_lines(count: int, *, start: int = 0) -> bytes:
    """`count` notifications of one distinct ObjectCreated:Put each, one per line."""
    records = put_records("bucket", [f"k/{n}" for n in range(start, start + count)], start=start)
    return "".join(json.dumps(notification([r])) + "\n" for r in records).encode()


def set_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> io.BytesIO:
    raw = io.BytesIO(data)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw, encoding="utf-8"))
    return raw


def test_json_lines_are_appended_before_the_input_is_read_to_the_end(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 2.5 batches of JSON lines on stdin
    data = json_lines(ingest.BATCH_EVENTS * 5 // 2)
    stdin = set_stdin(monkeypatch, data)
    read_at_append: list[int] = []
    real_append = SqlEventStore.append

    def append(self: SqlEventStore, *args: Any, **kwargs: Any) -> Any:
        read_at_append.append(stdin.tell())
        return real_append(self, *args, **kwargs)

    monkeypatch.setattr(SqlEventStore, "append", append)
    # When they are ingested
    code, out, _ = run("ingest", "-")
    # Then the first batch was stored when about a batch of lines had been read, not all
    assert code == 0
    assert json.loads(out)["appended"] == ingest.BATCH_EVENTS * 5 // 2
    assert len(read_at_append) == 3
    assert read_at_append[0] < len(data) / 2
    assert read_at_append == sorted(read_at_append)


@pytest.mark.parametrize("where", ["file", "stdin"])
def test_a_line_that_is_not_utf8_fails_alone(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # Given JSON lines whose second line holds bytes that are not UTF-8
    good = json_lines(2).splitlines(keepends=True)
    data = good[0] + b'{"Records": [], "note": "caf\xe9 cr\xe8me"}\n' + good[1]
    if where == "file":
        path = tmp_path / "mixed.jsonl"
        path.write_bytes(data)
        name = str(path)
    else:
        set_stdin(monkeypatch, data)
        name = "-"
    # When they are ingested
    code, out, err = run("ingest", name)
    # Then that line fails alone, named by its number and why; the others are stored
    assert code == 1
    assert json.loads(out) == {
        "received": 2, "appended": 2, "duplicates": 0, "conflicts": 0, "skipped": 0, "failed": 1,
    }  # fmt: skip
    assert f"failed message {name}:2: line 2 is not UTF-8 (byte 0xe9 at column 29)" in err
    assert "Traceback" not in err


def test_a_line_over_the_size_limit_fails_alone(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a limit on a line's length and JSON lines of which the second is longer
    monkeypatch.setattr(parsing, "MAX_DOCUMENT_BYTES", 4000)
    lines = json_lines(3).splitlines(keepends=True)
    long_line = b'{"Records": [], "padding": "' + b"x" * 10_000 + b'"}\n'
    path = tmp_path / "long.jsonl"
    path.write_bytes(lines[0] + long_line + lines[1] + lines[2])
    # When they are ingested
    code, out, err = run("ingest", str(path))
    # Then the long line fails alone and the lines after it are read as usual
    assert code == 1
    assert json.loads(out)["appended"] == 3
    assert json.loads(out)["failed"] == 1
    assert f"failed message {path}:2: line 2 is longer than 4000 bytes" in err


def test_blank_lines_keep_the_line_numbers(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "gaps.jsonl"
    path.write_bytes(b"\n" + json_lines(1) + b"\n  \n{broken\n")
    code, out, err = run("ingest", str(path))
    assert code == 1
    assert json.loads(out)["appended"] == 1
    assert f"failed message {path}:5: SQS message body is not JSON" in err


def test_a_document_over_several_lines_is_read_whole(run: Run, tmp_path: Path) -> None:
    # Given one notification pretty-printed over many lines
    (record,) = put_records("bucket", ["pretty.txt"])
    path = tmp_path / "pretty.json"
    path.write_text(json.dumps(notification([record]), indent=2))
    # When it is ingested
    code, out, _ = run("ingest", str(path))
    # Then it is one notification
    assert code == 0
    assert json.loads(out)["appended"] == 1


def test_an_interrupted_ingest_completes_exactly_once_when_run_again(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given JSON lines of one and a half batches, and an ingest interrupted (Ctrl-C) when
    # its second batch is about to be appended
    total = ingest.BATCH_EVENTS * 3 // 2
    path = tmp_path / "long.jsonl"
    path.write_bytes(json_lines(total))
    real_append = SqlEventStore.append
    calls: list[int] = []

    def interrupted_append(self: SqlEventStore, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_append(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(SqlEventStore, "append", interrupted_append)
        code, out, err = run("ingest", str(path))
    assert code == cli.EXIT_INTERRUPTED
    assert "interrupted" in err
    assert "Traceback" not in err
    assert len(run.json("events")) == ingest.BATCH_EVENTS
    # When it is run again
    code, out, _ = run("ingest", str(path))
    # Then what was missing is appended, what was stored counts as duplicates, and the log
    # holds every event once, its chain intact
    assert code == 0
    assert json.loads(out) == {
        "received": total, "appended": total - ingest.BATCH_EVENTS,
        "duplicates": ingest.BATCH_EVENTS, "conflicts": 0, "skipped": 0, "failed": 0,
    }  # fmt: skip
    events = run.json("events")
    assert len({e["event_id"] for e in events}) == len(events) == total
    assert run("verify")[0] == 0


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_only(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "some.jsonl"
    path.write_bytes(json_lines(3))
    # Not a terminal: stderr stays quiet
    code, _, err = run("ingest", str(path))
    assert (code, err) == (0, "")
    # A terminal: a closing line with counts and rate
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    path.write_bytes(json_lines(2, start=3))
    assert cli.main(["--db", run.url, "ingest", str(path)]) == 0
    assert f"ingest {path}: 2 in " in terminal.getvalue()
