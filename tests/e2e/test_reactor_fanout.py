"""Reactors on the fan-out, end to end through moto's server: S3 -> SNS (each reactor's
filter policy) -> its SQS queue -> the local event-source mapping -> consumers.reactor -> the
event log (a SQLite file), with the resources created from infra/template.yaml."""

import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from consumers.reactor import handler_for
from eventstore.core.events import NewEvent
from eventstore.core.parsing import parse_sqs_body
from eventstore.local.embedded import embedded_aws
from eventstore.local.poller import EventSource, Handler, SqsPoller, drain
from eventstore.reactors import EventFilter, Reactor, ReactorError, ReactorIO, reactor, unregister
from eventstore.reactors.outcomes import OutcomeKind, RecordedOutcome, read_outcome
from eventstore.store.base import EventQuery
from eventstore.store.sql import SqlEventStore
from tests.e2e.conftest import MAX_RECEIVE_COUNT, Stack

pytestmark = pytest.mark.e2e

PUTS = {
    "uploads/orders.csv": b"id,amount\n1,10\n",
    "uploads/notes.txt": b"hello",
    "uploads/photo.png": b"\x89PNG",
    "reports/q1.csv": b"quarter,total\n1,2\n",
}
COPIES = {  # target: source
    "backup/orders.csv": "uploads/orders.csv",
    "uploads/from-reports.csv": "reports/q1.csv",
}
REACTOR_QUEUES = {
    "put-consumer": "PutQueue",
    "copy-consumer": "CopyQueue",
    "csv-to-json": "CsvToJsonQueue",
    "extract-text": "ExtractTextQueue",
    "copy-to-bucket": "CopyToBucketQueue",
}


