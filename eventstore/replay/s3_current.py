"""What S3 holds now, as a key-ordered stream of live objects for reconciliation: from
ListObjectVersions (paginated), or from an S3 Inventory report (manifest.json and its
gzip-compressed CSV or Parquet files, as S3 Inventory writes them)."""

import csv
import gzip
import hashlib
import io
import json
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from eventstore.errors import ConfigurationError
from eventstore.progress import Progress
from eventstore.replay.aws import parse_s3_location
from eventstore.replay.base import ReplaySourceError, source_errors
from eventstore.replay.reconcile import LiveObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SORT_BATCH = 5_000  # inventory rows inserted into the on-disk sort at a time
INVENTORY_FORMATS = ("CSV", "PARQUET")
# Parquet reports name their columns in snake case; the rows are read under the CSV names.
_PARQUET_COLUMNS = {
    "key": "Key", "version_id": "VersionId", "is_latest": "IsLatest",
    "is_delete_marker": "IsDeleteMarker", "size": "Size", "e_tag": "ETag",
}  # fmt: skip


def live_objects_from_listing(
    s3_client: "S3Client",
    bucket: str,
    prefix: str = "",
    *,
    page_size: int = 1000,
    progress: Progress | None = None,
) -> Iterator[LiveObject]:
    """The current version of every key under `prefix` that exists, in key order, one page
    of ListObjectVersions in memory at a time.

    S3 marks exactly one entry per key `IsLatest`; when that entry is a delete marker the
    key does not exist now and is left out. Pages come in key order, so the latest versions
    of each page, sorted, continue the stream of the page before."""
    paginator = s3_client.get_paginator("list_object_versions")
    pages = paginator.paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
    )
    with source_errors(f"listing the versions of s3://{bucket}/{prefix}"):
        for page in pages:
            versions = page.get("Versions", [])
            if progress is not None:
                progress.advance(len(versions) + len(page.get("DeleteMarkers", [])))
            latest = [
                LiveObject.of(v["Key"], v.get("VersionId"), v.get("Size"), v.get("ETag"))
                for v in versions
                if v.get("IsLatest")
            ]
            yield from sorted(latest, key=lambda o: o.key)


def live_objects_from_inventory(
    s3_client: "S3Client",
    manifest_uri: str,
    bucket: str,
    prefix: str = "",
    *,
    progress: Progress | None = None,
) -> Iterator[LiveObject]:
    """The live current objects an S3 Inventory report lists under `prefix`, in key order.

    Reads the report's manifest.json, checks it is for `bucket`, then each data file it names
    (gzip CSV, every field quoted, no header, the columns of `fileSchema`, keys URL-encoded;
    or Parquet, snake-case columns, keys as they are),
    checking each file's MD5 against the manifest. A report of all versions keeps the rows
    marked IsLatest that are not delete markers; a report of current versions lists only
    those. S3 does not promise an order across or within the files, so the rows are sorted
    on disk (a temporary SQLite file) to keep memory bounded.
    """
    manifest_bucket, manifest_key = parse_s3_location(manifest_uri)
    manifest = _read_manifest(s3_client, manifest_bucket, manifest_key)
    source = manifest.get("sourceBucket")
    if source != bucket:
        raise ConfigurationError(
            f"the inventory at {manifest_uri} is of bucket {source!r}, not {bucket!r}"
        )
    file_format = str(manifest.get("fileFormat", "")).upper()
    if file_format not in INVENTORY_FORMATS:
        raise ConfigurationError(
            f"inventory format {file_format!r} is not supported: configure the inventory "
            "report as CSV or Parquet (ORC reports are not read)"
        )
    parquet = file_format == "PARQUET"
    columns = [name.strip() for name in str(manifest.get("fileSchema", "")).split(",")]
    if not parquet and "Key" not in columns:
        raise ReplaySourceError(f"{manifest_uri}: fileSchema has no Key column: {columns}")
    data_bucket = _bucket_of_arn(str(manifest.get("destinationBucket") or manifest_bucket))
    files: list[Mapping[str, Any]] = list(manifest.get("files", []))
    with tempfile.TemporaryDirectory(prefix="eventstore-inventory-") as workdir:
        database = sqlite3.connect(Path(workdir) / "sort.db")
        try:
            database.execute(
                "CREATE TABLE live (key TEXT PRIMARY KEY, version_id TEXT, size INTEGER,"
                " etag TEXT) WITHOUT ROWID"
            )
            for item in files:
                if parquet:
                    rows = _parquet_rows(s3_client, data_bucket, item, Path(workdir))
                else:
                    rows = _inventory_rows(s3_client, data_bucket, item, columns)
                _insert_live(database, rows, prefix, progress, encoded_keys=not parquet)
            # SQLite's BINARY collation compares UTF-8 bytes: S3's key order.
            cursor = database.execute("SELECT key, version_id, size, etag FROM live ORDER BY key")
            for key, version_id, size, etag in cursor:
                yield LiveObject.of(key, version_id, size, etag)
        finally:
            database.close()


