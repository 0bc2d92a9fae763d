"""`eventstore reactors run NAME --from log`: a reactor re-run over the log's history against
S3 (moto): once per version, resumable, narrowed by the options, failures recorded with their
attempt; `--dry-run` touches nothing. On every backend."""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

import boto3
import pytest
from moto import mock_aws

from eventstore import cli
from eventstore.core.events import NewEvent
from eventstore.reactors import EventFilter, Reactor, ReactorError, ReactorIO, reactor, unregister
from eventstore.reactors.outcomes import OutcomeKind, read_outcome
from eventstore.reactors.status import RUN_REQUEST_PREFIX, reactor_statuses
from eventstore.store.base import EventQuery
from eventstore.store.sql import SqlEventStore
from tests.integration.replay_support import REGION, fake_aws_credentials
from tests.notification_factory import T0, new_events, s3_record

BUCKET = "data"


@dataclass
class Calls:
    keys: list[str] = field(default_factory=list)
    interrupt_at: int | None = None  # the call (1-based) that raises KeyboardInterrupt


CALLS = Calls()


class Upper(Reactor):
    """uploads/*.txt -> upper/… in upper case; an empty file fails."""

    name = "test-upper"
    version = 1
    wants: ClassVar[EventFilter] = EventFilter(prefix="uploads/", suffixes=(".txt",))

    def react(self, event: NewEvent, io: ReactorIO) -> None:
        CALLS.keys.append(event.key)
        if CALLS.interrupt_at == len(CALLS.keys):
            raise KeyboardInterrupt
        with io.open_input() as body:
            text = body.read()
        if not text:
            raise ReactorError("empty file")
        io.write_object(event.bucket, "upper/" + event.key.removeprefix("uploads/"), text.upper())


class UpperV2(Upper):
    version = 2


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    fake_aws_credentials(monkeypatch)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    CALLS.keys.clear()
    CALLS.interrupt_at = None
    reactor(Upper)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client
    unregister(Upper.name)


def _event_of(response: dict[str, Any], key: str, seconds: int, name: str, size: int) -> NewEvent:
    record = s3_record(
        BUCKET, key, event_name=name, when=T0 + timedelta(seconds=seconds),
        sequencer=f"{seconds:016X}", version_id=response["VersionId"],
        etag=response["ETag"].strip('"'), size=size,
    )  # fmt: skip
    (event,) = new_events([record])
    return event


def put(s3: Any, log: SqlEventStore, key: str, body: bytes, seconds: int) -> NewEvent:
    """An object written to S3 and its notification in the log."""
    response = s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    event = _event_of(response, key, seconds, "ObjectCreated:Put", len(body))
    log.append([event])
    return event


def history(s3: Any, log: SqlEventStore) -> None:
    """Four events the reactor wants (a, b, sub/e by Put at 1, 2, 5 s; f by Copy at 6 s) and
    two it does not."""
    put(s3, log, "uploads/a.txt", b"a", 1)
    put(s3, log, "uploads/b.txt", b"b", 2)
    put(s3, log, "uploads/c.csv", b"c", 3)
    put(s3, log, "other/d.txt", b"d", 4)
    put(s3, log, "uploads/sub/e.txt", b"e", 5)
    copied = s3.copy_object(
        Bucket=BUCKET, Key="uploads/f.txt", CopySource={"Bucket": BUCKET, "Key": "uploads/a.txt"}
    )
    response = {"VersionId": copied["VersionId"], "ETag": copied["CopyObjectResult"]["ETag"]}
    log.append([_event_of(response, "uploads/f.txt", 6, "ObjectCreated:Copy", 1)])


