"""Replay from the raw-notification archive (moto S3): same ids as the first ingestion."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from eventstore.core.events import Source
from eventstore.replay import parse_archive_key, replay_from_archive
from eventstore.store.database import create_engine, upgrade_schema
from eventstore.store.sql import SqlEventStore
from tests.helpers import caught_up_objects
from tests.integration.replay_support import (
    REGION,
    SENT,
    event_ids,
    fake_aws_credentials,
    ingest_directly,
    sample_messages,
    write_archive,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "ingest-archive"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator["S3Client"]:
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlEventStore]:
    """A second, empty database built by the migrations, on each backend."""
    if request.param == "postgres":
        yield request.getfixturevalue("postgres_store")
        return
    engine = create_engine(f"sqlite:///{tmp_path / 'replayed.db'}")
    upgrade_schema(engine)
    yield SqlEventStore(engine)
    engine.dispose()


def test_archive_into_an_empty_database_reproduces_the_event_ids_and_verifies(
    s3: "S3Client", sqlite_store: SqlEventStore, empty_store: SqlEventStore
) -> None:
    # Given messages first ingested directly, and archived by the archive consumer's layout
    messages = sample_messages()
    original = ingest_directly(sqlite_store, messages)
    keys = write_archive(s3, BUCKET, messages)

    # When the archive is replayed into an empty database
    summary = replay_from_archive(empty_store, s3, BUCKET, "raw/")

    # Then it holds the same events under the same ids, and its hash chain is intact
    assert summary.failed == 0 and summary.failures == []
    assert summary.read == len(keys)
    assert (summary.received, summary.appended, summary.skipped) == (
        original.received,
        original.appended,
        original.skipped,
    )
    assert event_ids(empty_store) == event_ids(sqlite_store)
    assert len(event_ids(empty_store)) == 6
    assert empty_store.verify().ok
    assert {s.event.source for s in empty_store.read()} == {Source.ARCHIVE}
    assert {s.event.causation_id for s in empty_store.read()} == {
        m.message_id for m in messages[:5]
    }

    # and the object catalog comes out the same
    def catalog(store: SqlEventStore) -> list[tuple[object, ...]]:
        return [
            (e.key, e.version_id, e.size, e.etag, e.deleted, e.last_event_name)
            for e in caught_up_objects(store, include_deleted=True)
        ]

    assert catalog(empty_store) == catalog(sqlite_store)
    assert [e.key for e in caught_up_objects(empty_store)] == ["photos/a b+c ü.jpg"]


def test_events_are_appended_in_key_order_which_is_time_order(
    s3: "S3Client", sqlite_store: SqlEventStore
) -> None:
    messages = sample_messages()
    write_archive(s3, BUCKET, messages)

    replay_from_archive(sqlite_store, s3, BUCKET)

    message_hours = {m.message_id: m.sent_at.hour for m in messages}
    hours = [message_hours[s.event.causation_id or ""] for s in sqlite_store.read()]
    assert hours == sorted(hours)


def test_replaying_the_archive_twice_stores_nothing_new(
    s3: "S3Client", sqlite_store: SqlEventStore
) -> None:
    write_archive(s3, BUCKET, sample_messages())
    first = replay_from_archive(sqlite_store, s3, BUCKET, "raw/")
    head = sqlite_store.head_position()

    second = replay_from_archive(sqlite_store, s3, BUCKET, "raw/", workers=1)

    assert first.appended == 6
    assert second.appended == 0
    assert second.duplicates == 6
    assert sqlite_store.head_position() == head
    assert sqlite_store.verify().ok


def test_replay_over_a_log_that_already_holds_some_events_adds_only_the_rest(
    s3: "S3Client", sqlite_store: SqlEventStore
) -> None:
    messages = sample_messages()
    ingest_directly(sqlite_store, messages[:2])
    write_archive(s3, BUCKET, messages)

    summary = replay_from_archive(sqlite_store, s3, BUCKET)

    assert (summary.appended, summary.duplicates) == (4, 2)
    assert len(event_ids(sqlite_store)) == 6


def test_a_malformed_archived_object_is_reported_and_the_rest_is_stored(
    s3: "S3Client", sqlite_store: SqlEventStore
) -> None:
    write_archive(s3, BUCKET, sample_messages())
    s3.put_object(Bucket=BUCKET, Key="raw/2026/03/01/11/broken-0001.json", Body=b'{"Records": [')
    s3.put_object(Bucket=BUCKET, Key="raw/2026/03/01/11/binary-0002.json", Body=b"\xff\xfe\x00")
    s3.put_object(Bucket=BUCKET, Key="raw/2026/03/01/11/notes.txt", Body=b"hello")
    s3.put_object(Bucket=BUCKET, Key="raw/2026/03/01/", Body=b"")  # a console "folder"

    summary = replay_from_archive(sqlite_store, s3, BUCKET)

    assert summary.appended == 6
    assert summary.failed == 3
    reasons = {f.item: f.reason for f in summary.failures}
    assert set(reasons) == {
        "raw/2026/03/01/11/broken-0001.json",
        "raw/2026/03/01/11/binary-0002.json",
        "raw/2026/03/01/11/notes.txt",
    }
    assert "not JSON" in reasons["raw/2026/03/01/11/broken-0001.json"]
    assert "not UTF-8" in reasons["raw/2026/03/01/11/binary-0002.json"]
    assert "does not follow" in reasons["raw/2026/03/01/11/notes.txt"]
    assert sqlite_store.verify().ok


def test_since_and_until_select_whole_hour_partitions(
    s3: "S3Client", sqlite_store: SqlEventStore
) -> None:
    # Messages were sent at 10:xx, 11:15 and 12:15 (see sample_messages)
    keys = write_archive(s3, BUCKET, sample_messages())

    summary = replay_from_archive(
        sqlite_store,
        s3,
        BUCKET,
        since=datetime(2026, 3, 1, 11, 59, tzinfo=UTC),
        until=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    )

    hour_11 = [k for k in keys if parse_archive_key(k)[0].hour == 11]
    assert summary.read == len(hour_11) == 2
    assert {s.event.causation_id for s in sqlite_store.read()} == {
        parse_archive_key(k)[1] for k in hour_11
    }


def test_a_custom_prefix_is_read_and_other_prefixes_are_not(
    s3: "S3Client", sqlite_store: SqlEventStore
) -> None:
    messages = sample_messages()
    write_archive(s3, BUCKET, messages[:2], prefix="archive/prod/")
    write_archive(s3, BUCKET, messages[2:], prefix="archive/staging/")

    summary = replay_from_archive(sqlite_store, s3, BUCKET, "archive/prod/")

    assert (summary.read, summary.appended) == (2, 2)


def test_the_archive_key_names_the_hour_and_message() -> None:
    key = "raw/2026/03/01/10/5f1c0a3e-0001.json"
    assert parse_archive_key(key) == (SENT.replace(minute=0), "5f1c0a3e-0001")
    with pytest.raises(ValueError, match="not a date"):
        parse_archive_key("raw/2026/13/01/10/x.json")
