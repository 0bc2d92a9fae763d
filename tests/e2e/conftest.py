"""End-to-end fixtures: one moto server on 127.0.0.1 for the session (reset before each test,
stopped at the end), the fan-out created from infra/template.yaml, and the environment a
Lambda consumer would see."""

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from eventstore.local.embedded import embedded_aws
from eventstore.local.fanout import MOTO_SKIPPED_TYPES, Fanout, create_fanout
from eventstore.store.sql import SqlEventStore, open_store

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log in test output

REGION = "us-east-1"
MAX_RECEIVE_COUNT = 2  # small, so a poison message reaches its dead-letter queue quickly


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with embedded_aws() as endpoint:
        yield endpoint


@dataclass
class Stack:
    """The fan-out of one test, with clients on the moto server and the test's event log."""

    fanout: Fanout
    s3: Any
    sqs: Any
    db_url: str
    endpoint_url: str

    @property
    def bucket(self) -> str:
        return self.fanout.buckets["Bucket"]

    @property
    def archive_bucket(self) -> str:
        return self.fanout.buckets["ArchiveBucket"]

    def store(self) -> SqlEventStore:
        return open_store(self.db_url)

    def sns(self) -> Any:
        return boto3.session.Session(region_name=REGION).client(
            "sns", endpoint_url=self.endpoint_url
        )


@pytest.fixture
def stack(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    db_url = f"sqlite:///{tmp_path / 'events.db'}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "EVENTSTORE_DB_URL": db_url,
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }.items():
        monkeypatch.setenv(name, value)
    fanout = create_fanout(
        parameters={
            "BucketName": f"e2e-{uuid.uuid4().hex[:12]}",
            "CodeBucket": "not-used",
            "MaxReceiveCount": str(MAX_RECEIVE_COUNT),
        },
        stack_name="e2e",
        region=REGION,
        endpoint_url=moto_endpoint,
        skip_types=MOTO_SKIPPED_TYPES,
    )
    # One process runs every consumer: their shared settings (queue URLs, bucket names) are
    # set process-wide; each reactor function's own reactor is bound by its handler.
    for consumer in fanout.consumers:
        for name, value in consumer.shared_environment().items():
            if name != "EVENTSTORE_DB_URL":
                monkeypatch.setenv(name, value)
    open_store(db_url).engine.dispose()  # schema by migrations, before concurrent consumers
    session = boto3.session.Session(region_name=REGION)
    return Stack(
        fanout=fanout,
        s3=session.client("s3", endpoint_url=moto_endpoint),
        sqs=session.client("sqs", endpoint_url=moto_endpoint),
        db_url=db_url,
        endpoint_url=moto_endpoint,
    )