def run(
    capsys: pytest.CaptureFixture[str], url: str, *args: str
) -> tuple[int, dict[str, Any], str]:
    code = cli.main(["--db", url, "reactors", "run", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def dry_run(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> list[str]:
    code = cli.main(["--db", url, "reactors", "run", *args, "--dry-run", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return [row["key"] for row in json.loads(out)]


def counts(summary: dict[str, Any]) -> tuple[int, ...]:
    return tuple(
        summary[k] for k in ("considered", "already_processed", "processed", "failed", "produced")
    )


def outcomes(log: SqlEventStore, kind: OutcomeKind) -> list[Any]:
    return [read_outcome(s) for s in log.select_events(EventQuery(types=(str(kind),)))]


def body(s3: Any, key: str) -> bytes:
    data: bytes = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return data


def test_a_run_processes_history_once_and_a_second_run_nothing(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore, s3: Any
) -> None:
    # Given history the reactor never saw
    history(s3, backend_log)

    # When it runs over the log, twice
    code, first, err = run(capsys, backend_url, "test-upper", "--from", "log")
    again_code, again, _ = run(capsys, backend_url, "test-upper", "--from", "log")

    # Then each wanted event was handled once, its output written and its outcome recorded
    assert code == 0, err
    assert (first["reactor"], first["version"], first["dry_run"]) == ("test-upper", 1, False)
    assert first["run_id"].startswith(RUN_REQUEST_PREFIX)
    assert counts(first) == (4, 0, 4, 0, 4)
    assert err.startswith("reactors run test-upper: 4 in ")
    assert "0 already processed, 4 processed, 0 failed" in err
    assert CALLS.keys == ["uploads/a.txt", "uploads/b.txt", "uploads/sub/e.txt", "uploads/f.txt"]
    assert body(s3, "upper/sub/e.txt") == b"E"
    assert body(s3, "upper/f.txt") == b"A"
    processed = backend_log.select_events(EventQuery(types=("Reactor:Processed",)))
    assert len(processed) == 4
    assert {s.event.request_id for s in processed} == {first["run_id"]}
    # and the second run found nothing left to do
    assert again_code == 0
    assert counts(again) == (4, 4, 0, 0, 0)
    assert len(CALLS.keys) == 4
    # and the projections were caught up: status sees the run at once
    (status,) = reactor_statuses(backend_log.engine, [Upper()])
    assert (status.processed, status.unprocessed, status.latency_samples) == (4, 0, 0)


def test_a_dry_run_lists_what_it_would_do_and_touches_nothing(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore, s3: Any
) -> None:
    history(s3, backend_log)
    head = backend_log.head_position()

    keys = dry_run(capsys, backend_url, "test-upper", "--from", "log")
    code = cli.main(["--db", backend_url, "reactors", "run", "test-upper", "--from", "log",
                     "--dry-run"])  # fmt: skip
    table, err = capsys.readouterr()

    assert keys == ["uploads/a.txt", "uploads/b.txt", "uploads/sub/e.txt", "uploads/f.txt"]
    assert code == 0
    assert table.splitlines()[-1] == "(4 rows)"
    assert "0 already processed, 4 to process (dry run: nothing done)" in err
    assert backend_log.head_position() == head
    assert CALLS.keys == []
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="upper/")


def test_a_new_version_processes_everything_again(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore, s3: Any
) -> None:
    history(s3, backend_log)
    run(capsys, backend_url, "test-upper", "--from", "log")

    reactor(UpperV2)  # the bug fix: same name, version 2
    code, summary, _ = run(capsys, backend_url, "test-upper", "--from", "log")

    assert code == 0
    assert (summary["version"], *counts(summary)) == (2, 4, 0, 4, 0, 4)
    assert len(CALLS.keys) == 8
    versions = sorted(o.reactor_version for o in outcomes(backend_log, OutcomeKind.PROCESSED))
    assert versions == [1, 1, 1, 1, 2, 2, 2, 2]


def test_an_interrupted_run_resumes_without_repeating_recorded_work(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore, s3: Any
) -> None:
    # Given a run in chunks of three log rows ([a, b, c.csv], [e, f]) interrupted on f
    history(s3, backend_log)
    CALLS.interrupt_at = 4
    code, summary, err = run(capsys, backend_url, "test-upper", "--from", "log", "--chunk", "3")

    # Then the first chunk and the event done before f in the second are recorded
    assert (code, summary) == (130, {})
    assert "interrupted: outcomes recorded so far are kept; run again to go on" in err
    done = {o.cause_key for o in outcomes(backend_log, OutcomeKind.PROCESSED)}
    assert done == {"uploads/a.txt", "uploads/b.txt", "uploads/sub/e.txt"}

    # When it runs again (in chunks of one), only the interrupted event is handled
    CALLS.interrupt_at = None
    code, summary, _ = run(capsys, backend_url, "test-upper", "--from", "log", "--chunk", "1")

    assert code == 0
    assert counts(summary) == (4, 3, 1, 0, 1)
    assert CALLS.keys == [
        "uploads/a.txt", "uploads/b.txt", "uploads/sub/e.txt", "uploads/f.txt", "uploads/f.txt",
    ]  # fmt: skip
    assert len(outcomes(backend_log, OutcomeKind.PROCESSED)) == 4


def test_failures_are_recorded_with_their_attempt_and_exit_1(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore, s3: Any
) -> None:
    empty = put(s3, backend_log, "uploads/empty.txt", b"", 1)
    put(s3, backend_log, "uploads/fine.txt", b"fine", 2)

    code, first, err = run(capsys, backend_url, "test-upper", "--from", "log")
    again_code, again, _ = run(capsys, backend_url, "test-upper", "--from", "log")

    assert (code, again_code) == (1, 1)
    assert counts(first) == (2, 0, 1, 1, 1)
    assert counts(again) == (2, 1, 0, 1, 0)
    assert (
        f"eventstore: failed s3://data/uploads/empty.txt ({empty.event_id}): "
        "ReactorError: empty file"
    ) in err
    failures = outcomes(backend_log, OutcomeKind.FAILED)
    assert [(f.cause_event_id, f.attempt) for f in failures] == [
        (empty.event_id, 1), (empty.event_id, 2),
    ]  # fmt: skip
    deliveries = [
        s.event.record["delivery"]
        for s in backend_log.select_events(EventQuery(types=("Reactor:Failed",)))
    ]
    assert deliveries == [first["run_id"], again["run_id"]]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (("--since", "2026-03-01T12:00:02Z", "--until", "2026-03-01T12:00:06Z"),
         ["uploads/b.txt", "uploads/sub/e.txt"]),
        (("--prefix", "uploads/sub/"), ["uploads/sub/e.txt"]),
        (("--prefix", "upl"), ["uploads/a.txt", "uploads/b.txt", "uploads/sub/e.txt",
                               "uploads/f.txt"]),
        (("--type", "ObjectCreated:Copy"), ["uploads/f.txt"]),
        (("--type", "ObjectCreated:Put", "--since", "2026-03-01T12:00:02Z"),
         ["uploads/b.txt", "uploads/sub/e.txt"]),
        (("--type", "ObjectRemoved:*"), []),
        (("--bucket", "elsewhere"), []),
    ],
)  # fmt: skip
def test_options_narrow_the_history(
    capsys: pytest.CaptureFixture[str],
    backend_url: str,
    backend_log: SqlEventStore,
    s3: Any,
    *,
    options: tuple[str, ...],
    expected: list[str],
) -> None:
    history(s3, backend_log)

    keys = dry_run(capsys, backend_url, "test-upper", "--from", "log", *options)
    code, summary, _ = run(capsys, backend_url, "test-upper", "--from", "log", *options)

    assert keys == expected
    assert code == 0
    assert (summary["considered"], summary["processed"]) == (len(expected), len(expected))
    assert CALLS.keys == expected


def test_a_prefix_outside_the_reactors_is_refused(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore, s3: Any
) -> None:
    history(s3, backend_log)

    code, _, err = run(capsys, backend_url, "test-upper", "--from", "log", "--prefix", "other/")

    assert code == 2
    assert "--prefix 'other/' is outside reactor test-upper's prefix 'uploads/'" in err
    assert CALLS.keys == []
