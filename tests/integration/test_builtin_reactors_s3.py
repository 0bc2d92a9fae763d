"""The built-in pipeline reactors against S3 and SQS (moto, a versioned bucket), through the
boto3 ports, with their outcomes recorded in the log on each backend."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import boto3
import pytest
from moto import mock_aws

from eventstore.core.events import NewEvent
from eventstore.reactors import Reactor
from eventstore.reactors.aws import S3ObjectStore, SqsMessageSender
from eventstore.reactors.builtin import CopyToBucketReactor, CsvToJsonReactor, ExtractTextReactor
from eventstore.reactors.builtin.copy_to_bucket import TARGET_BUCKET_VARIABLE
from eventstore.reactors.builtin.csv_to_json import OUTPUT_QUEUE_VARIABLE
from eventstore.reactors.outcomes import OutcomeKind, read_outcome
from eventstore.reactors.runner import ReactorRunner
from eventstore.store.sql import SqlEventStore
from tests.helpers import make_event
from tests.integration.replay_support import REGION, fake_aws_credentials

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

BUCKET = "acme-uploads"
TARGET = "acme-copies"


@dataclass
class Aws:
    s3: "S3Client"
    sqs: "SQSClient"
    queue_url: str

    def upload(self, key: str, body: bytes, seconds: float = 0) -> NewEvent:
        """Put `body` and return the S3 event of the new version, as S3 would describe it."""
        put = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return make_event(
            "ObjectCreated:Put", bucket=BUCKET, key=key, version_id=put["VersionId"],
            sequencer=f"{int(seconds * 1000):012X}", seconds=seconds, size=len(body),
            etag=put["ETag"].strip('"'),
        )  # fmt: skip

    def body(self, bucket: str, key: str, version_id: str | None = None) -> bytes:
        extra = {"VersionId": version_id} if version_id else {}
        return self.s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()  # type: ignore[arg-type]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        for bucket in (BUCKET, TARGET):
            s3.create_bucket(Bucket=bucket)  # us-east-1: no location constraint
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        queue_url = sqs.create_queue(QueueName="csv-converted")["QueueUrl"]
        monkeypatch.setenv(OUTPUT_QUEUE_VARIABLE, queue_url)
        monkeypatch.setenv(TARGET_BUCKET_VARIABLE, TARGET)
        yield Aws(s3, sqs, queue_url)


def run(reactor: Reactor, log: SqlEventStore, aws: Aws, *events: NewEvent) -> ReactorRunner:
    """Append the uploads' events, react to each, record the outcomes; every reaction ok."""
    log.append(events)
    runner = ReactorRunner(reactor, log, S3ObjectStore(aws.s3), SqsMessageSender(aws.sqs))
    reactions = [runner.react(e, delivery="m1", attempt=1) for e in runner.unprocessed(events)]
    assert [r.error for r in reactions] == [None] * len(events)
    runner.record(reactions)
    return runner


def produced(log: SqlEventStore) -> list[dict[str, object]]:
    from eventstore.store.base import EventQuery

    found = log.select_events(EventQuery(types=(OutcomeKind.PRODUCED,)))
    return [
        {"bucket": o.bucket, "key": o.key, "version_id": o.version_id, "etag": o.etag,
         "cause_key": o.cause_key, "details": dict(o.details)}
        for o in map(read_outcome, found)
    ]  # fmt: skip


def test_csv_to_json_writes_to_s3_and_tells_the_output_queue(
    backend_log: SqlEventStore, aws: Aws
) -> None:
    upload = aws.upload("uploads/q1/sales.csv", "région;total\nÎle-de-France;12,5\n".encode())

    run(CsvToJsonReactor(), backend_log, aws, upload)

    head = aws.s3.head_object(Bucket=BUCKET, Key="converted/q1/sales.jsonl")
    assert head["ContentType"] == "application/x-ndjson"
    assert aws.body(BUCKET, "converted/q1/sales.jsonl").decode() == (
        '{"région": "Île-de-France", "total": "12,5"}\n'
    )
    (output,) = produced(backend_log)
    assert (output["version_id"], output["etag"]) == (head["VersionId"], head["ETag"].strip('"'))
    (message,) = aws.sqs.receive_message(QueueUrl=aws.queue_url)["Messages"]
    described = json.loads(message["Body"])
    assert described["source"] == {
        "bucket": BUCKET,
        "key": "uploads/q1/sales.csv",
        "versionId": upload.version_id,
    }
    assert described["output"]["versionId"] == head["VersionId"]
    assert (described["rows"], described["fields"]) == (1, ["région", "total"])


def test_extract_text_streams_the_s3_body_and_records_its_text(
    backend_log: SqlEventStore, aws: Aws
) -> None:
    body = ("première ligne\n" + "mot " * 40_000).encode()  # several reads of the body
    upload = aws.upload("uploads/notes.txt", body)

    run(ExtractTextReactor(), backend_log, aws, upload)

    assert aws.body(BUCKET, "extracted/notes.txt.txt") == body
    (output,) = produced(backend_log)
    details = output["details"]
    assert isinstance(details, dict)
    assert details["truncated"] is True
    assert details["text"] == body.decode()[:32_768]
    assert output["cause_key"] == "uploads/notes.txt"


def test_copy_to_bucket_copies_the_events_version_server_side(
    backend_log: SqlEventStore, aws: Aws
) -> None:
    first = aws.upload("uploads/photo.jpg", b"\xff\xd8 first version")
    aws.upload("uploads/photo.jpg", b"\xff\xd8 second version", seconds=1)

    run(CopyToBucketReactor(), backend_log, aws, first)

    copy = aws.s3.head_object(Bucket=TARGET, Key="uploads/photo.jpg")
    assert aws.body(TARGET, "uploads/photo.jpg") == b"\xff\xd8 first version"
    assert copy["ETag"].strip('"') == first.etag  # the same bytes, never downloaded
    assert copy["Metadata"]["eventstore-cause"] == first.event_id
    (output,) = produced(backend_log)
    assert (output["bucket"], output["version_id"]) == (TARGET, copy["VersionId"])
    assert output["etag"] == first.etag


class Gzipped(CopyToBucketReactor):
    """A transform that streams: the copy is the object gzip-compressed."""

    name = "copy-gzipped"

    def transform(self, event: NewEvent, body: BinaryIO) -> BinaryIO:
        import gzip
        import shutil
        import tempfile

        out = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115 (returned)
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as compressed:
            shutil.copyfileobj(body, compressed)
        out.seek(0)
        return out  # type: ignore[return-value]


def test_a_transform_subclass_writes_its_own_bytes(backend_log: SqlEventStore, aws: Aws) -> None:
    import gzip

    upload = aws.upload("uploads/log.txt", b"line\n" * 10_000)

    run(Gzipped(), backend_log, aws, upload)

    copy = aws.body(TARGET, "uploads/log.txt")
    assert gzip.decompress(copy) == b"line\n" * 10_000
    assert len(copy) < 1000
    (output,) = produced(backend_log)
    assert output["etag"] != upload.etag
