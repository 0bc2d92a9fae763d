"""`eventstore reactors list` and `reactors status`: what each reactor did, what it still has
to do, how fast it keeps up; exit 1 when one is failing. On every backend."""

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from eventstore import cli
from eventstore.core.events import NewEvent
from eventstore.core.timeutil import format_time
from eventstore.reactors import ReactorError, ReactorIO, reactor, unregister
from eventstore.reactors.status import RUN_REQUEST_PREFIX, nearest_rank, reactor_statuses
from eventstore.store.sql import SqlEventStore
from eventstore.wiring import event_store_on
from tests.integration.lineage_support import CSV_SAMPLE, CsvToLines, Pipeline, Summarise


class BrokenCsvToLines(CsvToLines):
    """The same reactor (name and version) on a bad day."""

    def react(self, event: NewEvent, io_: ReactorIO) -> None:
        raise ReactorError("disk full")


class CsvToLinesV2(CsvToLines):
    version = 2


@pytest.fixture
def registered() -> Iterator[None]:
    reactor(CsvToLines)
    reactor(Summarise)
    yield
    unregister(CsvToLines.name)
    unregister(Summarise.name)


def history(pipeline: Pipeline) -> tuple[dict[str, NewEvent], datetime]:
    """Five conversions with latencies 1, 2, 3, 4 and 10 s; one that failed and was then
    processed by a `reactors run`; an empty file that failed twice; two not processed."""
    uploads: dict[str, NewEvent] = {}
    for name, latency in zip("abcde", (1, 2, 3, 4, 10), strict=True):
        uploads[name] = pipeline.upload(f"uploads/{name}.csv", CSV_SAMPLE)
        pipeline.react(CsvToLines(), uploads[name], after=latency)
    uploads["flaky"] = pipeline.upload("uploads/flaky.csv", CSV_SAMPLE)
    pipeline.react(BrokenCsvToLines(), uploads["flaky"])
    pipeline.react(
        CsvToLines(), uploads["flaky"], attempt=2, after=1000,
        request_id=RUN_REQUEST_PREFIX + "20260301T120000Z-test",
    )  # fmt: skip
    uploads["empty"] = pipeline.upload("uploads/empty.csv", b"")
    pipeline.react(CsvToLines(), uploads["empty"], attempt=1)
    pipeline.react(CsvToLines(), uploads["empty"], attempt=2, after=5)
    last_failure = pipeline.now
    uploads["pending"] = pipeline.upload("uploads/pending.csv", CSV_SAMPLE)
    uploads["later"] = pipeline.upload("uploads/later.csv", CSV_SAMPLE)
    pipeline.upload("uploads/notes.txt", b"not wanted")
    event_store_on(pipeline.log).catch_up()
    return uploads, last_failure


def test_status_counts_outcomes_backlog_and_latency(backend_log: SqlEventStore) -> None:
    pipeline = Pipeline(backend_log)
    uploads, last_failure = history(pipeline)
    empty_position = next(
        s.position for s in backend_log.history("data", "uploads/empty.csv") if s.event.sequencer
    )

    (status,) = reactor_statuses(backend_log.engine, [CsvToLines()])

    assert (status.reactor, status.version) == ("test-csv-lines", 1)
    assert (status.processed, status.produced) == (6, 6)
    assert (status.failed_attempts, status.failing_events) == (3, 1)
    assert status.failing
    assert status.last_error == "ReactorError: empty file"
    assert status.last_error_at == last_failure
    assert status.unprocessed == 3  # empty (failed only), pending, later
    oldest = status.oldest_unprocessed
    assert oldest is not None
    assert (oldest.position, oldest.key, oldest.event_time) == (
        empty_position, "uploads/empty.csv", uploads["empty"].event_time,
    )  # fmt: skip
    # the reactors run's outcome (1000 s after its event) is not live latency
    assert (status.latency_samples, status.latency_p50_s, status.latency_p95_s) == (5, 3.0, 10.0)


