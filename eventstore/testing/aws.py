"""S3 and SQS in moto for a test: a versioned bucket, boto3 clients, and uploads that answer
with the S3 event record S3 would send for them (the real version id, ETag and size).

moto is the test's dependency, not the library's: it is imported when a test asks for it,
and its absence fails that test with the command that installs it.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from eventstore.errors import ConfigurationError
from eventstore.testing.events import DEFAULT_BUCKET, REGION, s3_record

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sqs.client import SQSClient

MOTO_MISSING = "the moto_s3 fixture needs moto, a test-time dependency: pip install 'moto[s3,sqs]'"

# Credentials that can reach nothing but moto, whatever the machine has configured.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
UNSET_VARIABLES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL")


class MotoMissingError(ConfigurationError):
    """moto is not installed."""


def mock_aws() -> Any:
    """moto's mock of every AWS service (not yet started); MotoMissingError without moto."""
    try:
        from moto import mock_aws as moto_mock_aws
    except ImportError as error:
        raise MotoMissingError(f"{MOTO_MISSING} ({error})") from error
    return moto_mock_aws()


@dataclass(frozen=True)
class MotoS3:
    """A versioned bucket in moto, and clients for S3 and SQS there."""

    client: "S3Client"
    sqs: "SQSClient"
    bucket: str = DEFAULT_BUCKET
    region: str = REGION

    def create_bucket(self, name: str, *, versioned: bool = True) -> str:
        if self.region == "us-east-1":  # the one region S3 refuses a location constraint for
            self.client.create_bucket(Bucket=name)
        else:
            self.client.create_bucket(
                Bucket=name,
                CreateBucketConfiguration={"LocationConstraint": cast(Any, self.region)},
            )
        if versioned:
            self.client.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": "Enabled"}
            )
        return name

    def put(
        self,
        key: str,
        body: bytes | str,
        *,
        bucket: str | None = None,
        event_name: str = "ObjectCreated:Put",
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """Upload an object; the S3 event record of the upload. A str body is UTF-8."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        where = bucket or self.bucket
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        response = self.client.put_object(Bucket=where, Key=key, Body=data, **extra)
        return s3_record(
            key,
            bucket=where,
            event_name=event_name,
            body=data,
            etag=response["ETag"].strip('"'),
            version_id=response.get("VersionId"),
            region=self.region,
        )

    def delete(self, key: str, *, bucket: str | None = None) -> dict[str, Any]:
        """Delete an object (a delete marker in a versioned bucket); the S3 event record."""
        where = bucket or self.bucket
        response = self.client.delete_object(Bucket=where, Key=key)
        marker = bool(response.get("DeleteMarker"))
        return s3_record(
            key,
            bucket=where,
            event_name="ObjectRemoved:DeleteMarkerCreated" if marker else "ObjectRemoved:Delete",
            version_id=response.get("VersionId"),
            region=self.region,
        )

    def read(self, key: str, *, bucket: str | None = None, version_id: str | None = None) -> bytes:
        """An object's bytes (its current version, or `version_id`)."""
        extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        response = self.client.get_object(Bucket=bucket or self.bucket, Key=key, **extra)
        data: bytes = response["Body"].read()
        return data

    def metadata(self, key: str, *, bucket: str | None = None) -> dict[str, str]:
        """An object's user metadata (reactors' outputs name their cause there)."""
        return dict(self.client.head_object(Bucket=bucket or self.bucket, Key=key)["Metadata"])

    def keys(self, prefix: str = "", *, bucket: str | None = None) -> list[str]:
        """The keys that exist under `prefix`, in S3's order."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket or self.bucket, Prefix=prefix
        )
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def create_queue(self, name: str) -> str:
        """An SQS queue for a reactor to send to; its URL."""
        return self.sqs.create_queue(QueueName=name)["QueueUrl"]

    def messages(self, queue_url: str) -> list[str]:
        """The bodies of the messages waiting in a queue (received and deleted)."""
        bodies: list[str] = []
        while True:
            received = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
            batch = received.get("Messages", [])
            if not batch:
                return bodies
            for message in batch:
                bodies.append(message["Body"])
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@contextmanager
def moto_s3_context(
    bucket: str = DEFAULT_BUCKET, *, region: str = REGION, mock: Any | None = None
) -> Iterator[MotoS3]:
    """moto's AWS (`mock`, else a new `mock_aws()`) for the duration, with a versioned
    `bucket`. Set the credentials in FAKE_CREDENTIALS first (the pytest fixture does), so
    that no client could reach a real account."""
    import boto3  # the clients are made here, never when the module is imported

    with mock if mock is not None else mock_aws():
        s3 = boto3.client("s3", region_name=region)
        sqs = boto3.client("sqs", region_name=region)
        aws = MotoS3(s3, sqs, bucket, region)
        aws.create_bucket(bucket)
        yield aws
