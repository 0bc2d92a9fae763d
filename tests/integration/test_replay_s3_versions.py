"""Back-fill from ListObjectVersions (moto S3): versions and delete markers become events,
and no version the log already holds is added again."""

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from eventstore.core.events import Source
from eventstore.core.parsing import parse_sqs_body
from eventstore.replay import (
    BACKFILL_CREATED,
    BACKFILL_DELETE_MARKER,
    ReplaySourceError,
    backfill_from_s3_versions,
)
from eventstore.store.sql import SqlEventStore
from tests.helpers import caught_up_objects
from tests.integration.replay_support import REGION, fake_aws_credentials
from tests.notification_factory import new_events, s3_record

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import PutObjectOutputTypeDef

BUCKET = "audit-bucket"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> SqlEventStore:
    """The log on each backend; the back-fill's own query (known_versions) is SQL."""
    chosen: SqlEventStore = request.getfixturevalue(f"{request.param}_store")
    return chosen


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator["S3Client"]:
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        yield boto3.client("s3", region_name=REGION)


def next_second() -> None:
    """Wait until the clock enters a new second: S3 reports LastModified to the second."""
    now = time.time()
    time.sleep(1.01 - (now - int(now)))


def notification_of_put(
    key: str, put: "PutObjectOutputTypeDef", size: int, sequencer: str, when: datetime
) -> str:
    """The SQS body S3 would have sent for this PUT: real version id and ETag (moto's own
    notifications carry neither a versionId nor a sequencer)."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLEUSER"},
        "requestParameters": {"sourceIPAddress": "203.0.113.10"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "id2"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "all-events",
            "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
            "object": {
                "key": key,
                "size": size,
                "eTag": put["ETag"].strip('"'),
                **({"versionId": put["VersionId"]} if "VersionId" in put else {}),
                "sequencer": sequencer,
            },
        },
    }
    return json.dumps({"Records": [record]})


def ingest(store: SqlEventStore, body: str, message_id: str) -> None:
    store.append(parse_sqs_body(body, message_id=message_id).events)


def test_versions_and_delete_markers_become_events_without_repeating_a_logged_version(
    s3: "S3Client", store: SqlEventStore
) -> None:
    # Given a bucket with an object from before versioning, then a versioned key that was
    # written, overwritten and deleted (a delete marker) a second apart
    s3.create_bucket(Bucket=BUCKET)
    legacy = s3.put_object(Bucket=BUCKET, Key="legacy/readme.txt", Body=b"from before")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=BUCKET, Key="docs/report.txt", Body=b"first draft")
    next_second()
    v2 = s3.put_object(Bucket=BUCKET, Key="docs/report.txt", Body=b"final version!")
    v2_time = datetime.now(UTC)
    next_second()
    marker = s3.delete_object(Bucket=BUCKET, Key="docs/report.txt")
    # and a log that has the notification of the overwrite only (the pipeline started then)
    ingest(
        store,
        notification_of_put("docs/report.txt", v2, 14, "0062A1B2C3D4E5F601", v2_time),
        "msg-v2",
    )

    # When the bucket is back-filled from its version listing
    summary = backfill_from_s3_versions(store, s3, BUCKET)

    # Then the first version and the delete marker are added, the overwrite is not repeated
    assert summary.read == 4
    assert (summary.appended, summary.duplicates, summary.failed) == (3, 1, 0)
    history = store.history(BUCKET, "docs/report.txt")
    assert [(s.event.event_name, s.event.version_id) for s in history] == [
        (BACKFILL_CREATED, v1["VersionId"]),
        ("ObjectCreated:Put", v2["VersionId"]),
        (BACKFILL_DELETE_MARKER, marker["VersionId"]),
    ]
    first = history[0].event
    assert first.source is Source.S3_VERSIONS
    assert (first.size, first.etag, first.sequencer) == (11, v1["ETag"].strip('"'), None)
    assert first.principal_id  # the listing's Owner.ID
    assert first.record["eventSource"] == "eventstore:s3-versions"
    assert first.record["entry"]["VersionId"] == v1["VersionId"]
    assert history[2].event.size is None and history[2].event.etag is None
    # and the object written before versioning was enabled has the null version, as None
    (legacy_event,) = store.history(BUCKET, "legacy/readme.txt")
    assert legacy_event.event.version_id is None
    assert legacy_event.event.etag == legacy["ETag"].strip('"')

    # and the catalog shows the key deleted now, and the overwrite current before the delete
    catalog = {e.key: e for e in caught_up_objects(store, include_deleted=True)}
    assert catalog["docs/report.txt"].deleted
    assert not catalog["legacy/readme.txt"].deleted
    assert catalog["legacy/readme.txt"].size == len(b"from before")
    before_delete = history[2].event.event_time - timedelta(milliseconds=1)
    (then,) = store.objects_as_of(before_delete, prefix="docs/")
    assert (then.version_id, then.deleted) == (v2["VersionId"], False)
    assert store.verify().ok


def test_running_the_back_fill_again_stores_nothing(s3: "S3Client", store: SqlEventStore) -> None:
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"a", b"bb", b"ccc"):
        s3.put_object(Bucket=BUCKET, Key="k", Body=body)
    s3.delete_object(Bucket=BUCKET, Key="k")
    first = backfill_from_s3_versions(store, s3, BUCKET)
    head = store.head_position()

    second = backfill_from_s3_versions(store, s3, BUCKET)

    assert first.appended == 4
    assert (second.appended, second.duplicates) == (0, 4)
    assert store.head_position() == head


def test_versions_listed_over_several_pages_keep_their_order_within_one_second(
    s3: "S3Client", store: SqlEventStore
) -> None:
    # Given five versions of one key, likely within one second, listed two entries a page
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET, Key="a-first", Body=b"x")
    puts = [s3.put_object(Bucket=BUCKET, Key="many", Body=str(i).encode()) for i in range(5)]
    s3.put_object(Bucket=BUCKET, Key="z-last", Body=b"y")

    summary = backfill_from_s3_versions(store, s3, BUCKET, page_size=2)

    # Then they are appended oldest first, and the catalog shows the last one written
    assert summary.appended == 7
    history = store.history(BUCKET, "many")
    assert [s.event.version_id for s in history] == [p["VersionId"] for p in puts]
    (entry,) = caught_up_objects(store, prefix="many")
    assert entry.version_id == puts[-1]["VersionId"]
    assert entry.size == 1


def test_the_null_version_is_matched_by_etag(s3: "S3Client", store: SqlEventStore) -> None:
    # Given an unversioned bucket whose log holds the notification of one object only
    s3.create_bucket(Bucket=BUCKET)
    logged = s3.put_object(Bucket=BUCKET, Key="seen.txt", Body=b"seen")
    s3.put_object(Bucket=BUCKET, Key="missed.txt", Body=b"missed by the pipeline")
    ingest(
        store,
        notification_of_put("seen.txt", logged, 4, "0062A1B2C3D4E5F601", datetime.now(UTC)),
        "msg-seen",
    )

    summary = backfill_from_s3_versions(store, s3, BUCKET)

    assert (summary.appended, summary.duplicates) == (1, 1)
    assert [s.event.event_name for s in store.history(BUCKET, "seen.txt")] == ["ObjectCreated:Put"]
    (missed,) = store.history(BUCKET, "missed.txt")
    assert (missed.event.event_name, missed.event.version_id) == (BACKFILL_CREATED, None)


def test_a_prefix_limits_the_back_fill(s3: "S3Client", store: SqlEventStore) -> None:
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="in/one", Body=b"1")
    s3.put_object(Bucket=BUCKET, Key="out/two", Body=b"2")

    summary = backfill_from_s3_versions(store, s3, BUCKET, "in/")

    assert summary.appended == 1
    assert [e.key for e in caught_up_objects(store)] == ["in/one"]


def test_a_missing_bucket_is_a_replay_source_error(s3: "S3Client", store: SqlEventStore) -> None:
    with pytest.raises(ReplaySourceError, match="NoSuchBucket"):
        backfill_from_s3_versions(store, s3, "no-such-bucket")


def test_known_versions_lists_existence_changing_events_of_the_keys_asked_about(
    store: SqlEventStore,
) -> None:
    records = [
        s3_record(BUCKET, "k", version_id="v1", sequencer="01", size=100, etag="e1"),
        s3_record(BUCKET, "k", event_name="ObjectTagging:Put", version_id="v9", sequencer="02",
                  size=None, etag=None),
        s3_record(BUCKET, "k", event_name="ObjectRemoved:DeleteMarkerCreated", version_id="v2",
                  sequencer="03"),
        s3_record(BUCKET, "k", event_name="LifecycleExpiration:Delete", version_id="v0",
                  sequencer="04", size=None, etag=None),
        s3_record(BUCKET, "plain", sequencer="05", size=100, etag="e5"),
        s3_record(BUCKET, "not-asked", version_id="v7", sequencer="06", size=100),
        s3_record("other-bucket", "k", version_id="v8", sequencer="07", size=100),
    ]  # fmt: skip
    store.append(new_events(records))

    known = store.known_versions("audit-bucket", ["k", "plain"])

    assert known == {
        ("k", "v1", "e1"),
        ("k", "v2", None),
        ("k", "v0", None),
        ("plain", None, "e5"),
    }
