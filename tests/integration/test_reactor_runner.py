"""A reactor run over S3 events records its outcomes in the log: once per (reactor, version,
event), each output with its cause, each failed attempt; on every backend."""

from typing import ClassVar

from eventstore.core.events import NewEvent, Source
from eventstore.reactors import EventFilter, Reactor, ReactorError, ReactorIO
from eventstore.reactors.outcomes import OutcomeKind, processed_id, read_outcome
from eventstore.reactors.runner import ReactorRunner
from eventstore.store.base import EventQuery
from eventstore.store.sql import SqlEventStore
from eventstore.wiring import event_store_on
from tests.helpers import make_event
from tests.reactor_fakes import InMemoryMessages, InMemoryObjectStore


class Shout(Reactor):
    """Upper-cases uploads/*.txt into shouted/…; refuses empty files."""

    name = "shout"
    version = 1
    wants: ClassVar[EventFilter] = EventFilter(prefix="uploads/", suffixes=(".txt",))

    def react(self, event: NewEvent, io: ReactorIO) -> None:
        with io.open_input() as body:
            text = body.read()
        if not text:
            raise ReactorError("empty file")
        io.write_object(event.bucket, "shouted/" + event.key.removeprefix("uploads/"), text.upper())
        io.send_message("https://sqs.local/out", event.key)


def _upload(objects: InMemoryObjectStore, key: str, body: bytes, seconds: float = 0) -> NewEvent:
    output = objects.put("bucket", key, body)
    return make_event(
        "ObjectCreated:Put", key=key, version_id=output.version_id, sequencer=f"{int(seconds):04X}",
        seconds=seconds, size=output.size, etag=output.etag,
    )  # fmt: skip


def _runner(log: SqlEventStore, objects: InMemoryObjectStore) -> ReactorRunner:
    return ReactorRunner(Shout(), log, objects, InMemoryMessages())


def test_outputs_are_recorded_with_their_cause_once(backend_log: SqlEventStore) -> None:
    # Given an upload the reactor wants, and one it does not
    objects = InMemoryObjectStore()
    wanted = _upload(objects, "uploads/a.txt", b"hello")
    other = _upload(objects, "uploads/a.csv", b"x,y", seconds=1)
    backend_log.append([wanted, other])
    runner = _runner(backend_log, objects)

    # When it runs, and then the same events come again (an SQS redelivery)
    pending = runner.unprocessed([wanted, other])
    reactions = [runner.react(e, delivery="m1", attempt=1) for e in pending]
    first = runner.record(reactions)
    again = runner.unprocessed([wanted, other])

    # Then the output exists, one produced and one processed outcome name their cause
    assert [e.event_id for e in pending] == [wanted.event_id]
    assert objects.body("bucket", "shouted/a.txt") == b"HELLO"
    kinds = [s.event.event_name for s in first.stored]
    assert kinds == [OutcomeKind.PRODUCED, OutcomeKind.PROCESSED]
    produced = read_outcome(first.stored[0])
    assert (produced.bucket, produced.key, produced.size) == ("bucket", "shouted/a.txt", 5)
    assert produced.cause_event_id == wanted.event_id
    assert all(s.event.causation_id == wanted.event_id for s in first.stored)
    assert all(s.event.source is Source.REACTOR for s in first.stored)
    processed = read_outcome(first.stored[1])
    assert processed.messages == ({"queueUrl": "https://sqs.local/out", "messageId": "m-1"},)
    # and the redelivered event is not processed again; recording twice stores nothing
    assert again == []
    assert runner.record(reactions).appended == 0
    assert backend_log.verify().ok


def test_a_failure_is_recorded_per_attempt_and_the_event_stays_unprocessed(
    backend_log: SqlEventStore,
) -> None:
    objects = InMemoryObjectStore()
    empty = _upload(objects, "uploads/empty.txt", b"")
    backend_log.append([empty])
    runner = _runner(backend_log, objects)

    reactions = [runner.react(empty, delivery="m1", attempt=n) for n in (1, 2)]
    recorded = runner.record(reactions)

    assert all(not r.ok for r in reactions)
    assert reactions[0].error == "ReactorError: empty file"
    outcomes = [read_outcome(s) for s in recorded.stored]
    assert [(o.kind, o.attempt, o.reason) for o in outcomes] == [
        (OutcomeKind.FAILED, 1, "ReactorError: empty file"),
        (OutcomeKind.FAILED, 2, "ReactorError: empty file"),
    ]
    assert runner.unprocessed([empty]) == [empty]
    assert ("bucket", "shouted/empty.txt") not in objects.objects


def test_a_new_version_processes_again(backend_log: SqlEventStore) -> None:
    objects = InMemoryObjectStore()
    upload = _upload(objects, "uploads/b.txt", b"b")
    backend_log.append([upload])
    runner = _runner(backend_log, objects)
    runner.record([runner.react(upload, delivery="m1", attempt=1)])

    class ShoutV2(Shout):
        version = 2

    second = ReactorRunner(ShoutV2(), backend_log, objects, InMemoryMessages())
    assert second.unprocessed([upload]) == [upload]
    assert processed_id("shout", 1, upload.event_id) != processed_id("shout", 2, upload.event_id)


def test_outcomes_leave_the_catalog_alone_and_fold_into_reactor_outcomes(
    backend_log: SqlEventStore,
) -> None:
    objects = InMemoryObjectStore()
    upload = _upload(objects, "uploads/c.txt", b"c")
    backend_log.append([upload])
    runner = _runner(backend_log, objects)
    runner.record([runner.react(upload, delivery="m1", attempt=1)])

    store = event_store_on(backend_log)
    store.catch_up()

    # The catalog holds the upload only: the reactor's output has no S3 event yet
    assert [(e.key, e.last_event_name) for e in store.objects()] == [
        ("uploads/c.txt", "ObjectCreated:Put")
    ]
    with backend_log.engine.connect() as connection:
        from eventstore.projections.reactor_outcomes import reactor_outcomes as table

        rows = connection.execute(table.select().order_by(table.c.position)).all()
    assert [(r.kind, r.reactor, r.key, r.cause_key) for r in rows] == [
        ("Reactor:Produced", "shout", "shouted/c.txt", "uploads/c.txt"),
        ("Reactor:Processed", "shout", "uploads/c.txt", "uploads/c.txt"),
    ]
    audit = backend_log.select_events(EventQuery(types=("Reactor:*",)))
    assert len(audit) == 2
