"""`eventstore replay --from archive | s3 | sqs`: in-process under moto, and as a real
subprocess against a moto server, the way a user runs it against an endpoint."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from eventstore import cli
from eventstore.local.embedded import embedded_aws
from eventstore.store.sql import SqlEventStore, open_store
from tests.helpers import caught_up_objects
from tests.integration.replay_support import (
    REGION,
    event_ids,
    fake_aws_credentials,
    ingest_directly,
    sample_messages,
    write_archive,
)
from tests.notification_factory import s3_record, sns_wrapped


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        yield


def run(
    capsys: pytest.CaptureFixture[str], db: str, *args: str
) -> tuple[int, dict[str, object], str]:
    code = cli.main(["--db", db, "replay", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


@pytest.mark.usefixtures("aws")
def test_replay_from_archive_prints_a_summary_and_a_closing_line(
    capsys: pytest.CaptureFixture[str], sqlite_url: str, sqlite_store: SqlEventStore
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="archive")
    write_archive(s3, "archive", sample_messages())

    code, summary, err = run(capsys, sqlite_url, "--from", "archive", "s3://archive/raw/")

    assert code == 0
    assert summary == {
        "source": "archive", "read": 6, "received": 7, "appended": 6, "duplicates": 0,
        "skipped": 1, "failed": 0, "failures": [],
    }  # fmt: skip
    assert err.startswith("replay from archive: 6 in ")
    assert "6 appended, 0 duplicates, 1 skipped, 0 failed" in err
    assert len(event_ids(sqlite_store)) == 6


@pytest.mark.usefixtures("aws")
def test_replay_from_archive_defaults_to_the_raw_prefix_and_filters_by_hour(
    capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="archive")
    write_archive(s3, "archive", sample_messages())

    code, summary, _ = run(
        capsys, sqlite_url, "--from", "archive", "s3://archive",
        "--since", "2026-03-01T11:00:00Z", "--until", "2026-03-01T12:00:00Z",
    )  # fmt: skip

    assert code == 0
    assert (summary["read"], summary["appended"]) == (2, 3)


@pytest.mark.usefixtures("aws")
def test_replay_from_s3_back_fills_versions(
    capsys: pytest.CaptureFixture[str], sqlite_url: str, sqlite_store: SqlEventStore
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="data")
    s3.put_bucket_versioning(Bucket="data", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="data", Key="in/a.txt", Body=b"a")
    s3.delete_object(Bucket="data", Key="in/a.txt")
    s3.put_object(Bucket="data", Key="out/b.txt", Body=b"b")

    code, summary, _ = run(capsys, sqlite_url, "--from", "s3", "s3://data/in/")

    assert code == 0
    assert (summary["read"], summary["appended"]) == (2, 2)
    assert [e.key for e in caught_up_objects(sqlite_store, include_deleted=True)] == ["in/a.txt"]


@pytest.mark.usefixtures("aws")
def test_replay_from_sqs_exits_1_and_names_the_message_that_stays(
    capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    sqs.send_message(
        QueueUrl=queue,
        MessageBody=sns_wrapped("m", s3_record("audit-bucket", "x", sequencer="01", size=100)),
    )
    poison = sqs.send_message(QueueUrl=queue, MessageBody="{oops")["MessageId"]

    code, summary, err = run(capsys, sqlite_url, "--from", "sqs", queue)

    assert code == 1
    assert (summary["appended"], summary["deleted"], summary["failed"]) == (1, 1, 1)
    assert f"eventstore: failed {poison}: SQS message body is not JSON" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "sqs"], "--from sqs needs QUEUE_URL"),
        (["--from", "s3", "data"], "not an s3://BUCKET[/PREFIX] address"),
        (["--from", "sqs", "https://q", "--prefix", "p/"], "--prefix apply only to --from log"),
        (["--from", "s3", "s3://b", "--since", "2026-03-01"], "--since / --until apply to"),
    ],
)
def test_unusable_arguments_exit_2_with_a_reason(
    capsys: pytest.CaptureFixture[str], sqlite_url: str, args: list[str], message: str
) -> None:
    code, _, err = run(capsys, sqlite_url, *args)

    assert code == 2
    assert message in err
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # nothing was opened


def test_a_source_that_cannot_be_read_exits_2(
    aws: None, capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    code, _, err = run(capsys, sqlite_url, "--from", "s3", "s3://no-such-bucket")

    assert code == 2
    assert "NoSuchBucket" in err


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    fake_aws_credentials(monkeypatch)
    with embedded_aws() as endpoint:
        yield endpoint


def eventstore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventstore.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )


def test_the_command_against_a_moto_server(
    moto_server: str, tmp_path: Path, sqlite_store: SqlEventStore
) -> None:
    # Given an archive and a dead-letter queue on a moto server, as the demo would have them
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_server)
    s3.create_bucket(Bucket="archive")
    messages = sample_messages()
    write_archive(s3, "archive", messages)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_server)
    queue = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=messages[0].body)
    sqs.send_message(QueueUrl=queue, MessageBody="poison")
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    endpoint = ["--endpoint-url", moto_server, "--region", REGION]

    # When the archive is replayed, then the queue drained, by the installed command
    archive = eventstore("--db", db, "replay", "--from", "archive", "s3://archive/raw/", *endpoint)
    drained = eventstore("--db", db, "replay", "--from", "sqs", queue, *endpoint)
    verify = eventstore("--db", db, "verify")

    # Then the archive reproduces what direct ingestion stored, and the drain reports poison
    assert archive.returncode == 0, archive.stderr
    assert json.loads(archive.stdout)["appended"] == 6
    assert "replay from archive: 6 in" in archive.stderr
    assert drained.returncode == 1
    drained_summary = json.loads(drained.stdout)
    assert (drained_summary["duplicates"], drained_summary["failed"]) == (1, 1)
    assert verify.returncode == 0, verify.stdout
    ingest_directly(sqlite_store, messages)
    assert event_ids(open_store(db)) == event_ids(sqlite_store)
