"""boto3 clients for the replay sources, made on demand (never at import) for a region and an
optional endpoint such as a moto server, MinIO or LocalStack."""

import re
from typing import TYPE_CHECKING, Literal, overload

import boto3
from botocore.config import Config

from eventstore.errors import ConfigurationError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

DEFAULT_REGION = "us-east-1"
_QUEUE_URL_REGION = re.compile(r"^https?://sqs[.-]([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/")


@overload
def make_client(
    service: Literal["s3"], *, endpoint_url: str | None = None, region: str | None = None
) -> "S3Client": ...


@overload
def make_client(
    service: Literal["sqs"], *, endpoint_url: str | None = None, region: str | None = None
) -> "SQSClient": ...


def make_client(
    service: Literal["s3", "sqs"], *, endpoint_url: str | None = None, region: str | None = None
) -> "S3Client | SQSClient":
    """A client from the default credential chain.

    The region is `region`, else the one configured for boto3, else us-east-1. With an
    endpoint, S3 uses path-style addressing, which every S3-compatible server understands.
    """
    session = boto3.session.Session()
    region_name = region or session.region_name or DEFAULT_REGION
    config = Config(retries={"mode": "standard", "max_attempts": 5})
    if endpoint_url and service == "s3":
        config = config.merge(Config(s3={"addressing_style": "path"}))
    if service == "s3":
        return session.client(
            "s3", endpoint_url=endpoint_url, region_name=region_name, config=config
        )
    return session.client("sqs", endpoint_url=endpoint_url, region_name=region_name, config=config)


def queue_region(queue_url: str) -> str | None:
    """The region named in an AWS queue URL (https://sqs.REGION.amazonaws.com/...), if any."""
    match = _QUEUE_URL_REGION.match(queue_url)
    return match.group(1) if match else None


def parse_s3_location(uri: str) -> tuple[str, str]:
    """`s3://BUCKET[/PREFIX]` as (bucket, prefix); the prefix is taken as typed, maybe empty."""
    if not uri.startswith("s3://"):
        raise ConfigurationError(f"not an s3://BUCKET[/PREFIX] address: {uri!r}")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigurationError(f"s3:// address has no bucket: {uri!r}")
    return bucket, prefix
