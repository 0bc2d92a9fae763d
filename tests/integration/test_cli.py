"""The `eventstore` command line on a real SQLite file."""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eventstore import cli
from eventstore.store.schema import SCHEMA_REVISION
from tests.conftest import EVENTS_DIR
from tests.helpers import first_record
from tests.notification_factory import notification

EVENT_FIELDS = [
    "position", "event_id", "event_name", "event_time", "bucket", "key", "version_id",
    "sequencer", "size", "etag", "principal_id", "source_ip", "request_id", "region", "source",
]  # fmt: skip
CATALOG_FIELDS = [
    "bucket", "key", "version_id", "size", "etag", "sequencer", "last_event_name",
    "last_event_time", "deleted",
]  # fmt: skip

# Fixtures with known event times, for the audit queries.
TIMED = [
    "s3_put.json",  # 12:00:00.123 acme-invoices
    "s3_put_key_with_spaces.json",  # 12:01:10.004 acme-media photos/
    "s3_post.json",  # 12:02:00.250 acme-media uploads/
    "s3_copy.json",  # 12:03:30.777 acme-media reports/
    "s3_delete_unversioned.json",  # 12:05:00.000 acme-logs logs/ ObjectRemoved:Delete
    "s3_delete_version.json",  # 12:06:00.000 acme-media reports/ ObjectRemoved:Delete
    "s3_delete_marker_created.json",  # 12:07:00.321 acme-media menus/ DeleteMarkerCreated
    "s3_lifecycle_expiration_delete.json",  # 2026-03-02 00:14:07 acme-logs logs/ by s3
]


