"""The ingest consumer on a real SQLite file: partial batch failures, redelivery, DB errors,
and the object catalog caught up after the append (the append stores only the log)."""

import io
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers import ingest, runtime
from eventstore.core.objectstate import CatalogEntry
from eventstore.errors import MalformedEventError, StorageError
from eventstore.projections.catalog import catalog_entries
from eventstore.projections.runner import ProjectionRunner
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


@pytest.fixture
def db_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A SQLite file of its own for this test (the consumer keeps one store per URL), with
    the default catch-up thresholds (1000 events, 5 seconds) unless the test sets others."""
    path = tmp_path / "handler.db"
    url = f"sqlite:///{path}"
    monkeypatch.setenv("EVENTSTORE_DB_URL", url)
    for name in ("EVENTSTORE_CATCH_UP_MIN_LAG", "EVENTSTORE_CATCH_UP_MAX_DELAY"):
        monkeypatch.delenv(name, raising=False)
    yield path
    cached = runtime._event_stores.pop(url, None)
    if cached is not None:
        cached.log.engine.dispose()


@pytest.fixture
def reader(db_file: Path) -> Iterator[SqlEventStore]:
    """A second store on the same file, to look at what the handler stored."""
    engine = create_engine(f"sqlite:///{db_file}")
    yield SqlEventStore(engine)
    engine.dispose()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Where the consumer's structured log goes during the test (Powertools binds its
    handler's stream when the module is imported, so capsys cannot see it)."""
    handler = ingest.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every log line is one JSON object."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def body_of(fixture: str, index: int = 0) -> str:
    body: str = load_event(fixture)["Records"][index]["body"]
    return body


