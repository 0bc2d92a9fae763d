"""`eventstore status`: the head, ingest lag, projections, reactors, dead-letter queues and the
last verify on one screen; exit 1 when something needs attention. On every backend; the
dead-letter queues in moto."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from eventstore import cli
from eventstore.projections.registry import projection
from eventstore.projections.registry import unregister as unregister_projection
from eventstore.reactors import reactor, unregister
from eventstore.store.sql import SqlEventStore
from eventstore.wiring import event_store_on
from tests.conftest import EVENTS_DIR
from tests.integration.lineage_support import CsvToLines, Pipeline
from tests.integration.test_projections import Broken
from tests.integration.test_reactors_status import BrokenCsvToLines

BATCH = str(EVENTS_DIR / "sqs_sns_batch_realistic.json")


def run(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = cli.main(["--db", url, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def status(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, Any]:
    code, out, _ = run(capsys, url, "status", "--format", "json", *args)
    return code, json.loads(out)


@pytest.fixture
def no_dlq_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTSTORE_DLQ_URLS", raising=False)


@pytest.mark.usefixtures("no_dlq_variable")
def test_a_healthy_log_exits_0_and_shows_head_lag_projections_and_the_verified_anchor(
    capsys: pytest.CaptureFixture[str], backend_url: str
) -> None:
    # Given a log with the realistic batch ingested and verified
    assert run(capsys, backend_url, "ingest", BATCH)[0] == 0
    code, out, _ = run(capsys, backend_url, "verify", "--format", "json")
    assert code == 0
    anchor = "{head_position}:{head_hash}".format(**json.loads(out)[0])
    # When the on-call engineer asks for the status
    code, report = status(capsys, backend_url)
    # Then nothing needs attention, and the figures are there
    assert code == 0
    assert (report["ok"], report["problems"]) == (True, [])
    assert report["head"]["position"] == 7
    assert report["head"]["newest_s3_event_time"] is not None
    assert report["ingest_lag_seconds"] > 0  # the fixture's events are years old
    names = {p["name"]: p for p in report["projections"]}
    assert names["object_catalog"]["state"] == "live"
    assert all(p["lag_events"] == 0 and p["lag_seconds"] == 0 for p in names.values())
    assert report["last_verify"]["ok"] is True
    assert report["last_verify"]["anchor"] == anchor
    assert report["last_verify_passed"]["anchor"] == anchor
    assert report["dead_letter_queues"] == []
    assert {r["name"] for r in report["reactors"]} >= {"put-consumer", "csv-to-json"}
    # And the table says the same for a person
    code, out, _ = run(capsys, backend_url, "status")
    assert code == 0
    assert out.splitlines()[0] == "ok"
    assert f"anchor {anchor}" in out
    assert "object_catalog" in out


@pytest.mark.usefixtures("no_dlq_variable")
def test_a_log_never_verified_needs_attention(
    capsys: pytest.CaptureFixture[str], backend_url: str
) -> None:
    run(capsys, backend_url, "ingest", BATCH)
    code, report = status(capsys, backend_url)
    assert code == 1
    assert report["problems"] == ["verify has never run on this log"]
    assert report["last_verify"] is None
    code, out, _ = run(capsys, backend_url, "status")
    assert (code, out.splitlines()[0]) == (1, "ATTENTION")
    assert "verify   never run" in out


@pytest.mark.usefixtures("no_dlq_variable")
def test_a_failed_verify_needs_attention_and_the_last_pass_is_still_shown(
    capsys: pytest.CaptureFixture[str], backend_url: str
) -> None:
    # Given a verify that passed, then one against an anchor the log does not hold
    run(capsys, backend_url, "ingest", BATCH)
    assert run(capsys, backend_url, "verify")[0] == 0
    assert run(capsys, backend_url, "verify", "--anchor", "7:" + "0" * 64)[0] == 1
    # When the status is asked for
    code, report = status(capsys, backend_url)
    # Then it needs attention, names the failure, and still shows when the log last passed
    assert code == 1
    assert report["last_verify"]["ok"] is False
    assert report["last_verify"]["checked_against"] == "7:" + "0" * 64
    assert report["last_verify"]["reason"]
    assert report["last_verify_passed"]["ok"] is True
    assert [p for p in report["problems"] if p.startswith("the last verify failed")]


@pytest.fixture
def failing_reactor() -> Iterator[None]:
    reactor(CsvToLines)
    yield
    unregister(CsvToLines.name)


@pytest.mark.usefixtures("no_dlq_variable", "failing_reactor")
def test_a_failing_reactor_needs_attention(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore
) -> None:
    # Given a reactor whose latest outcome for one upload is a failure, not yet folded
    pipeline = Pipeline(backend_log)
    pipeline.react(BrokenCsvToLines(), pipeline.upload("uploads/a.csv", b"x,y\n1,2\n"))
    assert run(capsys, backend_url, "verify")[0] == 0
    # When the status is asked for before the projections caught up
    code, report = status(capsys, backend_url)
    # Then they show how far behind they are (behind is no alarm: they catch up by themselves)
    lagging = {p["name"]: p for p in report["projections"] if p["lag_events"] > 0}
    assert "reactor_outcomes" in lagging
    assert all(p["lag_seconds"] >= 0 and p["state"] != "failed" for p in lagging.values())
    assert code == 0
    # And once the outcomes are folded, the failing reactor needs attention, with its error
    event_store_on(backend_log).catch_up()
    code, report = status(capsys, backend_url)
    assert code == 1
    assert report["problems"] == ["reactor test-csv-lines is failing on 1 events"]
    (row,) = [r for r in report["reactors"] if r["name"] == "test-csv-lines"]
    assert (row["failing_events"], row["last_error"]) == (1, "ReactorError: disk full")


@pytest.fixture
def broken_projection() -> Iterator[None]:
    projection(Broken)
    yield
    unregister_projection(Broken.name)


@pytest.mark.usefixtures("no_dlq_variable", "broken_projection")
def test_a_failed_projection_needs_attention(
    capsys: pytest.CaptureFixture[str], backend_url: str
) -> None:
    # Given a projection whose code fails on the events ingested (the ingest says so)
    _, _, err = run(capsys, backend_url, "ingest", BATCH)
    assert "projection broken failed" in err
    run(capsys, backend_url, "verify")
    # When the status is asked for
    code, report = status(capsys, backend_url)
    # Then the projection is named, with its error; the others are live
    assert code == 1
    assert report["problems"] == ["projection broken is failed"]
    states = {p["name"]: p for p in report["projections"]}
    assert "a bug" in states["broken"]["last_error"]
    assert states["broken"]["lag_events"] == 7
    assert states["object_catalog"]["state"] == "live"
    code, out, _ = run(capsys, backend_url, "status")
    assert "a bug" in out


@pytest.fixture
def queues(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str, str]]:
    """Two dead-letter queues in moto: one empty, one holding a message."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        empty = sqs.create_queue(QueueName="ingest-dlq")["QueueUrl"]
        holding = sqs.create_queue(QueueName="csv-to-json-dlq")["QueueUrl"]
        sqs.send_message(QueueUrl=holding, MessageBody='{"Records": []}')
        yield sqs, empty, holding


