"""Every kind of bad input in one SQS batch: each fails alone, named with its reason, and the
rest of the batch is stored — through the Lambda consumer and through `eventstore ingest`."""

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers import ingest
from eventstore import cli
from eventstore.core.parsing import MAX_MESSAGE_BYTES
from eventstore.store.database import create_engine
from eventstore.store.sql import SqlEventStore
from tests.conftest import load_event
from tests.helpers import (
    LambdaContext,
    first_record,
    sns_body,
    sqs_event,
    sqs_message,
)
from tests.notification_factory import notification


def record_with(change: Callable[[dict[str, Any]], object]) -> str:
    record = first_record("s3_copy.json")
    change(record)
    return sns_body(json.dumps(notification([record])))


def padded(record: dict[str, Any]) -> None:
    record["padding"] = "x" * MAX_MESSAGE_BYTES


# message id -> (body, what the reason must say)
BAD: dict[str, tuple[str, str]] = {
    "bad-not-json": ("this is not JSON", "SQS message body is not JSON"),
    "bad-no-records": (json.dumps({"Service": "Amazon S3"}), "notification has no Records"),
    "bad-sns-message": (sns_body("not JSON either"), "SNS Message is not JSON"),
    "bad-no-bucket": (
        record_with(lambda r: r["s3"].pop("bucket")),
        "Records[0].s3.bucket is missing",
    ),
    "bad-no-key": (
        record_with(lambda r: r["s3"]["object"].pop("key")),
        "Records[0].s3.object.key is missing",
    ),
    "bad-long-key": (
        record_with(lambda r: r["s3"]["object"].update(key="k%C3%A9" * 342)),
        "Records[0].s3.object.key is 1026 bytes after decoding, over S3's 1024",
    ),
    "bad-time": (
        record_with(lambda r: r.update(eventTime="2026-02-30T10:00:00Z")),
        "Records[0].eventTime '2026-02-30T10:00:00Z' is not an ISO 8601 time",
    ),
    "bad-size": (
        record_with(lambda r: r["s3"]["object"].update(size="twelve")),
        "Records[0].s3.object.size 'twelve' is not a whole number",
    ),
    "bad-too-big": (record_with(padded), "-byte limit"),
}
UNKNOWN_NAME = record_with(lambda r: r.update(eventName="ObjectSnapshot:Created"))


def mixed_batch() -> dict[str, Any]:
    """Good messages first, last and between the bad ones."""
    messages = [sqs_message(load_event("sqs_sns_put.json")["Records"][0]["body"], "good-put")]
    for message_id, (body, _) in BAD.items():
        messages.append(sqs_message(body, message_id))
        if message_id == "bad-sns-message":
            messages.append(sqs_message(UNKNOWN_NAME, "good-unknown-name"))
    messages.append(
        sqs_message(json.dumps(load_event("s3_delete_marker_created.json")), "good-last")
    )
    return sqs_event(*messages)


EXPECTED_STORED = [
    ("invoices/2026/03/inv-1042.pdf", "ObjectCreated:Put"),
    ("reports/q1+q2.csv", "ObjectSnapshot:Created"),
    ("menus/café crème.pdf", "ObjectRemoved:DeleteMarkerCreated"),
]


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'bad-input.db'}"
    monkeypatch.setenv("EVENTSTORE_DB_URL", url)
    return url


@pytest.fixture
def reader(db_url: str) -> Iterator[SqlEventStore]:
    engine = create_engine(db_url)
    yield SqlEventStore(engine)
    engine.dispose()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    handler = ingest.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def stored(reader: SqlEventStore) -> list[tuple[str, str]]:
    return [(s.event.key, s.event.event_name) for s in reader.read()]


def test_through_the_lambda_consumer(
    db_url: str, reader: SqlEventStore, log_stream: io.StringIO
) -> None:
    # When the consumer handles a batch with every kind of bad message among good ones
    response = ingest.handler(mixed_batch(), LambdaContext())
    # Then exactly the bad messages are reported failed
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == list(BAD)
    # and each is logged with its message id and a reason that names the problem
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    reasons = {line["message_id"]: line["reason"] for line in lines if "message_id" in line}
    assert set(reasons) == set(BAD)
    for message_id, (_, expected) in BAD.items():
        assert expected in reasons[message_id], message_id
    # and the rest of the batch is stored, the unknown event name included
    assert stored(reader) == EXPECTED_STORED


def test_through_eventstore_ingest(
    db_url: str, reader: SqlEventStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the same batch saved as a Lambda SQS event file
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(mixed_batch()), encoding="utf-8")
    # When it is ingested from the command line
    code = cli.main(["--db", db_url, "ingest", str(path)])
    out, err = capsys.readouterr()
    # Then the command fails (exit 1), counting the failed messages
    assert code == 1
    assert json.loads(out) == {
        "received": 3, "appended": 3, "duplicates": 0, "conflicts": 0, "skipped": 0,
        "failed": len(BAD),
    }  # fmt: skip
    # and names each one with its reason on stderr
    for message_id, (_, expected) in BAD.items():
        line = next(x for x in err.splitlines() if f"failed message {message_id}:" in x)
        assert expected in line
    # and the rest is stored
    assert stored(reader) == EXPECTED_STORED
