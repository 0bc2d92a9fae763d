"""The ingest consumer appends to the log only, then lets projections (the object catalog
among them) catch up within the time Lambda leaves it, when the lag or the delay says so."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from consumers import ingest, runtime
from eventstore.projections.catalog import catalog_entries
from eventstore.projections.registry import builtin_projections
from eventstore.projections.runner import ProjectionStatus
from eventstore.store.sql import SqlEventStore
from tests.notification_factory import T0, s3_record, sns_wrapped


@dataclass
class LambdaContext:
    remaining_ms: int
    function_name: str = "eventstore-ingest"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:eventstore-ingest"
    aws_request_id: str = "6f0b8e2c-1d2a-4b8e-9c1f-2a3b4c5d6e7f"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


BUILTIN = {p.name for p in builtin_projections()}


def _sqs_event(count: int) -> dict[str, object]:
    return {
        "Records": [
            {
                "messageId": f"msg-{i}",
                "receiptHandle": f"rh-{i}",
                "body": sns_wrapped(
                    f"sns-{i}",
                    s3_record(
                        "audit-bucket",
                        f"in/{i}.json",
                        sequencer=f"{i + 1:08X}",
                        when=T0 + timedelta(seconds=i),
                        size=100,
                    ),
                ),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1772366400000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:ingest",
                "awsRegion": "eu-west-1",
            }
            for i in range(count)
        ]
    }


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'lambda.db'}"
    monkeypatch.setenv("EVENTSTORE_DB_URL", url)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    for name in ("EVENTSTORE_CATCH_UP_MIN_LAG", "EVENTSTORE_CATCH_UP_MAX_DELAY"):
        monkeypatch.delenv(name, raising=False)  # the defaults: 1000 events, 5 seconds
    yield url
    cached = runtime._event_stores.pop(url, None)
    if cached is not None:
        cached.log.engine.dispose()


def statuses() -> dict[str, ProjectionStatus]:
    """Each projection's checkpoint, lag and state, as the container's event store sees them."""
    return {s.name: s for s in runtime.event_store().runner.status()}


def catalog_keys() -> list[str]:
    """The keys the object catalog holds now (without catching it up)."""
    return [e.key for e in catalog_entries(runtime.event_store().log.engine)]


def test_budget_follows_the_remaining_time() -> None:
    assert runtime.catch_up_seconds(1_000) == 0.0
    assert runtime.catch_up_seconds(10_000) == 5.0
    assert runtime.catch_up_seconds(5_000) == 2.0


def test_nearly_expired_invocation_stores_the_batch_but_defers_catch_up(db_url: str) -> None:
    response = ingest.handler(_sqs_event(3), LambdaContext(remaining_ms=1_000))
    assert response == {"batchItemFailures": []}
    assert runtime.event_store().log.head_position() == 3
    status = statuses()
    # The append wrote the log only; no time was left to build any projection, the catalog
    # included (a fresh database holds the catalog's seeded version-1 checkpoint: "outdated").
    assert set(status) == BUILTIN
    assert {(s.position, s.lag) for s in status.values()} == {(0, 3)}
    assert all(s.state in ("new", "outdated") for s in status.values()), status
    assert catalog_keys() == []


def test_invocation_with_time_catches_projections_up(db_url: str) -> None:
    ingest.handler(_sqs_event(4), LambdaContext(remaining_ms=60_000))
    status = statuses()
    assert set(status) == BUILTIN
    assert {s.state for s in status.values()} == {"live"}
    assert {s.position for s in status.values()} == {4}
    assert catalog_keys() == [f"in/{i}.json" for i in range(4)]


def _sqs_event_from(start: int, count: int) -> dict[str, object]:
    event = _sqs_event(start + count)
    records = event["Records"]
    assert isinstance(records, list)
    return {"Records": records[start:]}


def test_small_lag_waits_for_a_later_invocation(db_url: str) -> None:
    ingest.handler(_sqs_event(2), LambdaContext(remaining_ms=60_000))  # builds everything
    ingest.handler(_sqs_event_from(2, 3), LambdaContext(remaining_ms=60_000))
    assert runtime.event_store().log.head_position() == 5  # the log has the batch...
    status = statuses()
    # ...and every projection, the catalog too, waits: 3 < 1000 events behind, caught up
    # less than 5 seconds ago.
    assert {name: (s.state, s.position, s.lag) for name, s in status.items()} == {
        name: ("behind", 2, 3) for name in BUILTIN
    }
    assert catalog_keys() == ["in/0.json", "in/1.json"]


def test_lag_threshold_and_delay_are_settings(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTSTORE_CATCH_UP_MIN_LAG", "3")
    ingest.handler(_sqs_event(2), LambdaContext(remaining_ms=60_000))
    ingest.handler(_sqs_event_from(2, 2), LambdaContext(remaining_ms=60_000))  # lag 2: wait
    assert {s.position for s in statuses().values()} == {2}
    ingest.handler(_sqs_event_from(4, 1), LambdaContext(remaining_ms=60_000))  # lag 3: go
    assert {s.position for s in statuses().values()} == {5}
    monkeypatch.setenv("EVENTSTORE_CATCH_UP_MIN_LAG", "100")
    monkeypatch.setenv("EVENTSTORE_CATCH_UP_MAX_DELAY", "0")
    ingest.handler(_sqs_event_from(5, 1), LambdaContext(remaining_ms=60_000))  # too old: go
    assert {s.position for s in statuses().values()} == {6}
    assert catalog_keys() == [f"in/{i}.json" for i in range(6)]


def test_with_no_lag_threshold_every_invocation_catches_up(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTSTORE_CATCH_UP_MIN_LAG", "0")
    for start in range(3):
        ingest.handler(_sqs_event_from(start, 1), LambdaContext(remaining_ms=60_000))
        status = statuses()
        assert {(s.state, s.position) for s in status.values()} == {("live", start + 1)}
        assert catalog_keys() == [f"in/{i}.json" for i in range(start + 1)]


def test_the_catch_up_after_a_batch_folds_what_it_appended_without_reading_it_back(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTSTORE_CATCH_UP_MIN_LAG", "0")  # catch up after every batch
    ingest.handler(_sqs_event(2), LambdaContext(remaining_ms=60_000))  # builds everything
    reads: list[int] = []
    read_in = SqlEventStore.read_in

    def spy(self: SqlEventStore, connection: Any, *, after: int, limit: int | None) -> Any:
        reads.append(after)
        return read_in(self, connection, after=after, limit=limit)

    monkeypatch.setattr(SqlEventStore, "read_in", spy)
    ingest.handler(_sqs_event_from(2, 3), LambdaContext(remaining_ms=60_000))
    assert all(after >= 5 for after in reads), reads  # nothing below the head read back
    assert {s.position for s in statuses().values()} == {5}
    assert catalog_keys() == [f"in/{i}.json" for i in range(5)]
