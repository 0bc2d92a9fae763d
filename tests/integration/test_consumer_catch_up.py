"""The ingest consumer lets projections catch up within the time Lambda leaves it."""

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from consumers import ingest, runtime
from eventstore.projections.runner import ProjectionRunner
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
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'lambda.db'}"
    monkeypatch.setenv("EVENTSTORE_DB_URL", url)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    return url


def test_budget_follows_the_remaining_time() -> None:
    assert runtime.catch_up_seconds(1_000) == 0.0
    assert runtime.catch_up_seconds(10_000) == 5.0
    assert runtime.catch_up_seconds(5_000) == 2.0


def test_nearly_expired_invocation_stores_the_batch_but_defers_catch_up(db_url: str) -> None:
    response = ingest.handler(_sqs_event(3), LambdaContext(remaining_ms=1_000))
    assert response == {"batchItemFailures": []}
    status = {s.name: s for s in ProjectionRunner(runtime.store()).status()}
    assert status["object_catalog"].position == 3  # inline: part of the append
    assert status["principal_activity"].state == "new"  # no time left to build it


def test_invocation_with_time_catches_projections_up(db_url: str) -> None:
    ingest.handler(_sqs_event(4), LambdaContext(remaining_ms=60_000))
    status = {s.name: s for s in ProjectionRunner(runtime.store()).status()}
    assert {s.state for s in status.values()} == {"live"}
    assert {s.position for s in status.values()} == {4}


def _sqs_event_from(start: int, count: int) -> dict[str, object]:
    event = _sqs_event(start + count)
    records = event["Records"]
    assert isinstance(records, list)
    return {"Records": records[start:]}


def test_small_lag_waits_for_a_later_invocation(db_url: str) -> None:
    ingest.handler(_sqs_event(2), LambdaContext(remaining_ms=60_000))  # builds everything
    ingest.handler(_sqs_event_from(2, 3), LambdaContext(remaining_ms=60_000))
    status = {s.name: s for s in ProjectionRunner(runtime.store()).status()}
    assert status["object_catalog"].position == 5  # inline, never waits
    assert (status["principal_activity"].state, status["principal_activity"].position) == (
        "behind",
        2,
    )


def test_lag_threshold_and_delay_are_settings(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTSTORE_CATCH_UP_MIN_LAG", "3")
    ingest.handler(_sqs_event(2), LambdaContext(remaining_ms=60_000))
    ingest.handler(_sqs_event_from(2, 3), LambdaContext(remaining_ms=60_000))  # lag 3: go
    status = {s.name: s for s in ProjectionRunner(runtime.store()).status()}
    assert status["principal_activity"].position == 5
    monkeypatch.setenv("EVENTSTORE_CATCH_UP_MIN_LAG", "100")
    monkeypatch.setenv("EVENTSTORE_CATCH_UP_MAX_DELAY", "0")
    ingest.handler(_sqs_event_from(5, 1), LambdaContext(remaining_ms=60_000))  # too old: go
    status = {s.name: s for s in ProjectionRunner(runtime.store()).status()}
    assert status["principal_activity"].position == 6
