"""The reactors' ports on AWS: objects in S3 and messages to SQS, through boto3 clients."""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from eventstore.reactors.base import Output

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sqs.client import SQSClient


def _etag(value: str | None) -> str | None:
    """S3 answers ETags quoted; its notifications carry them bare, as the log keeps them."""
    return value.strip('"') if value else None


class S3ObjectStore:
    """Objects read as streams and written through one S3 client."""

    def __init__(self, client: "S3Client") -> None:
        self.client = client

    @contextmanager
    def open(self, bucket: str, key: str, version_id: str | None = None) -> Iterator[BinaryIO]:
        extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        response = self.client.get_object(Bucket=bucket, Key=key, **extra)
        body = response["Body"]
        try:
            yield cast(BinaryIO, body)
        finally:
            body.close()

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes | BinaryIO,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Output:
        extra: dict[str, Any] = {}
        if content_type:
            extra["ContentType"] = content_type
        if metadata:
            extra["Metadata"] = dict(metadata)
        if isinstance(body, bytes):
            size: int | None = len(body)
        else:
            start = body.tell()
            size = body.seek(0, 2) - start
            body.seek(start)
        response = self.client.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        return Output(bucket, key, response.get("VersionId"), _etag(response.get("ETag")), size)

    def copy(
        self,
        source_bucket: str,
        source_key: str,
        source_version_id: str | None,
        bucket: str,
        key: str,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> Output:
        source: dict[str, str] = {"Bucket": source_bucket, "Key": source_key}
        if source_version_id:
            source["VersionId"] = source_version_id
        extra: dict[str, Any] = {}
        if metadata is not None:
            extra = {"Metadata": dict(metadata), "MetadataDirective": "REPLACE"}
        response = self.client.copy_object(
            Bucket=bucket, Key=key, CopySource=cast(Any, source), **extra
        )
        etag = _etag(response.get("CopyObjectResult", {}).get("ETag"))
        return Output(bucket, key, response.get("VersionId"), etag, None)


class SqsMessageSender:
    """Messages sent through one SQS client."""

    def __init__(self, client: "SQSClient") -> None:
        self.client = client

    def send(self, queue_url: str, body: str) -> str:
        return self.client.send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"]