def context(request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef") -> LambdaContext:
    return LambdaContext(aws_request_id=request_id)


def event_ids(store: SqlEventStore) -> list[str]:
    return [s.event.event_id for s in store.read()]


def catalog(store: SqlEventStore) -> dict[str, CatalogEntry]:
    """The object catalog as it stands (not caught up here), deleted keys included."""
    return {e.key: e for e in catalog_entries(store.engine, include_deleted=True)}


def catalog_status(store: SqlEventStore) -> tuple[str, int]:
    (status,) = [s for s in ProjectionRunner(store).status() if s.name == "object_catalog"]
    return status.state, status.position


def test_a_good_batch_is_stored_and_nothing_is_reported(
    db_file: Path, reader: SqlEventStore, log_stream: io.StringIO
) -> None:
    # Given the realistic batch (a test event, seven S3 events, one SNS retry)
    event = load_event("sqs_sns_batch_realistic.json")
    # When the consumer handles it
    response = ingest.handler(event, context())
    # Then no message is reported failed, and every S3 event is stored once
    assert response == {"batchItemFailures": []}
    stored = list(reader.read())
    assert len(stored) == 7
    assert [s.position for s in stored] == list(range(1, 8))
    assert all(s.event.correlation_id == context().aws_request_id for s in stored)
    summary = next(line for line in log_lines(log_stream) if line["message"] == "batch stored")
    assert (summary["received"], summary["appended"], summary["duplicates"], summary["skipped"],
            summary["failed"]) == (9, 7, 1, 1, 0)  # fmt: skip
    assert reader.verify().ok


def test_with_no_lag_tolerated_the_catalog_catches_up_in_the_same_invocation(
    db_file: Path, reader: SqlEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTSTORE_CATCH_UP_MIN_LAG", "0")
    ingest.handler(load_event("sqs_sns_batch_realistic.json"), context())
    objects = catalog(reader)
    assert objects["orders/2026/03/01/order-7781.json"].size == 2419
    assert not objects["orders/2026/03/01/order-7781.json"].deleted
    assert objects["orders/2026/03/01/order 7782 (draft).json"].deleted
    assert objects["customers/müller/café receipt.pdf"].size == 66012
    assert catalog_status(reader) == ("live", 7)
    # Every invocation catches up, however small its batch.
    ingest.handler(load_event("sqs_sns_put.json"), context("second-invocation"))
    assert catalog(reader)["invoices/2026/03/inv-1042.pdf"].size is not None
    assert catalog_status(reader) == ("live", 8)


def test_a_small_batch_is_in_the_log_at_once_and_in_the_catalog_when_its_delay_is_due(
    db_file: Path, reader: SqlEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (A delay long enough that a slow machine cannot make it pass by itself.)
    monkeypatch.setenv("EVENTSTORE_CATCH_UP_MAX_DELAY", "60")
    # The first invocation builds the projections (they are new); the catalog is then live.
    ingest.handler(load_event("sqs_sns_batch_realistic.json"), context("first-invocation"))
    assert catalog_status(reader) == ("live", 7)
    # A batch of one event, 1 < 1000 events behind, caught up less than 60 s ago: the append
    # stores it in the log and the catalog waits for a later invocation.
    response = ingest.handler(load_event("sqs_sns_put.json"), context("second-invocation"))
    assert response == {"batchItemFailures": []}
    assert [s.event.key for s in reader.read()][-1] == "invoices/2026/03/inv-1042.pdf"
    assert catalog_status(reader) == ("behind", 7)
    assert "invoices/2026/03/inv-1042.pdf" not in catalog(reader)
    # Once the delay has passed (here: no delay allowed), the next invocation catches up,
    # even one with nothing to append.
    monkeypatch.setenv("EVENTSTORE_CATCH_UP_MAX_DELAY", "0")
    assert ingest.handler({"Records": []}, context("third-invocation")) == {"batchItemFailures": []}
    assert catalog_status(reader) == ("live", 8)
    assert not catalog(reader)["invoices/2026/03/inv-1042.pdf"].deleted


def test_partial_failure_names_only_the_bad_messages(
    db_file: Path, reader: SqlEventStore, log_stream: io.StringIO
) -> None:
    # Given a batch of two good messages around two malformed ones
    bad_record = first_record("s3_put.json")
    bad_record["s3"]["object"]["size"] = "a lot"
    batch = sqs_event(
        sqs_message(body_of("sqs_sns_put.json"), "good-1"),
        sqs_message("<html>502 Bad Gateway</html>", "bad-not-json"),
        sqs_message(sns_body(json.dumps(notification([bad_record]))), "bad-size"),
        sqs_message(json.dumps(load_event("s3_copy.json")), "good-2"),
    )
    # When it is handled
    response = ingest.handler(batch, context())
    # Then only the malformed messages are reported, for SQS to retry
    assert response == {
        "batchItemFailures": [{"itemIdentifier": "bad-not-json"}, {"itemIdentifier": "bad-size"}]
    }
    # and the good ones are in the log
    assert [s.event.key for s in reader.read()] == [
        "invoices/2026/03/inv-1042.pdf",
        "reports/q1+q2.csv",
    ]
    # and each rejection is a structured log line with the message id and the reason
    rejected = {line["message_id"]: line for line in log_lines(log_stream)
                if line["message"] == "message rejected"}  # fmt: skip
    assert set(rejected) == {"bad-not-json", "bad-size"}
    assert rejected["bad-not-json"]["level"] == "ERROR"
    assert rejected["bad-not-json"]["reason"].startswith("SQS message body is not JSON")
    assert rejected["bad-size"]["reason"] == (
        "Records[0].s3.object.size 'a lot' is not a whole number"
    )
    assert rejected["bad-size"]["function_request_id"] == context().aws_request_id


def test_a_batch_of_only_malformed_messages_names_them_all(
    db_file: Path, reader: SqlEventStore
) -> None:
    batch = sqs_event(sqs_message("not json", "bad-1"), sqs_message("{}", "bad-2"))
    response = ingest.handler(batch, context())
    assert response == {
        "batchItemFailures": [{"itemIdentifier": "bad-1"}, {"itemIdentifier": "bad-2"}]
    }
    assert list(reader.read()) == []


def test_duplicates_across_redeliveries_are_stored_once(
    db_file: Path, reader: SqlEventStore
) -> None:
    # Given a batch that was handled once already
    batch = load_event("sqs_sns_batch_realistic.json")
    ingest.handler(batch, context("first-invocation"))
    before = list(reader.read())
    # When SQS delivers it again (a timed-out invocation), and the same change arrives again
    # through another wrapper
    for record in batch["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = "2"
    response = ingest.handler(batch, context("second-invocation"))
    again = sqs_event(sqs_message(body_of("sqs_sns_put.json")),
                      sqs_message(json.dumps(load_event("eventbridge_object_created_put.json"))),
                      sqs_message(body_of("sqs_raw_delivery_put.json")))  # fmt: skip
    ingest.handler(again, context("third-invocation"))
    # Then nothing that was stored is stored twice
    assert response == {"batchItemFailures": []}
    after = list(reader.read())
    assert [s.event.event_id for s in after[: len(before)]] == [s.event.event_id for s in before]
    assert len(after) == len(before) + 1  # only the invoice was new
    assert after[-1].event.key == "invoices/2026/03/inv-1042.pdf"
    assert len(set(event_ids(reader))) == len(after)
    assert reader.verify().ok


def test_the_test_event_is_skipped(db_file: Path, reader: SqlEventStore) -> None:
    response = ingest.handler(load_event("sqs_sns_test_event.json"), context())
    assert response == {"batchItemFailures": []}
    assert list(reader.read()) == []


def test_an_empty_batch_is_fine(db_file: Path, reader: SqlEventStore) -> None:
    assert ingest.handler({"Records": []}, context()) == {"batchItemFailures": []}


def test_unknown_event_name_is_stored(db_file: Path, reader: SqlEventStore) -> None:
    record = first_record("s3_put.json")
    record["eventName"] = "ObjectSnapshot:Created"
    response = ingest.handler(sqs_event(sqs_message(sns_body(json.dumps(notification([record]))))),
                              context())  # fmt: skip
    assert response == {"batchItemFailures": []}
    assert [s.event.event_name for s in reader.read()] == ["ObjectSnapshot:Created"]


def test_a_database_error_raises_and_stores_nothing(db_file: Path, reader: SqlEventStore) -> None:
    # Given a database that accepts the first row of a batch and then fails
    ingest.handler(load_event("sqs_sns_test_event.json"), context())  # creates the schema
    with sqlite3.connect(db_file) as connection:
        connection.execute(
            "CREATE TRIGGER fail_second_row BEFORE INSERT ON events WHEN NEW.position = 2 "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error (simulated)'); END"
        )
    connection.close()
    batch = load_event("sqs_sns_batch_realistic.json")
    # When the consumer handles a batch
    with pytest.raises(StorageError, match="nothing was stored"):
        ingest.handler(batch, context())
    # Then not even the first row was kept: the batch is all or nothing
    assert list(reader.read()) == []
    assert catalog(reader) == {}
    assert catalog_status(reader) == ("live", 0)
    # and once the database is healthy, SQS's redelivery of the batch stores it all
    with sqlite3.connect(db_file) as connection:
        connection.execute("DROP TRIGGER fail_second_row")
    connection.close()
    assert ingest.handler(batch, context()) == {"batchItemFailures": []}
    assert [s.position for s in reader.read()] == list(range(1, 8))
    assert reader.verify().ok


def test_a_database_without_its_events_table_raises(db_file: Path) -> None:
    ingest.handler(load_event("sqs_sns_test_event.json"), context())  # creates the schema
    with sqlite3.connect(db_file) as connection:
        connection.execute("DROP TABLE events")
    connection.close()
    with pytest.raises(StorageError, match="no such table: events"):
        ingest.handler(load_event("sqs_sns_put.json"), context())


def test_works_without_powertools_variables(
    db_file: Path, reader: SqlEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    assert ingest.handler(load_event("sqs_sns_put.json"), context()) == {"batchItemFailures": []}
    assert len(list(reader.read())) == 1


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"Records": {"messageId": "m-1", "body": "{}"}}, "Lambda event has no Records list"),
        ({"Records": [{"body": "{}"}]}, "Lambda event Records[0] has no messageId"),
        ({"Records": ["not a record"]}, "Lambda event Records[0] is not an object"),
    ],
)
def test_an_event_that_is_no_sqs_batch_fails_the_invocation_with_its_reason(
    db_file: Path,
    log_stream: io.StringIO,
    event: dict[str, Any],
    reason: str,
) -> None:
    # Given an invocation event whose messages cannot be named in a partial batch response
    # When the handler is invoked, Then it raises a clear error (not a TypeError or KeyError),
    # logs the reason, and stores nothing
    with pytest.raises(MalformedEventError, match=r"not an SQS batch event: Lambda event"):
        ingest.handler(event, LambdaContext())
    rejected = [
        line for line in log_lines(log_stream) if line["message"] == "invocation event rejected"
    ]
    assert [line["reason"] for line in rejected] == [reason]
    db = sqlite3.connect(db_file)  # rejected before the store was even opened
    try:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        assert "events" not in tables or db.execute("SELECT count(*) FROM events").fetchone() == (
            0,
        )
    finally:
        db.close()
