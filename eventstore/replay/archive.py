"""Re-ingest the raw-notification archive that the archive consumer writes.

Layout: `s3://BUCKET/{prefix}YYYY/MM/DD/HH/{sqsMessageId}.json` (prefix `raw/` by default),
the body being the SQS message body verbatim and the hour that of the message's
SentTimestamp in UTC. Keys sort in time order, hour by hour.
"""

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from eventstore.core.events import Source
from eventstore.core.parsing import MAX_MESSAGE_BYTES, Delivery, parse_sqs_body
from eventstore.errors import MalformedMessageError
from eventstore.ingest import IngestSummary, append_deliveries
from eventstore.progress import Progress
from eventstore.replay.base import ReplaySummary, source_errors
from eventstore.store.base import EventLog

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_PREFIX = "raw/"
_HOUR = timedelta(hours=1)
_LAYOUT = re.compile(r"^(\d{4})/(\d{2})/(\d{2})/(\d{2})/([^/]+)\.json$")


def archive_key(message_id: str, sent_at: datetime, prefix: str = DEFAULT_PREFIX) -> str:
    """Where the archive keeps one SQS message body, partitioned by the hour it was sent."""
    hour = sent_at.astimezone(UTC)
    return f"{prefix}{hour:%Y/%m/%d/%H}/{message_id}.json"


def parse_archive_key(key: str, prefix: str = DEFAULT_PREFIX) -> tuple[datetime, str]:
    """(start of the hour partition, SQS message id) of an archived key; ValueError if the key
    does not follow the layout."""
    if not key.startswith(prefix):
        raise ValueError(f"key is outside the archive prefix {prefix!r}")
    match = _LAYOUT.match(key[len(prefix) :])
    if match is None:
        raise ValueError("key does not follow {prefix}YYYY/MM/DD/HH/{messageId}.json")
    year, month, day, hour, message_id = match.groups()
    try:
        start = datetime(int(year), int(month), int(day), int(hour), tzinfo=UTC)
    except ValueError as error:
        raise ValueError(f"key's date partition is not a date: {error}") from None
    return start, message_id


@dataclass(frozen=True, slots=True)
class _Listed:
    key: str
    size: int
    message_id: str


@dataclass(frozen=True, slots=True)
class _Fetched:
    listed: _Listed
    body: str | None
    error: str | None


def replay_from_archive(
    log: EventLog,
    s3_client: "S3Client",
    bucket: str,
    prefix: str = DEFAULT_PREFIX,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    correlation_id: str | None = None,
    workers: int = 8,
    progress: Progress | None = None,
) -> ReplaySummary:
    """Re-ingest every archived message under `prefix`, in key (= time) order.

    `since` / `until` select whole hour partitions: every partition that overlaps
    [since, until). Each object is parsed as the SQS body it was, its file name giving the
    message id, so every event gets the id it got when first ingested and a second replay
    stores nothing new. The events are marked `Source.ARCHIVE`. A malformed or unreadable
    object is reported with its key and counted as failed; the replay goes on. Objects are
    read `workers` at a time; each listed page of up to 1000 is appended in transactions of
    at most BATCH_EVENTS events.
    """
    summary = ReplaySummary("archive")
    correlation = correlation_id or f"replay:archive:s3://{bucket}/{prefix}"
    with (
        source_errors(f"archive s3://{bucket}/{prefix}"),
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
    ):
        for page in _list_pages(
            s3_client, bucket=bucket, prefix=prefix, since=since, until=until, summary=summary
        ):
            deliveries: list[Delivery] = []
            ingest = IngestSummary()
            for fetched in pool.map(partial(_fetch, s3_client, bucket), page):
                delivery = _parse(fetched, summary)
                if delivery is not None:
                    ingest.add_delivery(delivery)
                    deliveries.append(delivery)
            append_deliveries(log, deliveries, ingest, correlation_id=correlation)
            summary.absorb(ingest)
            summary.read += len(page)
            if progress is not None:
                progress.advance(len(page))
    return summary


def _list_pages(
    s3_client: "S3Client",
    *,
    bucket: str,
    prefix: str,
    since: datetime | None,
    until: datetime | None,
    summary: ReplaySummary,
) -> Iterator[list[_Listed]]:
    """Pages of archived objects in the time range; keys outside the layout are reported."""
    paginator = s3_client.get_paginator("list_objects_v2")
    if since is None:
        pages = paginator.paginate(Bucket=bucket, Prefix=prefix)
    else:
        # Sorts after every key of an earlier hour and before every key of since's hour.
        start_after = f"{prefix}{since.astimezone(UTC):%Y/%m/%d/%H}/"
        pages = paginator.paginate(Bucket=bucket, Prefix=prefix, StartAfter=start_after)
    for response in pages:
        page: list[_Listed] = []
        for item in response.get("Contents", []):
            key = item["Key"]
            if key.endswith("/"):  # a console-made "folder", not a message
                continue
            try:
                hour, message_id = parse_archive_key(key, prefix)
            except ValueError as error:
                summary.read += 1
                summary.fail(key, str(error))
                continue
            if until is not None and hour >= until:
                if page:
                    yield page
                return
            if since is not None and hour + _HOUR <= since:
                continue
            page.append(_Listed(key, item.get("Size", 0), message_id))
        if page:
            yield page


def _fetch(s3_client: "S3Client", bucket: str, listed: _Listed) -> _Fetched:
    if listed.size > MAX_MESSAGE_BYTES:
        return _Fetched(listed, None, f"object is {listed.size} bytes, larger than any SQS message")
    try:
        response = s3_client.get_object(Bucket=bucket, Key=listed.key)
        data = response["Body"].read()
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "error")
        return _Fetched(listed, None, f"cannot read the object ({code}): {error}")
    try:
        return _Fetched(listed, data.decode("utf-8"), None)
    except UnicodeDecodeError as error:
        reason = f"object is not UTF-8 text ({error.reason} at byte {error.start})"
        return _Fetched(listed, None, reason)


def _parse(fetched: _Fetched, summary: ReplaySummary) -> Delivery | None:
    key = fetched.listed.key
    if fetched.body is None:
        summary.fail(key, fetched.error or "unreadable")
        return None
    try:
        delivery = parse_sqs_body(fetched.body, message_id=fetched.listed.message_id)
    except MalformedMessageError as error:
        summary.fail(key, error.reason)
        return None
    events = tuple(replace(event, source=Source.ARCHIVE) for event in delivery.events)
    return Delivery(delivery.message_id, events, delivery.skipped)