class Recorder:
    """Wraps a handler; records the (event name, key) of every S3 event each message carried,
    once per message however often it is delivered, and every response."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.events: Counter[tuple[str, str]] = Counter()
        self.deliveries: Counter[str] = Counter()  # by message id
        self.responses: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        with self._lock:
            for record in event["Records"]:
                message_id = record["messageId"]
                self.deliveries[message_id] += 1
                if self.deliveries[message_id] == 1:
                    delivery = parse_sqs_body(record["body"], message_id=message_id)
                    self.events.update((e.event_name, e.key) for e in delivery.events)
        response = self.handler(event, context)
        with self._lock:
            self.responses.append(response)
        return response


def _upload_all(stack: Stack) -> None:
    for key, body in PUTS.items():
        stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=body)
    for target, source in COPIES.items():
        stack.s3.copy_object(
            Bucket=stack.bucket, Key=target, CopySource={"Bucket": stack.bucket, "Key": source}
        )


def _poller(stack: Stack, queue: str, handler: Handler, *, concurrency: int = 2) -> SqsPoller:
    source = stack.fanout.event_source(queue, concurrency=concurrency)
    return SqsPoller(stack.sqs, source, handler, retry_after=0)


def _reactor_handler(stack: Stack, name: str) -> Handler:
    """The handler the template's function for reactor `name` runs, as the local runner binds
    it (several reactor functions share this process)."""
    consumer = stack.fanout.consumer_of(REACTOR_QUEUES[name])
    assert consumer is not None and consumer.reactor == name
    return consumer.load_handler()


def _outcomes(store: SqlEventStore) -> list[RecordedOutcome]:
    return [read_outcome(s) for s in store.select_events(EventQuery(types=("Reactor:*",)))]


def _s3_events(store: SqlEventStore) -> dict[tuple[str, str], str]:
    """(event name, key) -> event id of the S3 events in the log."""
    return {
        (s.event.event_name, s.event.key): s.event.event_id
        for s in store.select_events(EventQuery(types=("ObjectCreated:*",)))
    }


def _receive_all(stack: Stack, queue_url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while batch := stack.sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    ).get("Messages", []):
        messages.extend(batch)
    return messages


def test_each_reactor_queue_gets_only_what_its_filter_lets_through_and_outcomes_are_logged(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given every reactor queue of the template polled by its function's handler, and a
    # process-wide EVENTSTORE_REACTOR naming another reactor, which a locally bound reactor
    # handler must not follow
    monkeypatch.setenv("EVENTSTORE_REACTOR", "copy-consumer")
    recorders = {name: Recorder(_reactor_handler(stack, name)) for name in REACTOR_QUEUES}
    pollers = [_poller(stack, REACTOR_QUEUES[n], r) for n, r in recorders.items()]

    # When objects are put and copied inside and outside uploads/ and the queues are drained
    _upload_all(stack)
    drain(pollers, timeout=60)

    # Then a put reaches put-consumer and not copy-consumer, a copy the reverse
    puts = {("ObjectCreated:Put", key) for key in PUTS}
    copies = {("ObjectCreated:Copy", key) for key in COPIES}
    # (the reactors' outputs come back through the fan-out as Puts too, outside uploads/)
    outputs = {
        (name, key)
        for name, key in recorders["put-consumer"].events
        if key.startswith(("converted/", "extracted/"))
    }
    assert ("ObjectCreated:Put", "converted/orders.jsonl") in outputs
    assert set(recorders["put-consumer"].events) == puts | outputs
    puts |= outputs
    assert set(recorders["copy-consumer"].events) == copies
    # and only new objects under uploads/ reach csv-to-json, extract-text and copy-to-bucket
    # (their policies filter on the prefix; csv-to-json and extract-text keep their suffixes
    # in the handler), never a tagging, nor reports/ or backup/
    # and so no reactor reacts to its own outputs
    uploads = {(name, key) for name, key in puts | copies if key.startswith("uploads/")}
    for name in ("csv-to-json", "extract-text", "copy-to-bucket"):
        assert set(recorders[name].events) == uploads, name
    # each message once per event (no message carries two)
    assert all(count == 1 for r in recorders.values() for count in r.events.values())

    # and the reactor functions appended each S3 event they received, then their outcomes:
    # one Reactor:Processed per event, caused by it, recorded by the reactor it was bound to
    store = stack.store()
    s3_events = _s3_events(store)
    assert set(s3_events) == puts | copies
    processed = Counter(
        (o.reactor, o.cause_event_id)
        for o in _outcomes(store)
        if o.kind is OutcomeKind.PROCESSED and o.reactor in ("put-consumer", "copy-consumer")
    )
    expected = Counter(
        [("put-consumer", s3_events[p]) for p in puts]
        + [("copy-consumer", s3_events[c]) for c in copies]
    )
    assert processed == expected
    assert not [o for o in _outcomes(store) if o.kind is OutcomeKind.FAILED]
    assert all(p.stats.failed == 0 for p in pollers)
    assert store.verify().ok


class RefusesPoison(Reactor):
    """Handles every new object under poison-test/, and fails on a key named poison*."""

    name = "e2e-refuses-poison"
    wants: ClassVar[EventFilter] = EventFilter(("ObjectCreated:*",), prefix="poison-test/")

    def react(self, event: NewEvent, io: ReactorIO) -> None:
        if event.key.rpartition("/")[2].startswith("poison"):
            raise ReactorError(f"refusing {event.key}")
        io.details["key"] = event.key


@pytest.fixture
def refuses_poison() -> Iterator[type[Reactor]]:
    # Registered for the test only, not at import: a reactor registered in this process and
    # missing from the template is what the drift check reports (test_reactor_template.py).
    reactor(RefusesPoison)
    yield RefusesPoison
    unregister(RefusesPoison.name)


def test_a_poison_event_fails_alone_is_retried_and_dead_lettered(
    stack: Stack, refuses_poison: type[Reactor]
) -> None:
    # Given a test reactor deployed like the template's: its own queue with a dead-letter queue
    # after MAX_RECEIVE_COUNT receives, subscribed to the topic with its own filter policy
    dead = stack.sqs.create_queue(QueueName="e2e-refuses-poison-dlq")["QueueUrl"]
    dead_arn = stack.sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = {"deadLetterTargetArn": dead_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
    queue = stack.sqs.create_queue(
        QueueName="e2e-refuses-poison", Attributes={"RedrivePolicy": json.dumps(redrive)}
    )["QueueUrl"]
    queue_arn = stack.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    stack.sns().subscribe(
        TopicArn=stack.fanout.topics["Topic"],
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={
            "RawMessageDelivery": "true",
            "FilterPolicyScope": "MessageBody",
            "FilterPolicy": json.dumps(refuses_poison.wants.filter_policy()),
        },
    )
    recorder = Recorder(handler_for(refuses_poison.name))
    source = EventSource(queue_url=queue, queue_arn=queue_arn, function_name="e2e-refuses-poison")
    poller = SqsPoller(stack.sqs, source, recorder, retry_after=0)

    # When a good object and a poison one are uploaded and the queue is drained (failed
    # messages retried at once)
    for key in ("poison-test/good.txt", "poison-test/poison.txt", "elsewhere/poison.txt"):
        stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=b"x")
    drain([poller], timeout=60)

    # Then only the poison message is in the dead-letter queue, after MAX_RECEIVE_COUNT receives
    (dead_letter,) = _receive_all(stack, dead)
    (event,) = parse_sqs_body(dead_letter["Body"], message_id=dead_letter["MessageId"]).events
    assert event.key == "poison-test/poison.txt"
    assert recorder.deliveries[dead_letter["MessageId"]] == MAX_RECEIVE_COUNT
    # and each response named only the poison message, never its batch mate
    failed = {f["itemIdentifier"] for r in recorder.responses for f in r["batchItemFailures"]}
    assert failed == {dead_letter["MessageId"]}
    # and the log holds one failure per attempt, the good event processed once, nothing else
    store = stack.store()
    outcomes = _outcomes(store)
    assert sorted((o.kind, o.cause_key, o.attempt) for o in outcomes) == sorted(
        [(OutcomeKind.PROCESSED, "poison-test/good.txt", None)]
        + [
            (OutcomeKind.FAILED, "poison-test/poison.txt", attempt)
            for attempt in range(1, MAX_RECEIVE_COUNT + 1)
        ]
    )
    failures = [o for o in outcomes if o.kind is OutcomeKind.FAILED]
    assert {o.reason for o in failures} == {"ReactorError: refusing poison-test/poison.txt"}
    assert {o.reactor for o in outcomes} == {refuses_poison.name}
    assert store.verify().ok


class LosesFirstResponse:
    """The real handler, whose success on each message's first delivery is lost (reported as a
    failure, as when Lambda's response never reaches the poller): SQS delivers it again."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: set[str] = set()
        self.responses: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        response = self.handler(event, context)
        with self._lock:
            self.responses.append(response)
            first = [r["messageId"] for r in event["Records"] if r["messageId"] not in self.seen]
            self.seen.update(first)
        return {"batchItemFailures": [{"itemIdentifier": m} for m in first]}


