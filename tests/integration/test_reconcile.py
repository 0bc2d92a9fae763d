"""`eventstore reconcile` through moto on both backends: a versioned bucket with versions and
delete markers, a log that missed some events and a delete, from ListObjectVersions and from
an S3 Inventory report written as S3 Inventory writes it; `--repair` completes the log."""

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import boto3
import pytest
from moto import mock_aws

from eventstore import cli
from eventstore.core.events import Source
from eventstore.store.sql import SqlEventStore, open_store
from tests.integration.replay_support import REGION, fake_aws_credentials
from tests.integration.test_replay_s3_versions import next_second
from tests.notification_factory import new_events, s3_record

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "audit-bucket"
INVENTORY_BUCKET = "inventory-reports"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator["S3Client"]:
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        yield boto3.client("s3", region_name=REGION)


class Bucket:
    """A versioned bucket, and the notifications S3 would have sent for what was done to it
    (with version ids, ETags and sequencers, which moto's own lack)."""

    def __init__(self, s3: "S3Client") -> None:
        self.s3 = s3
        self.records: dict[str, list[dict[str, Any]]] = {}
        self._sequence = 0

    def _record(self, key: str, **fields: Any) -> dict[str, Any]:
        self._sequence += 1
        record = s3_record(
            BUCKET, key, sequencer=f"{self._sequence:018X}", when=datetime.now(UTC), **fields
        )
        self.records.setdefault(key, []).append(record)
        return record

    def put(self, key: str, body: bytes) -> dict[str, Any]:
        put = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return self._record(
            key, version_id=put.get("VersionId"), size=len(body), etag=put["ETag"].strip('"')
        )

    def delete(self, key: str) -> dict[str, Any]:
        marker = self.s3.delete_object(Bucket=BUCKET, Key=key)
        return self._record(
            key, event_name="ObjectRemoved:DeleteMarkerCreated",
            version_id=marker.get("VersionId"), size=None, etag=None,
        )  # fmt: skip


def scenario(s3: "S3Client", log: SqlEventStore) -> None:
    """The bucket and what the log holds of it:
    - docs/a.txt    two versions, both logged                     -> complete
    - docs/b b.txt  one version the pipeline never saw             -> missing
    - logs/c.txt    logged put, then a delete marker it missed     -> missed delete
    - logs/d.txt    logged v1, a v2 it missed                      -> differs
    - logs/e.txt    put and delete marker, both logged             -> nothing
    - legacy/f.txt  written before versioning (the null version)   -> complete
    """
    s3.create_bucket(Bucket=BUCKET)
    bucket = Bucket(s3)
    logged = [bucket.put("legacy/f.txt", b"from before versioning")]
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    logged += [bucket.put("docs/a.txt", b"one"), bucket.put("docs/a.txt", b"two!")]
    bucket.put("docs/b b.txt", b"never notified")
    logged += [bucket.put("logs/c.txt", b"c"), bucket.put("logs/d.txt", b"d1")]
    # What the log missed comes back with S3's LastModified, which is to the second, and
    # takes its place among the key's logged events by time: a second later, as in life.
    next_second()
    bucket.delete("logs/c.txt")
    bucket.put("logs/d.txt", b"d2 longer")
    logged += [bucket.put("logs/e.txt", b"e"), bucket.delete("logs/e.txt")]
    log.append(new_events(logged))


def reconcile(
    capsys: pytest.CaptureFixture[str], db: str, *args: str
) -> tuple[int, dict[str, Any], str]:
    code = cli.main(["--db", db, "reconcile", f"s3://{BUCKET}", "--format", "json", *args])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def kinds(report: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(d["kind"], d["key"], d["fields"]) for d in report["differences"]]


EXPECTED = [
    ("missing", "docs/b b.txt", None),
    ("missed_delete", "logs/c.txt", None),
    ("differs", "logs/d.txt", "version_id,size,etag"),
]