class Run:
    """`eventstore --db URL ARGS...` in this process, capturing the output."""

    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        code = cli.main(["--db", self.url, *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> Any:
        code, out, err = self(*args, "--format", "json")
        assert code == 0, err
        return json.loads(out)

    def ingest(self, *fixtures: str) -> dict[str, int]:
        code, out, err = self("ingest", *(str(EVENTS_DIR / f) for f in fixtures))
        assert code == 0, err
        summary: dict[str, int] = json.loads(out)
        return summary


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    return Run(f"sqlite:///{tmp_path / 'cli.db'}", capsys)


@pytest.fixture
def timed(run: Run) -> Run:
    run.ingest(*TIMED)
    return run


def keys_of(rows: list[dict[str, Any]]) -> list[str]:
    return [row["key"] for row in rows]


# -- ingest -------------------------------------------------------------------------------


def test_ingest_prints_the_summary(run: Run) -> None:
    assert run.ingest("sqs_sns_batch_realistic.json") == {
        "received": 9, "appended": 7, "duplicates": 1, "conflicts": 0, "skipped": 1, "failed": 0,
    }  # fmt: skip


def test_ingest_again_appends_nothing(run: Run) -> None:
    run.ingest("sqs_sns_batch_realistic.json")
    assert run.ingest("sqs_sns_batch_realistic.json") == {
        "received": 9, "appended": 0, "duplicates": 8, "conflicts": 0, "skipped": 1, "failed": 0,
    }  # fmt: skip


def test_ingest_the_same_change_in_every_form_stores_it_once(run: Run) -> None:
    summary = run.ingest(
        "s3_put.json",
        "sqs_sns_put.json",
        "sqs_raw_delivery_put.json",
        "sqs_direct_put.json",
        "sns_put.json",
        "eventbridge_object_created_put.json",
        "sqs_eventbridge_put.json",
    )
    assert summary == {
        "received": 7, "appended": 1, "duplicates": 6, "conflicts": 0, "skipped": 0, "failed": 0,
    }  # fmt: skip


def test_ingest_every_fixture(run: Run) -> None:
    fixtures = sorted(p.name for p in EVENTS_DIR.glob("*.json"))
    summary = run.ingest(*fixtures)
    assert summary["failed"] == 0
    assert summary["skipped"] == 3  # the test event: bare, via SQS+SNS, in the realistic batch
    assert summary["appended"] + summary["duplicates"] + summary["skipped"] == summary["received"]
    assert run("verify")[0] == 0


def test_ingest_from_stdin_and_json_lines(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = "\n".join(
        json.dumps(json.loads((EVENTS_DIR / name).read_text()))
        for name in ("s3_post.json", "s3_copy.json", "s3_test_event.json")
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    code, out, _ = run("ingest", "-")
    assert code == 0
    assert json.loads(out) == {
        "received": 3,
        "appended": 2,
        "duplicates": 0,
        "conflicts": 0,
        "skipped": 1,
        "failed": 0,
    }


def test_ingest_exits_1_when_a_message_failed(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    path.write_text((EVENTS_DIR / "s3_post.json").read_text().replace("\n", "") + "\n{broken\n")
    code, out, err = run("ingest", str(path))
    assert code == 1
    assert json.loads(out)["failed"] == 1
    assert json.loads(out)["appended"] == 1
    assert f"failed message {path}:2: SQS message body is not JSON" in err


def test_ingest_unreadable_file_is_a_usage_error(run: Run, tmp_path: Path) -> None:
    code, out, err = run("ingest", str(EVENTS_DIR / "s3_post.json"), str(tmp_path / "missing.json"))
    assert code == 2
    assert out == ""
    assert "cannot read" in err
    assert "missing.json" in err
    # and nothing was stored from the readable file either: not even a database was made
    assert not (tmp_path / "cli.db").exists()


def test_ingest_a_file_that_is_not_utf8(run: Run, tmp_path: Path) -> None:
    # Given a one-line file in Latin-1
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"Records": [], "note": "caf\xe9"}')
    # When it is ingested
    code, out, err = run("ingest", str(path))
    # Then its line fails alone, saying why and where
    assert code == 1
    assert json.loads(out)["failed"] == 1
    assert f"failed message {path}:1: line 1 is not UTF-8 (byte 0xe9 at column 29)" in err


# -- history ------------------------------------------------------------------------------


def test_history_is_in_sequencer_order(run: Run) -> None:
    # Given four events of one key delivered out of order, sequencers of different lengths
    run.ingest("s3_sequencer_lengths_and_cases.json")
    # When its history is asked for
    rows = run.json("history", "s3://acme-logs/logs/app/2026-03-01.log")
    # Then it is in S3's order, with DESIGN's field names
    assert [(r["event_name"], r["size"]) for r in rows] == [
        ("ObjectCreated:Put", 1024),
        ("ObjectCreated:Put", 2048),
        ("ObjectRemoved:Delete", None),
        ("ObjectCreated:Put", 4096),
    ]
    assert [r["position"] for r in rows] == [3, 4, 1, 2]
    assert all(list(r) == EVENT_FIELDS for r in rows)
    assert rows[2]["sequencer"] == "0065E1F7A0B1C2D3F5"
    assert rows[0]["event_time"] == "2026-03-01T12:19:59.000Z"


def test_history_takes_the_decoded_key_as_typed(run: Run, tmp_path: Path) -> None:
    record = first_record("s3_post.json")
    record["s3"]["bucket"]["name"] = "b"
    record["s3"]["object"]["key"] = "a+b%2Bc.txt"
    path = tmp_path / "plus.json"
    path.write_text(json.dumps(notification([record])))
    run.ingest(str(path))
    (row,) = run.json("history", "s3://b/a b+c.txt")
    assert row["key"] == "a b+c.txt"
    assert run.json("history", "s3://b/a+b%2Bc.txt") == []


def test_history_of_a_unicode_key_with_spaces(run: Run) -> None:
    run.ingest("s3_delete_marker_created.json", "s3_put_key_with_spaces.json")
    (row,) = run.json("history", "s3://acme-media/menus/café crème.pdf")
    assert row["event_name"] == "ObjectRemoved:DeleteMarkerCreated"
    assert len(run.json("history", "s3://acme-media/photos/summer holiday/beach day (1).jpg")) == 1


def test_history_jsonl_and_csv_use_the_same_fields(run: Run) -> None:
    run.ingest("sqs_sns_batch_realistic.json")
    uri = "s3://acme-orders/orders/2026/03/01/order-7781.json"
    code, out, _ = run("history", uri, "--format", "jsonl")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [list(line) for line in lines] == [EVENT_FIELDS] * 3
    assert [line["event_name"] for line in lines] == [
        "ObjectCreated:Put", "ObjectCreated:Put", "ObjectTagging:Put",
    ]  # fmt: skip
    code, out, _ = run("history", uri, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == EVENT_FIELDS
    assert [r["size"] for r in rows] == ["2311", "2419", ""]
    assert [r["source"] for r in rows] == ["sqs+sns"] * 3


def test_history_table_shows_decoded_keys(run: Run) -> None:
    run.ingest("s3_put_key_with_spaces.json")
    code, out, _ = run("history", "s3://acme-media/photos/summer holiday/beach day (1).jpg")
    assert code == 0
    assert "photos/summer holiday/beach day (1).jpg" in out
    assert "(1 row)" in out


@pytest.mark.parametrize(
    "uri", ["http://bucket/key", "s3://bucket-only", "s3:///key", "bucket/key"]
)
def test_history_needs_an_s3_address(run: Run, uri: str) -> None:
    code, _, err = run("history", uri)
    assert code == 2
    assert "s3://" in err


# -- events -------------------------------------------------------------------------------


def test_events_prefix(timed: Run) -> None:
    rows = timed.json("events", "--prefix", "logs/")
    assert keys_of(rows) == ["logs/app/2026-02-28.log", "logs/app/2026-01-01.log"]


def test_events_bucket(timed: Run) -> None:
    assert {r["bucket"] for r in timed.json("events", "--bucket", "acme-logs")} == {"acme-logs"}
    assert len(timed.json("events", "--bucket", "acme-media")) == 5


def test_who_deleted_what_under_logs_since_january(timed: Run) -> None:
    rows = timed.json("events", "--prefix", "logs/", "--since", "2026-01-01T00:00:00Z",
                      "--type", "ObjectRemoved:*")  # fmt: skip
    assert [(r["key"], r["event_name"], r["principal_id"]) for r in rows] == [
        ("logs/app/2026-02-28.log", "ObjectRemoved:Delete", "AWS:AIDAJDPLRKLG7UEXAMPLE"),
    ]


def test_since_is_inclusive_and_until_exclusive(timed: Run) -> None:
    # the delete under logs/ happened at exactly 12:05:00.000Z
    since = timed.json("events", "--since", "2026-03-01T12:05:00Z")
    assert keys_of(since)[0] == "logs/app/2026-02-28.log"
    until = timed.json("events", "--until", "2026-03-01T12:05:00Z")
    assert "logs/app/2026-02-28.log" not in keys_of(until)
    assert len(since) + len(until) == len(TIMED)


def test_times_are_compared_as_times_with_offsets(timed: Run) -> None:
    # 14:05+02:00 is 12:05Z: a string comparison would get this wrong
    rows = timed.json("events", "--since", "2026-03-01T14:05:00+02:00",
                      "--until", "2026-03-01T07:06:00-05:00")  # fmt: skip
    assert keys_of(rows) == ["logs/app/2026-02-28.log"]


def test_times_are_compared_with_fractions(timed: Run) -> None:
    # the POST happened at 12:02:00.250Z
    assert "uploads/form+data/avatar.png" in keys_of(
        timed.json(
            "events", "--since", "2026-03-01T12:02:00.25Z", "--until", "2026-03-01T12:02:01Z"
        )
    )
    assert timed.json("events", "--since", "2026-03-01T12:02:00.250001Z",
                      "--until", "2026-03-01T12:03:00Z") == []  # fmt: skip
    assert keys_of(timed.json("events", "--since", "2026-03-01T12:02:00.2499Z",
                              "--until", "2026-03-01T14:02:00.251+02:00")) == [
        "uploads/form+data/avatar.png"
    ]  # fmt: skip


def test_a_time_without_zone_is_utc(timed: Run) -> None:
    rows = timed.json("events", "--since", "2026-03-02T00:00:00")
    assert keys_of(rows) == ["logs/app/2026-01-01.log"]


def test_events_type_patterns(timed: Run) -> None:
    removed = timed.json("events", "--type", "ObjectRemoved:*")
    assert [r["event_name"] for r in removed] == [
        "ObjectRemoved:Delete", "ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated",
    ]  # fmt: skip
    exact = timed.json("events", "--type", "ObjectCreated:Post", "--type", "LifecycleExpiration:*")
    assert [r["event_name"] for r in exact] == ["ObjectCreated:Post", "LifecycleExpiration:Delete"]
    assert len(timed.json("events", "--type", "s3:ObjectCreated:*")) == 4


def test_events_principal(timed: Run) -> None:
    rows = timed.json("events", "--principal", "s3.amazonaws.com")
    assert [r["event_name"] for r in rows] == ["LifecycleExpiration:Delete"]


def test_events_limit(timed: Run) -> None:
    rows = timed.json("events", "--limit", "2")
    assert [r["position"] for r in rows] == [1, 2]


@pytest.mark.parametrize("limit", ["0", "-1", "two"])
def test_events_limit_must_be_positive(timed: Run, limit: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        timed("events", "--limit", limit)
    assert exit_.value.code == 2


@pytest.mark.parametrize(
    ("option", "value"),
    [("--since", "yesterday"), ("--until", "2026-13-01T00:00:00Z"), ("--since", "2026-03-01 noon")],
)
def test_a_bad_time_is_a_usage_error(timed: Run, option: str, value: str) -> None:
    code, out, err = timed("events", option, value)
    assert code == 2
    assert out == ""
    assert option in err
    assert repr(value) in err


def test_events_csv_header(timed: Run) -> None:
    code, out, _ = timed("events", "--format", "csv", "--limit", "1")
    assert code == 0
    assert out.splitlines()[0] == ",".join(EVENT_FIELDS)


# -- objects ------------------------------------------------------------------------------


def test_objects_lists_what_exists(run: Run) -> None:
    run.ingest("sqs_sns_batch_realistic.json")
    rows = run.json("objects")
    assert keys_of(rows) == [
        "archive/orders/order-7781.json",
        "customers/müller/café receipt.pdf",
        "orders/2026/03/01/order-7781.json",
    ]
    assert all(list(r) == CATALOG_FIELDS for r in rows)
    order = rows[2]
    assert order["version_id"] == "S3c0ndV3rs10nOfOrder7781bbbbbbbbb"
    assert order["size"] == 2419
    assert order["deleted"] is False
    assert order["last_event_name"] == "ObjectCreated:Put"


def test_objects_include_deleted(run: Run) -> None:
    run.ingest("sqs_sns_batch_realistic.json")
    rows = run.json("objects", "--include-deleted", "--prefix", "orders/")
    assert [(r["key"], r["deleted"]) for r in rows] == [
        ("orders/2026/03/01/order 7782 (draft).json", True),
        ("orders/2026/03/01/order-7781.json", False),
    ]
    assert rows[0]["size"] is None
    assert rows[0]["last_event_name"] == "ObjectRemoved:DeleteMarkerCreated"


def test_objects_bucket_filter(run: Run) -> None:
    run.ingest("sqs_sns_batch_realistic.json", "s3_put.json")
    assert keys_of(run.json("objects", "--bucket", "acme-invoices")) == [
        "invoices/2026/03/inv-1042.pdf"
    ]


def test_objects_as_of(run: Run) -> None:
    run.ingest("sqs_sns_batch_realistic.json")
    at_0920 = run.json("objects", "--as-of", "2026-03-01T09:20:00Z")
    assert keys_of(at_0920) == [
        "orders/2026/03/01/order 7782 (draft).json",
        "orders/2026/03/01/order-7781.json",
    ]
    assert at_0920[1]["size"] == 2419
    at_0916 = run.json("objects", "--as-of", "2026-03-01T11:16:00+02:00")
    assert [(r["key"], r["size"]) for r in at_0916] == [("orders/2026/03/01/order-7781.json", 2311)]
    after_delete = run.json("objects", "--as-of", "2026-03-01T09:25:48Z", "--include-deleted")
    deleted = {r["key"]: r["deleted"] for r in after_delete}
    assert deleted["orders/2026/03/01/order 7782 (draft).json"] is True
    assert run.json("objects", "--as-of", "2026-03-01T00:00:00Z") == []


def test_objects_as_of_now_matches_the_catalog(run: Run) -> None:
    run.ingest(*TIMED, "sqs_sns_batch_realistic.json", "s3_sequencer_lengths_and_cases.json")
    live = run.json("objects", "--include-deleted")
    rebuilt = run.json("objects", "--include-deleted", "--as-of", "2027-01-01T00:00:00Z")
    assert rebuilt == live


def test_objects_bad_as_of(run: Run) -> None:
    code, _, err = run("objects", "--as-of", "last tuesday")
    assert code == 2
    assert "--as-of" in err


# -- verify, db, configuration --------------------------------------------------------------


def test_verify_an_intact_log(timed: Run) -> None:
    code, out, _ = timed("verify")
    assert code == 0
    assert out.startswith(f"ok: hash chain intact over {len(TIMED)} events")
    (report,) = timed.json("verify")
    head_hash = report.pop("head_hash")
    assert report == {"ok": True, "checked": len(TIMED), "head_position": len(TIMED),
                      "first_bad_position": None, "reason": None,
                      "projection_faults": {}}  # fmt: skip
    assert f"anchor: {len(TIMED)}:{head_hash}" in out


def test_verify_an_empty_log(run: Run) -> None:
    assert run("db", "upgrade")[0] == 0
    code, out, _ = run("verify")
    assert code == 0
    assert out.startswith("ok: hash chain intact over 0 events")


def test_db_upgrade(run: Run) -> None:
    code, out, _ = run("db", "upgrade")
    assert code == 0
    assert out.strip() == f"database at revision {SCHEMA_REVISION}"
    assert run("db", "upgrade")[0] == 0  # and again: nothing to do


def test_database_url_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTSTORE_DB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert cli.main(["ingest", str(EVENTS_DIR / "s3_post.json")]) == 0
    assert (tmp_path / "env.db").exists()
    capsys.readouterr()
    assert cli.main(["events", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a database URL"),
        ("mysql://user@localhost/db", "unsupported database"),
        ("sqlite:////no/such/folder/events.db", "folder of the SQLite file does not exist"),
    ],
)
def test_a_bad_database_url_is_a_usage_error(
    url: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["--db", url, "events"])
    _, err = capsys.readouterr()
    assert code == 2
    assert message in err


def test_the_installed_console_script(tmp_path: Path) -> None:
    # Given the real `eventstore` entry point of the virtualenv
    script = Path(sys.executable).parent / "eventstore"
    assert script.exists()
    url = f"sqlite:///{tmp_path / 'script.db'}"
    # When a batch is ingested and the log verified through it
    ingest = subprocess.run(
        [str(script), "--db", url, "ingest", str(EVENTS_DIR / "sqs_sns_batch_realistic.json")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ingest.returncode == 0, ingest.stderr
    assert json.loads(ingest.stdout) == {
        "received": 9, "appended": 7, "duplicates": 1, "conflicts": 0, "skipped": 1, "failed": 0,
    }  # fmt: skip
    history = subprocess.run(
        [str(script), "--db", url, "history", "--format", "jsonl",
         "s3://acme-orders/orders/2026/03/01/order 7782 (draft).json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert [json.loads(x)["event_name"] for x in history.stdout.splitlines()] == [
        "ObjectCreated:Put", "ObjectRemoved:DeleteMarkerCreated",
    ]  # fmt: skip
    verify = subprocess.run([str(script), "--db", url, "verify"], capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert verify.returncode == 0
    bad = subprocess.run([str(script), "--db", url, "events", "--since", "soon"],
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert bad.returncode == 2
    assert "--since" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_line_with_a_lone_surrogate_fails_alone(run: Run, tmp_path: Path) -> None:
    # Given JSON lines, one of which spells a lone UTF-16 surrogate no database can store
    record = first_record("s3_copy.json")
    record["note"] = "\ud800"
    path = tmp_path / "surrogate.jsonl"
    path.write_text(
        json.dumps(notification([record])) + "\n" + json.dumps(first_record_notification()) + "\n"
    )
    # When it is ingested
    code, out, err = run("ingest", str(path))
    # Then that line fails with its reason and the other is stored
    assert code == 1
    assert json.loads(out)["appended"] == 1
    assert f"failed message {path}:1:" in err
    assert "lone surrogate" in err


def first_record_notification() -> dict[str, Any]:
    return notification([first_record("s3_post.json")])