def test_a_redelivered_message_records_its_outcome_once(stack: Stack) -> None:
    # Given put-consumer's function on its queue, each message delivered a second time after
    # its first delivery was handled and recorded
    handler = LosesFirstResponse(_reactor_handler(stack, "put-consumer"))
    poller = _poller(stack, "PutQueue", handler)

    # When objects are uploaded and the queue is drained
    for key, body in PUTS.items():
        stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=body)
    drain([poller], timeout=60)

    # Then every message was handled twice, successfully each time
    assert poller.stats.received == poller.stats.deleted + poller.stats.failed
    assert poller.stats.deleted == len(PUTS) and poller.stats.failed >= len(PUTS)
    assert all(r == {"batchItemFailures": []} for r in handler.responses)
    # and each upload's event is in the log once, processed once
    store = stack.store()
    s3_events = _s3_events(store)
    assert set(s3_events) == {("ObjectCreated:Put", key) for key in PUTS}
    outcomes = _outcomes(store)
    assert sorted(o.cause_event_id for o in outcomes) == sorted(s3_events.values())
    assert {(o.kind, o.reactor) for o in outcomes} == {(OutcomeKind.PROCESSED, "put-consumer")}
    # and nothing was dead-lettered
    dead = stack.fanout.queue_for_dead_letters_of("PutQueue")
    assert dead is not None and _receive_all(stack, dead.url) == []
    assert store.verify().ok


def test_the_embedded_server_keys_notifications_as_s3_does_also_beside_another(
    stack: Stack,
) -> None:
    # Given a second embedded server started and stopped while the session's one runs
    with embedded_aws():
        pass
    # When an object whose key has slashes, a space and a plus is put
    stack.s3.put_object(Bucket=stack.bucket, Key="uploads/a b+c.txt", Body=b"x")
    # Then its notification keys it as S3 does: form-encoded, slashes kept (what key-prefix
    # filter policies match)
    bodies = [
        json.loads(m["Body"]) for m in _receive_all(stack, stack.fanout.queues["IngestQueue"].url)
    ]
    keys = [
        record["s3"]["object"]["key"]
        for body in bodies
        for record in body.get("Records", [])
        if record["eventName"] == "ObjectCreated:Put"
    ]
    assert keys == ["uploads/a+b%2Bc.txt"]


