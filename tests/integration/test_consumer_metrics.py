"""The consumers' EMF metrics: what a batch prints on stdout with metrics on, and that with
metrics off a warm container keeps and prints nothing, however many invocations it serves."""

import gc
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers import ingest, reactor, runtime
from consumers.metrics import InvocationMetrics
from tests.conftest import load_event
from tests.helpers import LambdaContext, sqs_event, sqs_message


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    monkeypatch.setenv("EVENTSTORE_DB_URL", url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    # Every projection catches up in the invocation, so its lag after it is known.
    monkeypatch.setenv("EVENTSTORE_CATCH_UP_MIN_LAG", "0")
    monkeypatch.setenv("EVENTSTORE_CATCH_UP_MAX_DELAY", "0")
    for name in ("POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_DEV", "POWERTOOLS_METRICS_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    yield url
    cached = runtime._event_stores.pop(url, None)
    if cached is not None:
        cached.log.engine.dispose()
    runtime._reactor_runners.clear()


def emf_documents(stdout: str) -> list[dict[str, Any]]:
    """The EMF documents among the printed lines (each carries `_aws.CloudWatchMetrics`)."""
    documents = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            document = json.loads(line)
            if "_aws" in document:
                documents.append(document)
    return documents


def metric_names(document: dict[str, Any]) -> set[str]:
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    return {m["Name"] for m in directive["Metrics"]}


def dimensions(document: dict[str, Any]) -> list[str]:
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    (names,) = directive["Dimensions"]
    return list(names)


def values(document: dict[str, Any], name: str) -> list[float]:
    value = document[name]
    return value if isinstance(value, list) else [value]


def one(document: dict[str, Any], name: str) -> float:
    (value,) = values(document, name)
    return value


def test_an_ingest_batch_prints_counts_lag_distribution_and_projection_lags(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the realistic batch (a test event, seven S3 events, one SNS retry)
    event = load_event("sqs_sns_batch_realistic.json")
    # When the ingest consumer handles it with metrics on
    ingest.handler(event, LambdaContext())
    documents = emf_documents(capsys.readouterr().out)
    # Then one document holds the batch's counts and one lag value per S3 event received
    (batch,) = [d for d in documents if "EventsAppended" in d]
    assert batch["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "S3EventStore"
    assert dimensions(batch) == ["service"]
    counts = {
        n: one(batch, f"Events{n}") for n in ("Received", "Appended", "Duplicates", "Skipped")
    }
    assert counts == {"Received": 9, "Appended": 7, "Duplicates": 1, "Skipped": 1}
    assert one(batch, "EventsFailed") == 0
    assert one(batch, "ProjectionFailures") == 0
    lags = values(batch, "IngestLag")
    assert len(lags) == 8  # the seven events and the SNS retry of one of them
    assert all(lag > 0 for lag in lags)  # the fixture's events happened years ago
    # And each projection reports its lag after the catch-up in a document of its own
    per_projection = {d["projection"]: d for d in documents if "projection" in d}
    assert "object_catalog" in per_projection
    for document in per_projection.values():
        assert sorted(dimensions(document)) == ["projection", "service"]
        assert metric_names(document) == {"ProjectionLagEvents", "ProjectionLagSeconds"}
        assert one(document, "ProjectionLagEvents") == 0


def test_projection_lags_are_measured_once_per_interval_per_container(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a warm container whose lags were measured by its first invocation
    monkeypatch.setenv("EVENTSTORE_LAG_METRICS_SECONDS", "3600")
    event = load_event("sqs_sns_batch_realistic.json")
    ingest.handler(event, LambdaContext())
    first = emf_documents(capsys.readouterr().out)
    assert any("projection" in d for d in first)
    # When it handles another batch within the interval
    ingest.handler(event, LambdaContext())
    # Then that batch's counts are printed, but no projection lag (no queries were made)
    second = emf_documents(capsys.readouterr().out)
    assert [d for d in second if "EventsReceived" in d]
    assert not [d for d in second if "projection" in d]
    # And once the interval has passed, the lags are measured again
    monkeypatch.setenv("EVENTSTORE_LAG_METRICS_SECONDS", "0")
    ingest.handler(event, LambdaContext())
    third = emf_documents(capsys.readouterr().out)
    assert {d["projection"] for d in third if "projection" in d} >= {"object_catalog"}


def test_more_than_a_hundred_lag_values_all_reach_cloudwatch(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a batch of ten messages of 25 events each (EMF takes 100 values per metric)
    template = json.loads(load_event("sqs_sns_put.json")["Records"][0]["body"])
    notice = json.loads(template["Message"])
    record = notice["Records"][0]
    messages = []
    for m in range(10):
        records = []
        for i in range(25):
            one = json.loads(json.dumps(record))
            one["s3"]["object"]["key"] = f"bulk/{m}/{i}.txt"
            records.append(one)
        body = json.dumps({**template, "Message": json.dumps({"Records": records})})
        messages.append(sqs_message(body, message_id=f"m{m}"))
    # When it is handled
    ingest.handler(sqs_event(*messages), LambdaContext())
    # Then all 250 lag values are printed, at most 100 per document
    documents = [d for d in emf_documents(capsys.readouterr().out) if "IngestLag" in d]
    per_document = [len(values(d, "IngestLag")) for d in documents]
    assert sum(per_document) == 250
    assert max(per_document) <= 100


def test_with_metrics_disabled_a_warm_handler_keeps_and_prints_nothing(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given metrics switched off and a warm container (one invocation already served)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    event = load_event("sqs_sns_batch_realistic.json")
    ingest.handler(event, LambdaContext())
    gc.collect()
    tracemalloc.start()
    try:
        before = _metrics_memory()
        # When it serves many more invocations (ingest and a reactor, in one process)
        monkeypatch.setenv(reactor.REACTOR_VARIABLE, "put-consumer")
        put = load_event("sqs_sns_put.json")
        for _ in range(150):
            ingest.handler(event, LambdaContext())
            reactor.handler(put, LambdaContext())
        gc.collect()
        after = _metrics_memory()
    finally:
        tracemalloc.stop()
    # Then nothing was printed, no metric object outlived its invocation, and the memory
    # the metric code holds did not grow
    assert emf_documents(capsys.readouterr().out) == []
    assert [o for o in gc.get_objects() if isinstance(o, InvocationMetrics)] == []
    assert after <= before


def _metrics_memory() -> int:
    """Bytes still allocated from Powertools' metrics code and ours."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(True, "*aws_lambda_powertools/metrics/*"),
            tracemalloc.Filter(True, "*consumers/metrics.py"),
        ]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


def test_each_reactor_reports_under_its_own_dimension(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two reactors' handlers in one warm process (as the local poller runs them)
    put = load_event("sqs_sns_put.json")
    put_consumer = reactor.handler_for("put-consumer")
    copy_consumer = reactor.handler_for("copy-consumer")
    # When each handles a batch, the first one twice
    put_consumer(put, LambdaContext())
    copy_consumer(put, LambdaContext())
    put_consumer(put, LambdaContext())
    documents = [d for d in emf_documents(capsys.readouterr().out) if "ReactorProcessed" in d]
    # Then each invocation's document names its own reactor, with its outcomes
    assert [d["reactor"] for d in documents] == ["put-consumer", "copy-consumer", "put-consumer"]
    assert all(sorted(dimensions(d)) == ["reactor", "service"] for d in documents)
    first, other, again = documents
    assert (one(first, "ReactorProcessed"), one(first, "ReactorFailed")) == (1, 0)
    assert len(values(first, "ReactorDuration")) == 1
    assert one(other, "ReactorProcessed") == 0  # a Put is not the copy consumer's
    assert one(again, "ReactorProcessed") == 0  # processed once per (reactor, event)
    assert "ReactorDuration" not in again
