"""The reactors' object-store port: the in-memory fake and S3 (through moto) pass the same
cases, so unit tests on the fake cannot drift from what S3 does in the ways reactors rely on."""

import hashlib
import io
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from eventstore.reactors.aws import S3ObjectStore
from eventstore.reactors.base import ObjectStore
from tests.reactor_fakes import InMemoryObjectStore

BUCKET, OTHER = "ports-bucket", "ports-other"


@pytest.fixture(params=["in-memory", "s3"])
def objects(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ObjectStore]:
    if request.param == "in-memory":
        yield InMemoryObjectStore()
        return
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in (BUCKET, OTHER):
            client.create_bucket(Bucket=bucket)
            client.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
            )
        yield S3ObjectStore(client)


def test_each_put_is_a_version_read_back_by_its_id(objects: ObjectStore) -> None:
    first = objects.put(BUCKET, "k.txt", b"one")
    second = objects.put(BUCKET, "k.txt", io.BytesIO(b"second"), content_type="text/plain")

    assert first.version_id and second.version_id and first.version_id != second.version_id
    assert (first.size, second.size) == (3, 6)
    assert first.etag == hashlib.md5(b"one").hexdigest()  # bare, as notifications carry it
    with objects.open(BUCKET, "k.txt", first.version_id) as body:
        assert body.read() == b"one"
    with objects.open(BUCKET, "k.txt") as body:
        assert body.read() == b"second"


def test_a_copy_of_a_version_has_its_content_and_etag(objects: ObjectStore) -> None:
    old = objects.put(BUCKET, "src.csv", b"a,b\n")
    objects.put(BUCKET, "src.csv", b"changed\n")

    copied = objects.copy(BUCKET, "src.csv", old.version_id, OTHER, "dst.csv")

    assert (copied.bucket, copied.key, copied.etag) == (OTHER, "dst.csv", old.etag)
    with objects.open(OTHER, "dst.csv", copied.version_id) as body:
        assert body.read() == b"a,b\n"


def test_a_missing_object_raises(objects: ObjectStore) -> None:
    with pytest.raises(Exception, match="NoSuchKey"), objects.open(BUCKET, "absent"):
        pass
