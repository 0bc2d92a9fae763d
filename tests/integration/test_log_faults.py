"""What the log and its projections do when the database was damaged or a producer lies:
rows cut off the end of the log (then positions reused), and one S3 change arriving twice
with different contents. Both backends."""

import io
import json
import logging
from contextlib import redirect_stderr, redirect_stdout

import pytest
import sqlalchemy as sa

from eventstore import cli
from eventstore.core.events import NewEvent
from eventstore.projections.registry import builtin_projections
from eventstore.store.schema import events as events_table
from eventstore.store.sql import SqlEventStore
from eventstore.wiring import EventStore, event_store_on
from tests.notification_factory import new_events, put_records, s3_record


@pytest.fixture
def url(backend_url: str) -> str:
    return backend_url


@pytest.fixture
def event_store(backend_log: SqlEventStore) -> EventStore:
    return event_store_on(backend_log)


def puts(keys: list[str], start: int = 0) -> list[NewEvent]:
    return new_events(put_records("b", keys, start=start))


def run_cli(url: str, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["--db", url, *args])
    return code, out.getvalue(), err.getvalue()


def cut_off_the_end(log: SqlEventStore, after: int) -> None:
    with log.engine.begin() as connection:
        connection.execute(sa.delete(events_table).where(events_table.c.position > after))


def test_rows_cut_off_and_positions_reused_are_refused_reported_and_rebuilt(
    event_store: EventStore, url: str
) -> None:
    # Given projections caught up over 10 events
    log = event_store.log
    log.append(puts([f"k/{i}" for i in range(10)]))
    assert all(r.error is None for r in event_store.catch_up())
    # When the last 3 rows are cut off and new appends reuse positions 8..10 and beyond
    cut_off_the_end(log, 7)
    log.append(puts([f"new/{i}" for i in range(5)], start=100))
    assert log.head_position() == 12
    reports = {r.name: r for r in event_store.catch_up()}

    # Then no projection moves on past the damage (the new events are not silently skipped)
    assert all("cut off the end of the log" in (r.error or "") for r in reports.values())
    status = event_store.status("object_catalog")
    assert (status.state, status.position) == ("cut-off", 10)
    assert "projections rebuild object_catalog" in (status.last_error or "")
    # and verify, though the chain itself links, says the log is broken, and how
    code, out, _ = run_cli(url, "verify")
    assert code == 1
    assert "BROKEN: projection object_catalog: checkpoint at position 10" in out
    assert "anchor:" not in out
    code, out, _ = run_cli(url, "verify", "--format", "json")
    (report,) = json.loads(out)
    assert code == 1 and not report["ok"]
    assert set(report["projection_faults"]) == {p.name for p in builtin_projections()}
    # and a rebuild recovers: the catalog then holds what the log holds
    code, _, _ = run_cli(url, "projections", "rebuild", "--all")
    assert code == 0
    assert {o.key for o in event_store.objects()} == {
        *(f"k/{i}" for i in range(7)),
        *(f"new/{i}" for i in range(5)),
    }
    assert run_cli(url, "verify")[0] == 0


def test_a_checkpoint_past_the_head_is_refused(event_store: EventStore) -> None:
    log = event_store.log
    log.append(puts(["a", "b", "c"]))
    event_store.catch_up()
    cut_off_the_end(log, 1)

    reports = {r.name: r for r in event_store.catch_up()}

    assert "is ahead of the log's head (1)" in (reports["object_catalog"].error or "")
    assert event_store.status("object_catalog").lag == 0  # never negative


def test_the_same_change_with_other_contents_is_kept_once_counted_and_logged(
    event_store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a stored PUT
    first = s3_record("b", "k", sequencer="0A", size=10, etag="e1")
    log = event_store.log
    log.append(new_events([first]))
    # When the same change (same bucket, key, version, sequencer, name) arrives with
    # another size and etag, next to a true redelivery of another event
    forged = s3_record("b", "k", sequencer="0A", size=99, etag="e2")
    with caplog.at_level(logging.WARNING, logger="eventstore.store.sql"):
        result = log.append(new_events([forged, first]))

    # Then the first stays, both count as duplicates, and the one with other contents as a
    # conflict that is logged with both versions
    assert (result.appended, result.duplicates, result.conflicts) == (0, 2, 1)
    (stored,) = list(log.read())
    assert (stored.event.size, stored.event.etag) == (10, "e1")
    (warning,) = [r for r in caplog.records if "other contents" in r.getMessage()]
    assert warning.received == {"size": 99, "etag": "e2"}  # type: ignore[attr-defined]
    assert warning.stored == {"size": 10, "etag": "e1"}  # type: ignore[attr-defined]


def test_a_query_on_a_projection_that_is_behind_says_so(event_store: EventStore, url: str) -> None:
    log = event_store.log
    log.append(puts(["a", "b"]))
    event_store.catch_up()
    log.append(puts(["c"], start=2))  # appended, not yet caught up (as a consumer may leave it)

    code, out, err = run_cli(url, "objects", "--format", "json")

    assert code == 0
    assert [row["key"] for row in json.loads(out)] == ["a", "b"]
    assert "object_catalog is behind, 1 events behind the log (head 3)" in err
    code, _, err = run_cli(url, "projections", "show", "prefix_stats")
    assert code == 0 and "object_catalog is behind" in err
    assert run_cli(url, "projections", "catch-up")[0] == 0
    code, out, err = run_cli(url, "objects", "--format", "json")
    assert len(json.loads(out)) == 3 and err == ""


def test_ingest_counts_a_conflicting_duplicate(url: str, tmp_path: object) -> None:
    from pathlib import Path

    from tests.notification_factory import notification

    folder = Path(str(tmp_path))
    first = s3_record("b", "k", sequencer="0A", size=10, etag="e1")
    forged = s3_record("b", "k", sequencer="0A", size=99, etag="e2")
    (folder / "first.json").write_text(json.dumps(notification([first])))
    (folder / "forged.json").write_text(json.dumps(notification([forged])))
    assert run_cli(url, "ingest", str(folder / "first.json"))[0] == 0

    code, out, _ = run_cli(url, "ingest", str(folder / "forged.json"))

    assert code == 0
    assert json.loads(out) == {
        "received": 1, "appended": 0, "duplicates": 1, "conflicts": 1, "skipped": 0, "failed": 0,
    }  # fmt: skip
