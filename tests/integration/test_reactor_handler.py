"""The reactor consumer: one handler shape for every reactor; a bad message fails alone, a
redelivered event is recorded once, and the S3 events it received are in the log."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers import reactor, runtime
from eventstore.reactors.outcomes import OutcomeKind, read_outcome
from eventstore.store.base import EventQuery
from eventstore.store.database import create_engine
from eventstore.store.sql import SqlEventStore
from tests.conftest import load_event
from tests.helpers import LambdaContext, sqs_event, sqs_message


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SqlEventStore]:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    monkeypatch.setenv("EVENTSTORE_DB_URL", url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    yield SqlEventStore(create_engine(url))
    runtime._event_stores.pop(url, None)
    runtime._reactor_runners.clear()


def _put_body() -> str:
    body: str = load_event("sqs_sns_put.json")["Records"][0]["body"]
    return body


def test_a_redelivered_event_is_processed_once_and_a_bad_message_fails_alone(
    log: SqlEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(reactor.REACTOR_VARIABLE, "put-consumer")
    good = sqs_message(_put_body(), message_id="good")
    bad = sqs_message("{not json", message_id="bad")

    first = reactor.handler(sqs_event(good, bad), LambdaContext())
    again = reactor.handler(
        sqs_event(sqs_message(_put_body(), message_id="good", receive_count=2)), LambdaContext()
    )

    assert first == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert again == {"batchItemFailures": []}
    outcomes = [read_outcome(s) for s in log.select_events(EventQuery(types=("Reactor:*",)))]
    assert [(o.kind, o.reactor) for o in outcomes] == [(OutcomeKind.PROCESSED, "put-consumer")]
    (s3_event,) = log.select_events(EventQuery(types=("ObjectCreated:*",)))
    assert outcomes[0].cause_event_id == s3_event.event.event_id


def test_without_a_reactor_name_the_invocation_fails(
    log: SqlEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(reactor.REACTOR_VARIABLE, raising=False)
    with pytest.raises(Exception, match="EVENTSTORE_REACTOR is not set"):
        reactor.handler(sqs_event(sqs_message(_put_body())), LambdaContext())


def test_the_catch_up_after_a_batch_folds_what_it_appended_without_reading_it_back(
    log: SqlEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reactor consumer hands its own append (the S3 events and their outcomes) to the
    catch-up, which folds them from memory: the log is read only below them."""
    monkeypatch.setenv(reactor.REACTOR_VARIABLE, "put-consumer")
    monkeypatch.setenv("EVENTSTORE_CATCH_UP_MIN_LAG", "0")  # catch up after every batch
    reactor.handler(sqs_event(sqs_message(_put_body(), message_id="first")), LambdaContext())
    head = log.head_position()
    reads: list[tuple[int, int | None]] = []
    read_in = SqlEventStore.read_in

    def spy(self: SqlEventStore, connection: Any, *, after: int, limit: int | None) -> Any:
        reads.append((after, limit))
        return read_in(self, connection, after=after, limit=limit)

    monkeypatch.setattr(SqlEventStore, "read_in", spy)
    body = _put_body().replace("0065E1F7A93B2C4D12", "0065E1F7A93B2C4D99")
    reactor.handler(sqs_event(sqs_message(body, message_id="second")), LambdaContext())

    assert log.head_position() == head + 2  # the S3 event and its outcome
    assert all(after >= log.head_position() for after, _ in reads), reads
    status = {s.name: s for s in runtime.event_store().runner.status()}
    assert all(s.position == log.head_position() for s in status.values()), status