def _read_manifest(s3_client: "S3Client", bucket: str, key: str) -> Mapping[str, Any]:
    with source_errors(f"reading the inventory manifest s3://{bucket}/{key}"):
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        manifest = json.loads(body)
    except ValueError as error:
        raise ReplaySourceError(f"s3://{bucket}/{key} is not JSON: {error}") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise ReplaySourceError(f"s3://{bucket}/{key} is not an S3 Inventory manifest")
    return manifest


def _bucket_of_arn(destination: str) -> str:
    # The manifest names its destination as an ARN: arn:aws:s3:::bucket-name.
    return destination.rsplit(":", 1)[-1] if destination.startswith("arn:") else destination


class _Md5Reader(io.RawIOBase):
    """A readable stream that hashes what passes through, to check a file against its
    manifest entry without holding it."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.md5 = hashlib.md5(usedforsecurity=False)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._stream.read(len(buffer))
        self.md5.update(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _inventory_rows(
    s3_client: "S3Client", bucket: str, item: Mapping[str, Any], columns: list[str]
) -> Iterator[dict[str, str]]:
    key = str(item["key"])
    what = f"reading the inventory file s3://{bucket}/{key}"
    with source_errors(what):
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"]
        raw = _Md5Reader(body)
        with io.TextIOWrapper(
            gzip.GzipFile(fileobj=io.BufferedReader(raw)), encoding="utf-8", newline=""
        ) as text:
            for number, row in enumerate(csv.reader(text), start=1):
                if len(row) != len(columns):
                    raise ReplaySourceError(
                        f"{what}: row {number} has {len(row)} fields, the schema {len(columns)}"
                    )
                yield dict(zip(columns, row, strict=True))
    expected = str(item.get("MD5checksum") or "").lower()
    if expected and raw.md5.hexdigest() != expected:
        raise ReplaySourceError(f"{what}: MD5 {raw.md5.hexdigest()}, the manifest says {expected}")


def _parquet_rows(
    s3_client: "S3Client", bucket: str, item: Mapping[str, Any], workdir: Path
) -> Iterator[dict[str, str]]:
    """The rows of one Parquet inventory file, under the CSV report's column names and
    spelling ("true"/"false"). The file is copied to disk first (Parquet is read from its
    end) while its MD5 is checked, then read a row group at a time."""
    try:
        import pyarrow.parquet as pq
    except ImportError as error:  # pragma: no cover - the `lake` extra is part of ./dev's set
        raise ConfigurationError(
            "reading a Parquet inventory needs pyarrow: pip install 's3-eventstore[lake]'"
        ) from error
    key = str(item["key"])
    what = f"reading the inventory file s3://{bucket}/{key}"
    local = workdir / "part.parquet"
    with source_errors(what):
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"]
        digest = hashlib.md5(usedforsecurity=False)
        with local.open("wb") as copy:
            for chunk in iter(lambda: body.read(1 << 20), b""):
                digest.update(chunk)
                copy.write(chunk)
    expected = str(item.get("MD5checksum") or "").lower()
    if expected and digest.hexdigest() != expected:
        raise ReplaySourceError(f"{what}: MD5 {digest.hexdigest()}, the manifest says {expected}")
    try:
        parquet = pq.ParquetFile(local)
    except Exception as error:  # pyarrow raises its own ArrowInvalid for a bad file
        raise ReplaySourceError(f"{what}: not a Parquet file: {error}") from error
    present = [name for name in _PARQUET_COLUMNS if name in parquet.schema_arrow.names]
    if "key" not in present:
        raise ReplaySourceError(f"{what}: no key column in {parquet.schema_arrow.names}")
    for batch in parquet.iter_batches(batch_size=SORT_BATCH, columns=present):
        for row in batch.to_pylist():
            yield {
                _PARQUET_COLUMNS[name]: _csv_spelling(value)
                for name, value in row.items()
                if value is not None
            }


def _csv_spelling(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _insert_live(
    database: sqlite3.Connection,
    rows: Iterable[dict[str, str]],
    prefix: str,
    progress: Progress | None,
    *,
    encoded_keys: bool = True,
) -> None:
    batch: list[tuple[str, str | None, int | None, str | None]] = []
    for row in rows:
        if progress is not None:
            progress.advance()
        if row.get("IsLatest", "true") != "true" or row.get("IsDeleteMarker", "false") == "true":
            continue
        # CSV inventories URL-encode keys (a literal '+' as %2B, so unquote_plus is exact
        # whether a space was written as '+' or %20); Parquet reports hold them as they are.
        key = unquote_plus(row["Key"]) if encoded_keys else row["Key"]
        if not key.startswith(prefix):
            continue
        size = row.get("Size")
        batch.append((key, row.get("VersionId") or None, int(size) if size else None,
                      row.get("ETag") or None))  # fmt: skip
        if len(batch) >= SORT_BATCH:
            _flush(database, batch)
    _flush(database, batch)


def _flush(
    database: sqlite3.Connection, batch: list[tuple[str, str | None, int | None, str | None]]
) -> None:
    if batch:
        # A key listed twice (a report regenerated mid-write) keeps its last row.
        database.executemany("INSERT OR REPLACE INTO live VALUES (?, ?, ?, ?)", batch)
        database.commit()
        batch.clear()
