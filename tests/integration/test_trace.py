"""`eventstore trace`: an upload's lineage forwards through every derived object, and a
derived object's back to the upload; outputs matched by version id or ETag, outputs not seen
yet, failures, cycles and bounds; on every backend."""

import json
from typing import Any, ClassVar

import pytest

from eventstore import cli
from eventstore.core.events import NewEvent
from eventstore.reactors import EventFilter, Reactor, ReactorIO
from eventstore.reactors.trace import Truncated, lineage_document, trace
from eventstore.store.sql import SqlEventStore
from eventstore.wiring import event_store_on
from tests.integration.lineage_support import (
    BUCKET,
    CsvToLines,
    Pipeline,
    Summarise,
    UnversionedObjectStore,
    produced,
)
from tests.notification_factory import new_events, s3_record

EVENT_FIELDS = {
    "position", "event_id", "event_name", "event_time", "bucket", "key", "version_id",
    "sequencer", "size", "etag", "principal_id", "source_ip", "request_id", "region", "source",
}  # fmt: skip
CSV = b"name,qty\napple,3\npear,5\n"


def run_trace(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = cli.main(["--db", url, "trace", *args])
    out, err = capsys.readouterr()
    return code, out, err


def trace_json(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> Any:
    code, out, err = run_trace(capsys, url, *args, "--format", "json")
    assert code == 0, err
    assert err == ""
    return json.loads(out)


def caught_up(log: SqlEventStore) -> None:
    event_store_on(log).catch_up()


def chain(pipeline: Pipeline) -> tuple[NewEvent, NewEvent, NewEvent]:
    """upload -> converted (its S3 event arrives) -> summary (its S3 event arrives)."""
    upload = pipeline.upload("uploads/a.csv", CSV)
    converted = pipeline.arrive(produced(pipeline.react(CsvToLines(), upload)))
    summary = pipeline.arrive(produced(pipeline.react(Summarise(), converted)))
    return upload, converted, summary


def test_trace_follows_an_upload_to_every_derived_object(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore
) -> None:
    # Given an upload converted by one reactor, whose output a second reactor summarised
    pipeline = Pipeline(backend_log)
    upload, converted, summary = chain(pipeline)
    caught_up(backend_log)

    # When the upload is traced
    doc = trace_json(capsys, backend_url, f"s3://{BUCKET}/uploads/a.csv")

    # Then the tree goes upload -> reactor -> output -> its S3 event -> reactor -> output
    assert (doc["bucket"], doc["key"], doc["version_id"], doc["lag"]) == (
        BUCKET, "uploads/a.csv", None, 0,
    )  # fmt: skip
    assert doc["derived_from"] == []
    (event,) = doc["events"]
    assert set(event) == EVENT_FIELDS | {"truncated", "reactors"}
    assert (event["event_id"], event["event_name"], event["truncated"]) == (
        upload.event_id, "ObjectCreated:Put", None,
    )  # fmt: skip
    (handling,) = event["reactors"]
    assert (handling["reactor"], handling["reactor_version"], handling["status"]) == (
        "test-csv-lines", 1, "processed",
    )  # fmt: skip
    assert handling["failures"] == []
    assert handling["processed"]["at"] == "2026-03-01T12:00:02.000Z"
    (output,) = handling["outputs"]
    assert (output["key"], output["version_id"], output["seen"]) == (
        "converted/a.jsonl", converted.version_id, True,
    )  # fmt: skip
    (derived,) = output["events"]
    assert derived["event_id"] == converted.event_id
    (second,) = derived["reactors"]
    assert second["reactor"] == "test-summarise"
    (grandchild,) = second["outputs"]
    assert (grandchild["key"], grandchild["seen"]) == ("summaries/a.txt", True)
    (last,) = grandchild["events"]
    assert (last["event_id"], last["reactors"], last["truncated"]) == (summary.event_id, [], None)


def test_trace_goes_back_from_a_derived_object_to_the_upload(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore
) -> None:
    pipeline = Pipeline(backend_log)
    upload, converted, summary = chain(pipeline)
    caught_up(backend_log)

    doc = trace_json(capsys, backend_url, f"s3://{BUCKET}/summaries/a.txt")

    (event,) = doc["events"]
    assert (event["event_id"], event["reactors"]) == (summary.event_id, [])
    (origin,) = doc["derived_from"]
    assert (origin["reactor"], origin["seen"], origin["truncated"]) == (
        "test-summarise",
        True,
        None,
    )
    assert origin["output"]["version_id"] == summary.version_id
    assert origin["cause"]["event_id"] == converted.event_id
    assert set(origin["cause"]) == EVENT_FIELDS
    (earlier,) = origin["derived_from"]
    assert earlier["reactor"] == "test-csv-lines"
    assert (earlier["cause"]["event_id"], earlier["cause"]["key"]) == (
        upload.event_id, "uploads/a.csv",
    )  # fmt: skip
    assert (earlier["derived_from"], earlier["truncated"]) == ([], None)


def test_the_table_is_an_indented_tree_both_ways(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore
) -> None:
    pipeline = Pipeline(backend_log)
    _, converted, _ = chain(pipeline)
    caught_up(backend_log)

    code, forwards, _ = run_trace(capsys, backend_url, f"s3://{BUCKET}/uploads/a.csv")
    assert code == 0
    lines = forwards.splitlines()
    assert lines[0] == "s3://data/uploads/a.csv"
    assert lines[1] == "derived from: nothing a reactor recorded (an original upload)"
    assert lines[2] == "events:"
    assert lines[3].startswith("  #1  2026-03-01T12:00:01.000Z  ObjectCreated:Put  version v1")
    assert lines[4].startswith("    test-csv-lines v1: processed at 2026-03-01T12:00:02.000Z in ")
    assert lines[5].startswith("      produced s3://data/converted/a.jsonl  version v2  etag ")
    assert lines[6].startswith(f"        #{_position(backend_log, converted)}  ")
    assert lines[7].startswith("          test-summarise v1: processed at ")
    assert lines[8].startswith("            produced s3://data/summaries/a.txt  version v3")
    assert lines[9].startswith("              #")
    assert lines[10] == "                no reactor has handled this event"
    assert len(lines) == 11

    code, backwards, _ = run_trace(capsys, backend_url, f"s3://{BUCKET}/summaries/a.txt")
    assert code == 0
    lines = backwards.splitlines()
    assert lines[0] == "s3://data/summaries/a.txt"
    assert lines[1] == "derived from:"
    assert lines[2] == "  version v3 made by test-summarise v1 at 2026-03-01T12:00:04.000Z from:"
    assert lines[3].startswith(
        f"    #{_position(backend_log, converted)}  2026-03-01T12:00:03.000Z"
    )
    assert "ObjectCreated:Put  s3://data/converted/a.jsonl  version v2" in lines[3]
    assert lines[4] == "      made by test-csv-lines v1 at 2026-03-01T12:00:02.000Z from:"
    assert lines[5].startswith("        #1  2026-03-01T12:00:01.000Z  ObjectCreated:Put")
    assert "s3://data/uploads/a.csv  version v1" in lines[5]
    assert lines[6] == "          (an original upload)"
    assert lines[7] == "events:"


def _position(log: SqlEventStore, event: NewEvent) -> int:
    (stored,) = [s for s in log.history(event.bucket, event.key) if s.event == event]
    return stored.position


def test_an_output_whose_event_has_not_arrived_is_shown_as_not_yet_seen(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore
) -> None:
    # Given a conversion whose output's S3 event is still on its way through the fan-out
    pipeline = Pipeline(backend_log)
    upload = pipeline.upload("uploads/a.csv", CSV)
    pipeline.react(CsvToLines(), upload)
    caught_up(backend_log)

    # When the upload and the output are traced
    code, table, _ = run_trace(capsys, backend_url, f"s3://{BUCKET}/uploads/a.csv")
    doc = trace_json(capsys, backend_url, f"s3://{BUCKET}/converted/a.jsonl")

    # Then the output is there, marked as not yet seen, and it is known where it came from
    assert code == 0
    assert "produced s3://data/converted/a.jsonl  version v2" in table
    assert table.splitlines()[5].endswith("(not yet seen in the log)")
    assert doc["events"] == []
    (origin,) = doc["derived_from"]
    assert (origin["seen"], origin["cause"]["event_id"]) == (False, upload.event_id)
    code, table, _ = run_trace(capsys, backend_url, f"s3://{BUCKET}/converted/a.jsonl")
    assert table.splitlines()[2].startswith(
        "  version v2 (not yet seen in the log) made by test-csv"
    )
    assert "events: none in the log yet" in table


def test_outputs_of_an_unversioned_bucket_are_matched_by_etag(
    backend_log: SqlEventStore,
) -> None:
    # Given a bucket without versioning: neither writes nor notifications carry version ids
    pipeline = Pipeline(backend_log, UnversionedObjectStore())
    upload = pipeline.upload("uploads/a.csv", CSV)
    output = produced(pipeline.react(CsvToLines(), upload))
    converted = pipeline.arrive(output)
    # and someone overwrites the output with other content
    overwrite = pipeline.s3_event(BUCKET, output.key, None, "0" * 32, 7)
    caught_up(backend_log)

    lineage = trace(backend_log, BUCKET, "uploads/a.csv")
    back = trace(backend_log, BUCKET, output.key)

    assert (upload.version_id, converted.version_id, output.version_id) == (None, None, None)
    (event,) = lineage.events
    (handling,) = event.handlings
    (traced_output,) = handling.outputs
    assert [t.stored.event.event_id for t in traced_output.events] == [converted.event_id]
    # backwards: the converted write has an origin, the overwrite is the user's
    assert [e.stored.event.event_id for e in back.events] == [
        converted.event_id, overwrite.event_id,
    ]  # fmt: skip
    (origin,) = back.derived_from
    assert origin.cause is not None
    assert origin.cause.event.event_id == upload.event_id


def test_a_failed_event_shows_each_attempt_and_its_reason(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore
) -> None:
    # Given an empty CSV the reactor failed on twice (SQS delivered it twice)
    pipeline = Pipeline(backend_log)
    empty = pipeline.upload("uploads/empty.csv", b"")
    pipeline.react(CsvToLines(), empty, attempt=1)
    pipeline.react(CsvToLines(), empty, attempt=2)
    caught_up(backend_log)

    doc = trace_json(capsys, backend_url, f"s3://{BUCKET}/uploads/empty.csv")
    code, table, _ = run_trace(capsys, backend_url, f"s3://{BUCKET}/uploads/empty.csv")

    (handling,) = doc["events"][0]["reactors"]
    assert (handling["status"], handling["processed"], handling["outputs"]) == ("failed", None, [])
    nothing_left = {"partial_outputs": [], "partial_output_count": 0}
    assert handling["failures"] == [
        {"at": "2026-03-01T12:00:02.000Z", "attempt": 1, "reason": "ReactorError: empty file",
         **nothing_left},
        {"at": "2026-03-01T12:00:03.000Z", "attempt": 2, "reason": "ReactorError: empty file",
         **nothing_left},
    ]  # fmt: skip
    assert code == 0
    assert table.splitlines()[4:] == [
        "    test-csv-lines v1: FAILED (2 attempt(s), not processed)",
        "      failed attempt 1 at 2026-03-01T12:00:02.000Z: ReactorError: empty file",
        "      failed attempt 2 at 2026-03-01T12:00:03.000Z: ReactorError: empty file",
    ]


class SplitThenFail(Reactor):
    """Writes a part per row, and fails on a row without a quantity: the parts written
    before it stay in S3."""

    name = "test-split"
    version = 1
    wants: ClassVar[EventFilter] = EventFilter(prefix="uploads/", suffixes=(".csv",))

    def react(self, event: NewEvent, io_: ReactorIO) -> None:
        with io_.open_input() as body:
            rows = body.read().decode().splitlines()[1:]
        for number, row in enumerate(rows, start=1):
            name, quantity = row.split(",")
            if not quantity:
                raise ValueError(f"row {number} has no quantity")
            io_.write_object(event.bucket, f"parts/{name}.txt", quantity.encode())


def test_a_failed_attempt_records_the_outputs_it_left_behind(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore
) -> None:
    # Given an attempt that wrote two objects, then failed
    pipeline = Pipeline(backend_log)
    upload = pipeline.upload("uploads/parts.csv", b"name,qty\napple,3\npear,5\nplum,\n")
    reaction = pipeline.react(SplitThenFail(), upload)
    assert reaction.error == "ValueError: row 3 has no quantity"
    caught_up(backend_log)
    (failure,) = reaction.outcomes
    # Then its outcome in the log names them, as S3 reported them
    left = failure.record["partialOutputs"]
    assert [(o["bucket"], o["key"]) for o in left] == [
        (BUCKET, "parts/apple.txt"), (BUCKET, "parts/pear.txt"),
    ]  # fmt: skip
    assert all(o["versionId"] and o["eTag"] and o["size"] == 1 for o in left)
    assert failure.record["partialOutputCount"] == 2
    # and a trace of the upload shows them under the failed attempt
    doc = trace_json(capsys, backend_url, f"s3://{BUCKET}/uploads/parts.csv")
    (handling,) = doc["events"][0]["reactors"]
    (shown,) = handling["failures"]
    assert [(o["key"], o["version_id"], o["size"]) for o in shown["partial_outputs"]] == [
        (o["key"], o["versionId"], 1) for o in left
    ]
    assert shown["partial_output_count"] == 2
    _, table, _ = run_trace(capsys, backend_url, f"s3://{BUCKET}/uploads/parts.csv")
    lines = table.splitlines()
    at = lines.index(next(line for line in lines if "failed attempt 1" in line))
    assert lines[at + 1].startswith(f"        left behind s3://{BUCKET}/parts/apple.txt  version ")
    assert lines[at + 2].startswith(f"        left behind s3://{BUCKET}/parts/pear.txt  version ")


def test_an_event_no_reactor_handled_says_so_and_version_selects_one_version(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore
) -> None:
    pipeline = Pipeline(backend_log)
    first = pipeline.upload("uploads/a.csv", CSV)
    second = pipeline.upload("uploads/a.csv", CSV + b"plum,1\n")
    pipeline.react(CsvToLines(), first)
    caught_up(backend_log)

    everything = trace_json(capsys, backend_url, f"s3://{BUCKET}/uploads/a.csv")
    only = trace_json(
        capsys, backend_url, f"s3://{BUCKET}/uploads/a.csv", "--version", str(second.version_id)
    )
    code, table, _ = run_trace(
        capsys, backend_url, f"s3://{BUCKET}/uploads/a.csv", "--version", str(second.version_id)
    )

    assert code == 0
    assert [len(e["reactors"]) for e in everything["events"]] == [1, 0]
    assert only["version_id"] == second.version_id
    assert [e["event_id"] for e in only["events"]] == [second.event_id]
    assert table.splitlines()[-1] == "    no reactor has handled this event"


def test_an_unknown_object_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore
) -> None:
    Pipeline(backend_log).upload("uploads/a.csv", CSV)
    caught_up(backend_log)

    missing = run_trace(capsys, backend_url, f"s3://{BUCKET}/uploads/missing.csv")
    no_version = run_trace(capsys, backend_url, f"s3://{BUCKET}/uploads/a.csv", "--version", "nope")

    assert missing == (1, "", "eventstore: no events of s3://data/uploads/missing.csv in the log\n")
    assert no_version[0] == 1
    assert "s3://data/uploads/a.csv version nope" in no_version[2]


def test_a_projection_behind_the_log_is_said_and_its_lag_given(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore
) -> None:
    # Given outcomes the reactor_outcomes projection has not folded yet
    pipeline = Pipeline(backend_log)
    upload = pipeline.upload("uploads/a.csv", CSV)
    caught_up(backend_log)
    pipeline.react(CsvToLines(), upload)

    code, out, err = run_trace(
        capsys, backend_url, f"s3://{BUCKET}/uploads/a.csv", "--format", "json"
    )

    assert code == 0
    assert "projection reactor_outcomes is behind, 2 events behind the log" in err
    assert json.loads(out)["lag"] == 2


def test_keys_with_control_characters_are_escaped_in_the_table(
    capsys: pytest.CaptureFixture[str], backend_url: str, backend_log: SqlEventStore
) -> None:
    key = "uploads/\x1b[31mred\u202e.csv"
    Pipeline(backend_log).upload(key, CSV)
    caught_up(backend_log)

    code, out, _ = run_trace(capsys, backend_url, f"s3://{BUCKET}/{key}")

    assert code == 0
    assert out.splitlines()[0] == "s3://data/uploads/\\x1b[31mred\\u202e.csv"
    assert "\x1b" not in out and "\u202e" not in out


class Mirror(Reactor):
    """a/X <-> b/X by server-side copy: in an unversioned bucket the copy back has the ETag
    of the original, so the original matches as an output of its own descendant."""

    name = "test-mirror"
    wants: ClassVar[EventFilter] = EventFilter()

    def react(self, event: NewEvent, io: ReactorIO) -> None:
        other = "b/" if event.key.startswith("a/") else "a/"
        io.copy_input(event.bucket, other + event.key[2:])


def test_cycles_are_cut_and_depth_is_bounded(backend_log: SqlEventStore) -> None:
    pipeline = Pipeline(backend_log, UnversionedObjectStore())
    original = pipeline.upload("a/k", b"same bytes")
    mirrored = pipeline.arrive(produced(pipeline.react(Mirror(), original)))
    back = pipeline.arrive(produced(pipeline.react(Mirror(), mirrored)))
    caught_up(backend_log)

    lineage = trace(backend_log, BUCKET, "a/k")
    shallow = trace(backend_log, BUCKET, "a/k", max_depth=1)

    first, second = lineage.events
    assert (first.stored.event, second.stored.event) == (original, back)
    b_event = first.handlings[0].outputs[0].events[0]
    assert b_event.stored.event == mirrored
    copies_back = b_event.handlings[0].outputs[0].events
    assert [(t.stored.event, t.truncated) for t in copies_back] == [
        (original, Truncated.CYCLE), (back, None),
    ]  # fmt: skip
    # both writes of a/k carry the copy's ETag, so both are derived from b/k; walking back
    # reaches a/k's original again and stops there
    origin = lineage.derived_from[0]
    assert origin.cause is not None and origin.cause.event == mirrored
    assert origin.derived_from[0].derived_from[0].truncated is Truncated.CYCLE
    document = json.loads(json.dumps(lineage_document(lineage)))
    assert document["events"][0]["reactors"][0]["outputs"][0]["events"][0]["event_id"] == (
        mirrored.event_id
    )
    (shallow_b,) = shallow.events[0].handlings[0].outputs[0].events
    assert (shallow_b.truncated, shallow_b.handlings) == (Truncated.DEPTH, ())


def test_a_trace_before_any_reactor_ran_shows_the_events(backend_log: SqlEventStore) -> None:
    # No reactor_outcomes table yet: the projection never ran
    (event,) = new_events([s3_record(BUCKET, "plain.txt", sequencer="01")])
    backend_log.append([event])

    lineage = trace(backend_log, BUCKET, "plain.txt")

    assert [(t.stored.event, t.handlings) for t in lineage.events] == [(event, ())]
