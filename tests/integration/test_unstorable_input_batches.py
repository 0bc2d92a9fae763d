"""What a backend cannot store is refused while parsing, so SQLite and PostgreSQL give the
same answer: through the Lambda consumer, each such message fails alone and the rest of the
batch is stored; values at the parser's limits are stored by both."""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from consumers import ingest
from eventstore.core.parsing import parse_sqs_body
from eventstore.errors import MalformedMessageError
from eventstore.store.base import EventQuery
from eventstore.store.sql import SqlEventStore
from tests.conftest import event_text
from tests.helpers import LambdaContext, first_record, sns_body, sqs_event, sqs_message
from tests.notification_factory import notification


def put_with(change: Callable[[dict[str, Any]], object], key: str = "k.txt") -> str:
    record = first_record("s3_copy.json")
    record["s3"]["object"]["key"] = key
    change(record)
    return sns_body(json.dumps(notification([record])))


def at_limits(record: dict[str, Any]) -> None:
    # the longest values the parser lets through into the indexed columns, multi-byte where
    # that makes the index entry largest
    record["s3"]["bucket"]["name"] = "b" * 255
    record["s3"]["object"]["key"] = "%C3%A9" * 512  # 1024 bytes once decoded
    record["s3"]["object"]["versionId"] = "v" * 1024
    record["s3"]["object"]["sequencer"] = "F" * 64
    record["s3"]["object"]["size"] = 2**63 - 1
    record["userIdentity"]["principalId"] = "p" * 1024
    record["eventName"] = "ObjectCreated:" + "x" * 1010
    record["note"] = "NUL in an unknown field is kept, escaped: \x00"


# message id -> (body, what the reason must say)
UNSTORABLE: dict[str, tuple[str, str]] = {
    "bad-nul-key": (put_with(lambda r: None, key="a%00b"), "holds a NUL character"),
    "bad-nul-bucket": (
        put_with(lambda r: r["s3"]["bucket"].update(name="acme\x00")),
        "Records[0].s3.bucket.name holds a NUL character",
    ),
    "bad-nul-principal": (
        put_with(lambda r: r["userIdentity"].update(principalId="AWS:\x00")),
        "Records[0].userIdentity.principalId holds a NUL character",
    ),
    "bad-surrogate": (
        put_with(lambda r: r.update(note="\ud800")),
        "lone surrogate at Records[0].note",
    ),
    "bad-long-sequencer": (
        put_with(lambda r: r["s3"]["object"].update(sequencer="A" * 65)),
        "has 65 hex digits, over the 64 stored",
    ),
    "bad-size": (
        put_with(lambda r: r["s3"]["object"].update(size=2**63)),
        "Records[0].s3.object.size 9223372036854775808 is out of range",
    ),
    "bad-long-bucket": (
        put_with(lambda r: r["s3"]["bucket"].update(name="b" * 256)),
        "Records[0].s3.bucket.name is 256 bytes, over the 255 stored",
    ),
    "bad-deep": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
}
GOOD = {
    "good-at-limits": put_with(at_limits),
    "good-happy-sequencer": event_text("s3_put_sample_non_hex_sequencer.json"),
}


@pytest.fixture
def db_url(backend_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty, migrated database on each backend in turn, as the consumer's database."""
    monkeypatch.setenv("EVENTSTORE_DB_URL", backend_url)
    return backend_url


@pytest.fixture
def reader(db_url: str, backend_log: SqlEventStore) -> SqlEventStore:
    """The log the consumer (pointed at `db_url`) writes."""
    return backend_log


def test_unstorable_messages_fail_alone_and_the_rest_is_stored(reader: SqlEventStore) -> None:
    # Given a batch of messages the parser must refuse, between ones at its limits
    messages = [sqs_message(GOOD["good-at-limits"], "good-at-limits")]
    messages += [sqs_message(body, message_id) for message_id, (body, _) in UNSTORABLE.items()]
    messages.append(sqs_message(GOOD["good-happy-sequencer"], "good-happy-sequencer"))
    # When the consumer handles it
    response = ingest.handler(sqs_event(*messages), LambdaContext())
    # Then exactly the unstorable messages are reported failed, on either backend
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == list(UNSTORABLE)
    # and the others are stored whole, and read back as parsed
    expected = [
        parse_sqs_body(body, message_id=message_id).events[0] for message_id, body in GOOD.items()
    ]
    stored = list(reader.read())
    assert [s.event.event_id for s in stored] == [e.event_id for e in expected]
    at_limits_event = stored[0].event
    assert (len(at_limits_event.key.encode()), at_limits_event.size) == (1024, 2**63 - 1)
    assert stored[0].event.record["note"].endswith("\x00")
    assert stored[1].event.sequencer is None
    assert reader.verify().ok


@pytest.mark.parametrize("message_id", list(UNSTORABLE))
def test_each_refusal_names_the_problem(message_id: str) -> None:
    body, reason = UNSTORABLE[message_id]
    with pytest.raises(MalformedMessageError) as failure:
        parse_sqs_body(body, message_id=message_id)
    assert reason in failure.value.reason
    assert failure.value.message_id == message_id


@pytest.mark.parametrize("year", [1, 500, 999, 1000])
def test_an_event_before_year_1000_is_stored_and_verifies(reader: SqlEventStore, year: int) -> None:
    # Given an S3 event whose time is in an early year (as a synthetic record may carry)
    record = first_record("s3_put.json")
    record["eventTime"] = f"{year:04d}-06-01T12:00:00.250Z"
    (event,) = parse_sqs_body(json.dumps(notification([record])), message_id="m").events
    # When it is appended and read back from the database
    reader.append([event])
    (stored,) = reader.read()
    # Then its time survives the round trip and the chain verifies over it
    assert stored.event.event_time == datetime(year, 6, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert reader.verify().ok


@pytest.mark.parametrize("year", [1, 500, 999, 1000, 9999])
def test_a_saved_time_filter_of_any_year_reads_back(year: int) -> None:
    # Given a replay filter from an early or late year (as `replay --since 0500-…` saves it)
    query = EventQuery(
        since=datetime(year, 1, 1, tzinfo=UTC), until=datetime(9999, 1, 1, tzinfo=UTC)
    )
    # When it is saved and loaded again
    loaded = EventQuery.from_json(query.to_json())
    # Then it is the same filter
    assert (loaded.since, loaded.until) == (query.since, query.until)