def test_a_new_version_has_every_wanted_event_to_do(backend_log: SqlEventStore) -> None:
    history(Pipeline(backend_log))

    (status,) = reactor_statuses(backend_log.engine, [CsvToLinesV2()])

    assert status.unprocessed == 9
    assert status.oldest_unprocessed is not None
    assert status.oldest_unprocessed.key == "uploads/a.csv"
    assert status.processed == 6  # the outcomes of version 1 are still counted


def run_cli(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = cli.main(["--db", url, "reactors", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("registered")
def test_status_command_exits_1_when_a_reactor_is_failing(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore
) -> None:
    uploads, last_failure = history(Pipeline(backend_log))

    code, out, err = run_cli(capsys, backend_url, "status", "test-csv-lines", "--format", "json")
    healthy = run_cli(capsys, backend_url, "status", "test-summarise", "--format", "json")
    everyone = run_cli(capsys, backend_url, "status")

    assert code == 1
    (row,) = json.loads(out)
    assert row == {
        "reactor": "test-csv-lines", "version": 1, "processed": 6, "produced": 6,
        "failed_attempts": 3, "failing_events": 1, "last_error": "ReactorError: empty file",
        "last_error_at": format_time(last_failure), "unprocessed": 3,
        "oldest_unprocessed_position": row["oldest_unprocessed_position"],
        "oldest_unprocessed_key": "s3://data/uploads/empty.csv",
        "oldest_unprocessed_event_time": format_time(uploads["empty"].event_time),
        "latency_samples": 5, "latency_p50_s": 3.0, "latency_p95_s": 10.0,
    }  # fmt: skip
    assert err == (
        "eventstore: reactor test-csv-lines: 1 event(s) whose latest outcome is a failure; "
        "last error: ReactorError: empty file\n"
    )
    assert healthy[0] == 0
    assert json.loads(healthy[1])[0]["unprocessed"] == 0
    assert everyone[0] == 1
    assert "test-csv-lines" in everyone[1] and "put-consumer" in everyone[1]
    assert everyone[1].splitlines()[0].split()[:3] == ["reactor", "version", "processed"]


@pytest.mark.usefixtures("registered")
def test_status_of_an_unknown_reactor_names_the_known_ones(
    capsys: pytest.CaptureFixture[str], backend_url: str
) -> None:
    code, _, err = run_cli(capsys, backend_url, "status", "nope")

    assert code == 2
    assert "no reactor is named 'nope' (known: " in err
    assert "test-csv-lines" in err


@pytest.mark.usefixtures("registered")
def test_list_shows_each_reactor_with_its_filter_and_sns_policy(
    capsys: pytest.CaptureFixture[str], backend_url: str
) -> None:
    code, out, _ = run_cli(capsys, backend_url, "list", "--format", "json")
    table = run_cli(capsys, backend_url, "list")

    assert code == 0
    rows: dict[str, Any] = {r["name"]: r for r in json.loads(out)}
    assert rows["test-csv-lines"] == {
        "name": "test-csv-lines", "version": 1, "description": CsvToLines.description,
        "event_names": ["ObjectCreated:*"], "prefix": "uploads/", "suffixes": [".csv"],
        "filter_policy": {
            "Records": {
                "eventName": [{"prefix": "ObjectCreated:"}],
                "s3": {"object": {"key": [{"prefix": "uploads/"}]}},
            }
        },
    }  # fmt: skip
    assert rows["put-consumer"]["event_names"] == ["ObjectCreated:Put"]
    assert table[0] == 0
    assert table[1].splitlines()[0].split() == [
        "name", "version", "event_names", "prefix", "suffixes", "description",
    ]  # fmt: skip
    assert any(line.startswith("test-csv-lines ") for line in table[1].splitlines())


def test_nearest_rank_percentiles_are_values_seen() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 10.0]

    assert nearest_rank(values, 50) == 3.0
    assert nearest_rank(values, 95) == 10.0
    assert nearest_rank(values, 20) == 1.0
    assert nearest_rank(values, 21) == 2.0
    assert nearest_rank([7.5], 95) == 7.5
    with pytest.raises(ValueError, match="no values"):
        nearest_rank([], 50)