def test_the_built_in_pipelines_chain_dead_letter_a_broken_csv_and_rerun_from_the_log(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from eventstore.cli import main
    from eventstore.reactors.builtin.csv_to_json import CsvToJsonReactor

    # Given every reactor function polled on its queue (failed messages retried at once)
    pollers = [
        _poller(stack, queue, _reactor_handler(stack, name))
        for name, queue in REACTOR_QUEUES.items()
    ]
    # When a CSV, a CSV with a short row and a text file are uploaded, and the queues drained
    uploads = {
        "uploads/orders.csv": b"id;amount\n1;10\n2;20\n",
        "uploads/broken.csv": b"id,amount\n1,10\n2\n",
        "uploads/notes.txt": b"the quarterly widget review",
    }
    for key, body in uploads.items():
        stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=body)
    drain(pollers, timeout=60)

    # Then the CSV became JSON lines, a message describes it, the text is searchable, and the
    # uploads were copied to the second bucket
    converted = stack.s3.get_object(Bucket=stack.bucket, Key="converted/orders.jsonl")
    lines = converted["Body"].read().decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": "1", "amount": "10"}, {"id": "2", "amount": "20"},
    ]  # fmt: skip
    (message,) = _receive_all(stack, stack.fanout.queues["CsvOutputQueue"].url)
    assert json.loads(message["Body"])["rows"] == 2
    copies = stack.s3.list_objects_v2(Bucket=stack.fanout.buckets["CopyTargetBucket"])
    assert {o["Key"] for o in copies["Contents"]} == set(uploads)
    # and the broken CSV failed alone, on every attempt, into csv-to-json's dead-letter queue
    dead = stack.fanout.queue_for_dead_letters_of("CsvToJsonQueue")
    assert dead is not None
    (dead_letter,) = _receive_all(stack, dead.url)
    assert "uploads/broken.csv" in dead_letter["Body"]
    store = stack.store()
    failures = [o for o in _outcomes(store) if o.kind is OutcomeKind.FAILED]
    assert sorted((o.reactor, o.cause_key, o.attempt) for o in failures) == [
        ("csv-to-json", "uploads/broken.csv", n) for n in range(1, MAX_RECEIVE_COUNT + 1)
    ]
    assert {o.reason for o in failures} == {"ReactorError: line 3: 1 field, the header has 2"}

    # and the commands a person runs show it: search, trace, reactors status (exit 1)
    db = ["--db", stack.db_url]
    # (the functions catch projections up within their thresholds; a person may be quicker)
    assert main([*db, "projections", "catch-up"]) == 0
    capsys.readouterr()
    assert main([*db, "search", "widget"]) == 0
    assert "uploads/notes.txt" in capsys.readouterr().out
    assert main([*db, "trace", f"s3://{stack.bucket}/uploads/broken.csv"]) == 0
    traced = capsys.readouterr().out
    assert f"csv-to-json v1: FAILED ({MAX_RECEIVE_COUNT} attempt(s), not processed)" in traced
    assert "extract-text v1: processed" in traced
    assert main([*db, "trace", f"s3://{stack.bucket}/converted/orders.jsonl"]) == 0
    assert "uploads/orders.csv" in capsys.readouterr().out.split("events:")[0]  # derived from
    assert main([*db, "reactors", "status", "csv-to-json", "--format", "json"]) == 1
    (status,) = json.loads(capsys.readouterr().out)
    assert (status["processed"], status["failing_events"]) == (1, 1)

    # and re-running csv-to-json over the log does nothing new for what it processed, and the
    # broken CSV fails again (exit 1)
    assert main([*db, "reactors", "run", "csv-to-json", "--from", "log"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert (summary["processed"], summary["failed"], summary["already_processed"]) == (0, 1, 1)
    # while a new version (a bug fix) writes the same output again: same key, same content
    monkeypatch.setattr(CsvToJsonReactor, "version", 2)
    assert main([*db, "reactors", "run", "csv-to-json", "--from", "log"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert (summary["processed"], summary["failed"]) == (1, 1)
    versions = stack.s3.list_object_versions(Bucket=stack.bucket, Prefix="converted/")["Versions"]
    assert {v["Key"] for v in versions} == {"converted/orders.jsonl"}
    assert len(versions) == 2 and len({v["ETag"] for v in versions}) == 1
    assert store.verify().ok