@pytest.mark.usefixtures("no_dlq_variable")
def test_dead_letter_queue_depths_from_options_or_the_environment(
    capsys: pytest.CaptureFixture[str],
    backend_url: str,
    queues: tuple[Any, str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sqs, empty, holding = queues
    run(capsys, backend_url, "ingest", BATCH)
    run(capsys, backend_url, "verify")
    # An empty dead-letter queue needs nothing
    code, report = status(capsys, backend_url, "--dlq", empty)
    assert code == 0
    assert report["dead_letter_queues"] == [
        {"url": empty, "messages": 0, "in_flight": 0, "delayed": 0}
    ]
    # One that holds a message does, given as options or through $EVENTSTORE_DLQ_URLS
    code, report = status(capsys, backend_url, "--dlq", empty, "--dlq", holding)
    assert code == 1
    assert report["problems"] == [f"dead-letter queue {holding} holds 1 messages"]
    monkeypatch.setenv("EVENTSTORE_DLQ_URLS", f"{empty}, {holding}")
    code, out, _ = run(capsys, backend_url, "status")
    assert code == 1
    assert holding in out
    # Once drained, all is well again
    sqs.purge_queue(QueueUrl=holding)
    code, report = status(capsys, backend_url)
    assert code == 0
    assert [q["messages"] for q in report["dead_letter_queues"]] == [0, 0]


def test_status_of_a_missing_database_file_is_an_error_not_an_empty_log(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, f"sqlite:///{tmp_path / 'nope.db'}", "status")
    assert code == 2
    assert "nope.db" in err