def test_the_report_names_exactly_what_the_log_missed_and_repair_completes_it(
    s3: "S3Client", backend_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a versioned bucket and a log that missed a version, a delete and an overwrite
    log = open_store(backend_url)
    scenario(s3, log)

    # When it is reconciled from ListObjectVersions
    code, report, _ = reconcile(capsys, backend_url)

    # Then the report names exactly those, and 2 of S3's 4 live objects are complete
    assert code == 1
    assert kinds(report) == EXPECTED
    summary = report["summary"]
    assert (summary["s3_objects"], summary["complete"], summary["log_objects"]) == (4, 2, 4)
    assert summary["completeness"] == 0.5
    assert summary["catalog_lag"] == 0
    assert report["source"] == "ListObjectVersions"
    by_prefix = {p["prefix"]: (p["s3_objects"], p["complete"]) for p in report["prefixes"]}
    assert by_prefix == {"docs/": (2, 1), "legacy/": (1, 1), "logs/": (1, 0)}
    missing = report["differences"][0]
    assert (missing["s3_size"], missing["log_version_id"]) == (len(b"never notified"), None)

    # When it is reconciled again with --repair
    code, report, err = reconcile(capsys, backend_url, "--repair")

    # Then what S3 lists was back-filled, marked with its source, and the log is complete
    assert code == 0, err
    assert report["differences"] == []
    assert report["summary"]["completeness"] == 1.0
    assert report["repair"]["before"]["missing"] == 1
    assert report["repair"]["backfill"]["appended"] == 3  # b b.txt, c's marker, d's v2
    backfilled = [
        (s.event.key, s.event.event_name)
        for s in log.read()
        if s.event.source is Source.S3_VERSIONS
    ]
    assert sorted(backfilled) == [
        ("docs/b b.txt", "ObjectCreated:Backfill"),
        ("logs/c.txt", "ObjectRemoved:DeleteMarkerCreated"),
        ("logs/d.txt", "ObjectCreated:Backfill"),
    ]
    assert log.verify().ok
    assert cli.main(["--db", backend_url, "verify"]) == 0


def test_a_prefix_and_depth_narrow_the_report(
    s3: "S3Client", sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario(s3, open_store(sqlite_url))

    code, report, _ = reconcile(capsys, sqlite_url, "--depth", "0")
    assert code == 1
    assert {p["prefix"] for p in report["prefixes"]} == {""}

    code = cli.main(["--db", sqlite_url, "reconcile", f"s3://{BUCKET}/docs/", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert kinds(report) == [EXPECTED[0]]
    assert report["summary"]["s3_objects"] == 2


def test_the_table_shows_differences_prefixes_and_the_figure(
    s3: "S3Client", sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario(s3, open_store(sqlite_url))

    code = cli.main(["--db", sqlite_url, "reconcile", f"s3://{BUCKET}"])

    out, err = capsys.readouterr()
    assert code == 1
    assert "missed_delete  logs/c.txt" in out
    assert "docs/b b.txt" in out
    assert "2 of 4 objects in S3 complete in the log (50.00%)" in out
    assert "missing 1, missed deletes 1, differing 1" in out
    assert "complete in the log" not in err  # said once, in the table


def moto_notification_log(s3: "S3Client", log: SqlEventStore) -> None:
    """A log as moto's notifications build it: no version ids, no sequencers."""
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    records = []
    for key, body in (("a.txt", b"aaa"), ("b.txt", b"bbb")):
        put = s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        records.append(s3_record(BUCKET, key, size=len(body), etag=put["ETag"].strip('"')))
    records[1]["s3"]["object"]["size"] = 99  # a notification that disagrees on size
    log.append(new_events(records))


def test_without_version_ids_in_the_log_size_and_etag_are_compared(
    s3: "S3Client", sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    moto_notification_log(s3, open_store(sqlite_url))

    code, report, _ = reconcile(capsys, sqlite_url)

    assert code == 1
    assert kinds(report) == [("differs", "b.txt", "size")]
    assert report["summary"]["complete"] == 1


# S3 Inventory, as documented: manifest.json beside gzip CSV data files, every field quoted,
# no header row, the columns in fileSchema, keys URL-encoded.
ALL_VERSIONS_SCHEMA = (
    "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass"
)
CURRENT_SCHEMA = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass"


def inventory_rows(s3: "S3Client", *, all_versions: bool) -> list[list[str]]:
    listing = s3.list_object_versions(Bucket=BUCKET)
    rows = []
    entries = [(v, False) for v in listing.get("Versions", [])]
    entries += [(m, True) for m in listing.get("DeleteMarkers", [])]
    for entry, marker in entries:
        if not all_versions and (marker or not entry["IsLatest"]):
            continue
        when = entry["LastModified"].strftime("%Y-%m-%dT%H:%M:%S.000Z")
        size = "" if marker else str(entry["Size"])
        etag = "" if marker else entry["ETag"].strip('"')
        key = quote(entry["Key"], safe="/")
        if all_versions:
            rows.append([BUCKET, key, entry["VersionId"], str(entry["IsLatest"]).lower(),
                         str(marker).lower(), size, when, etag, "STANDARD"])  # fmt: skip
        else:
            rows.append([BUCKET, key, size, when, etag, "STANDARD"])
    return rows


def write_inventory(s3: "S3Client", rows: list[list[str]], schema: str) -> str:
    s3.create_bucket(Bucket=INVENTORY_BUCKET)
    base = f"inventory/{BUCKET}/daily/2026-11-29T01-00Z"
    files = []
    # Two data files, rows in no particular key order (S3 promises none)
    for number, part in enumerate((rows[::2][::-1], rows[1::2])):
        text = io.StringIO()
        csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(part)
        data = gzip.compress(text.getvalue().encode())
        key = f"inventory/{BUCKET}/daily/data/part-{number}.csv.gz"
        s3.put_object(Bucket=INVENTORY_BUCKET, Key=key, Body=data)
        files.append({"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()})
    manifest = {
        "sourceBucket": BUCKET,
        "destinationBucket": f"arn:aws:s3:::{INVENTORY_BUCKET}",
        "version": "2016-11-30",
        "creationTimestamp": "1796000400000",
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": files,
    }
    s3.put_object(Bucket=INVENTORY_BUCKET, Key=f"{base}/manifest.json", Body=json.dumps(manifest))
    return f"s3://{INVENTORY_BUCKET}/{base}/manifest.json"


def write_parquet_inventory(s3: "S3Client", *, all_versions: bool) -> str:
    """The report as S3 Inventory writes it in Parquet: snake-case columns, keys as they are
    (not URL-encoded), booleans and sizes typed; two files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    s3.create_bucket(Bucket=INVENTORY_BUCKET)
    base = f"inventory/{BUCKET}/daily/2026-11-29T01-00Z"
    listing = s3.list_object_versions(Bucket=BUCKET)
    entries = [(v, False) for v in listing.get("Versions", [])]
    entries += [(m, True) for m in listing.get("DeleteMarkers", [])]
    rows: list[dict[str, Any]] = []
    for entry, marker in entries:
        if not all_versions and (marker or not entry["IsLatest"]):
            continue
        row: dict[str, Any] = {
            "bucket": BUCKET, "key": entry["Key"],
            "size": None if marker else entry["Size"],
            "last_modified_date": entry["LastModified"],
            "e_tag": None if marker else entry["ETag"].strip('"'),
            "storage_class": "STANDARD",
        }  # fmt: skip
        if all_versions:
            row |= {"version_id": entry["VersionId"], "is_latest": entry["IsLatest"],
                    "is_delete_marker": marker}  # fmt: skip
        rows.append(row)
    files = []
    for number, part in enumerate((rows[::2][::-1], rows[1::2])):
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(part), sink)
        data = sink.getvalue()
        key = f"inventory/{BUCKET}/daily/data/part-{number}.parquet"
        s3.put_object(Bucket=INVENTORY_BUCKET, Key=key, Body=data)
        files.append({"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()})
    schema = (
        "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); ...}"
    )
    manifest = {
        "sourceBucket": BUCKET, "destinationBucket": f"arn:aws:s3:::{INVENTORY_BUCKET}",
        "version": "2016-11-30", "creationTimestamp": "1796000400000",
        "fileFormat": "Parquet", "fileSchema": schema, "files": files,
    }  # fmt: skip
    s3.put_object(Bucket=INVENTORY_BUCKET, Key=f"{base}/manifest.json", Body=json.dumps(manifest))
    return f"s3://{INVENTORY_BUCKET}/{base}/manifest.json"


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
@pytest.mark.parametrize("all_versions", [True, False], ids=["all-versions", "current"])
def test_an_inventory_report_gives_the_same_answer(
    s3: "S3Client",
    backend_url: str,
    capsys: pytest.CaptureFixture[str],
    all_versions: bool,
    file_format: str,
) -> None:
    # Given the same bucket and log, and an inventory report of the bucket
    log = open_store(backend_url)
    scenario(s3, log)
    schema = ALL_VERSIONS_SCHEMA if all_versions else CURRENT_SCHEMA
    if file_format == "csv":
        manifest = write_inventory(s3, inventory_rows(s3, all_versions=all_versions), schema)
    else:
        manifest = write_parquet_inventory(s3, all_versions=all_versions)

    # When it is reconciled from the report
    code, report, _ = reconcile(capsys, backend_url, "--inventory", manifest)

    # Then the report names the same differences (a current-only report has no version ids,
    # so the overwrite shows in size and ETag only)
    assert code == 1
    expected_d = "version_id,size,etag" if all_versions else "size,etag"
    assert kinds(report) == [*EXPECTED[:2], ("differs", "logs/d.txt", expected_d)]
    assert report["summary"]["completeness"] == 0.5
    assert report["source"] == f"inventory {manifest}"

    # and --repair back-fills from the versions, after which the report is complete
    code, report, err = reconcile(capsys, backend_url, "--inventory", manifest, "--repair")
    assert code == 0, err
    assert report["repair"]["backfill"]["appended"] == 3
    assert report["differences"] == []
    assert report["summary"]["completeness"] == 1.0
    assert log.verify().ok


def test_an_inventory_file_that_does_not_match_its_checksum_is_an_error(
    s3: "S3Client", sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario(s3, open_store(sqlite_url))
    manifest = write_inventory(s3, inventory_rows(s3, all_versions=True), ALL_VERSIONS_SCHEMA)
    key = f"inventory/{BUCKET}/daily/data/part-1.csv.gz"
    s3.put_object(Bucket=INVENTORY_BUCKET, Key=key, Body=gzip.compress(b'"x","y"\n'))

    code = cli.main(["--db", sqlite_url, "reconcile", f"s3://{BUCKET}", "--inventory", manifest])

    assert code == 2
    assert "part-1.csv.gz" in capsys.readouterr().err


def test_an_orc_inventory_or_another_buckets_is_refused(
    s3: "S3Client", sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario(s3, open_store(sqlite_url))
    s3.create_bucket(Bucket=INVENTORY_BUCKET)
    for name, manifest in {
        "orc": {"sourceBucket": BUCKET, "fileFormat": "ORC", "fileSchema": "", "files": []},
        "other": {"sourceBucket": "other", "fileFormat": "CSV", "fileSchema": "", "files": []},
    }.items():
        s3.put_object(Bucket=INVENTORY_BUCKET, Key=name, Body=json.dumps(manifest))
        code = cli.main(
            ["--db", sqlite_url, "reconcile", f"s3://{BUCKET}", "--inventory",
             f"s3://{INVENTORY_BUCKET}/{name}"]
        )  # fmt: skip
        assert code == 2
    err = capsys.readouterr().err
    assert "'ORC' is not supported" in err
    assert "of bucket 'other'" in err
