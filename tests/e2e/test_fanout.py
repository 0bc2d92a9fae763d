"""S3 -> SNS -> SQS -> local event-source mapping -> the real consumers -> the event log, all
through moto's server, with the resources created from infra/template.yaml."""

import json
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from eventstore.cli import main
from eventstore.core.parsing import parse_sqs_body
from eventstore.errors import MalformedMessageError
from eventstore.local.poller import Handler, SqsPoller, drain
from eventstore.replay import parse_archive_key
from eventstore.store.sql import open_store
from tests.e2e.conftest import MAX_RECEIVE_COUNT, Stack
from tests.helpers import caught_up_objects

pytestmark = pytest.mark.e2e

UPLOADS = {
    "data/2026/03/orders.csv": b"id,amount\n1,10\n",
    "data/2026/03/refunds.csv": b"id,amount\n2,-3\n",
    "config/pipeline.json": b'{"on": true}',
    "reports/q1 summary.json": b'{"q": 1}',
    "données/été/résumé.csv": b"a,b\n",
    "exports/a+b=c.csv": b"x\n",
}
COPIES = {"backup/orders.csv": "data/2026/03/orders.csv"}


class Recorder:
    """Wraps a handler and records the S3 event names of every batch it is given."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.names: Counter[str] = Counter()
        self.bodies: dict[str, str] = {}  # by message id
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        with self._lock:
            for record in event["Records"]:
                if record["messageId"] in self.bodies:
                    continue  # moto, like SQS, may deliver a message twice to concurrent pollers
                self.bodies[record["messageId"]] = record["body"]
                try:
                    delivery = parse_sqs_body(record["body"], message_id=record["messageId"])
                except MalformedMessageError:
                    self.names["(malformed)"] += 1
                    continue
                self.names.update(e.event_name for e in delivery.events)
        return self.handler(event, context)


def _upload_all(stack: Stack) -> None:
    for key, body in UPLOADS.items():
        stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=body)
    for target, source in COPIES.items():
        stack.s3.copy_object(
            Bucket=stack.bucket, Key=target, CopySource={"Bucket": stack.bucket, "Key": source}
        )


def _pollers(stack: Stack, handlers: dict[str, Handler]) -> dict[str, SqsPoller]:
    """Two concurrent pollers per queue, configured from the template's event source mappings."""
    return {
        queue: SqsPoller(
            stack.sqs,
            stack.fanout.event_source(queue, concurrency=2),
            handler,
            retry_after=0,
        )
        for queue, handler in handlers.items()
    }


def _template_handler(stack: Stack, queue: str) -> Handler:
    consumer = stack.fanout.consumer_of(queue)
    assert consumer is not None, f"the template has no function for {queue}"
    return consumer.load_handler()


def _dead_letters(stack: Stack, queue: str) -> list[dict[str, Any]]:
    dead = stack.fanout.queue_for_dead_letters_of(queue)
    assert dead is not None
    messages: list[dict[str, Any]] = []
    while True:
        batch = stack.sqs.receive_message(
            QueueUrl=dead.url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)


def test_every_upload_is_logged_once_and_in_the_catalog(stack: Stack) -> None:
    # Given the ingest consumer on the ingest queue, and the same consumer also reading the
    # put-only and copy-only queues (the same S3 event arriving through two queues)
    ingest = _template_handler(stack, "IngestQueue")
    pollers = _pollers(stack, {"IngestQueue": ingest, "PutQueue": ingest, "CopyQueue": ingest})

    # When objects are uploaded and copied and every queue is drained
    _upload_all(stack)
    drain(list(pollers.values()), timeout=60)

    # Then each upload and copy is in the log exactly once, and the catalog lists every key
    store = stack.store()
    created = Counter(
        e.event.key for e in store.read() if e.event.event_name.startswith("ObjectCreated:")
    )
    assert created == Counter([*UPLOADS, *COPIES])
    assert len({e.event.event_id for e in store.read()}) == store.head_position()
    assert {o.key for o in caught_up_objects(store, bucket=stack.bucket)} == {*UPLOADS, *COPIES}
    assert store.verify().ok
    # and nothing was dead-lettered or left behind
    assert all(p.stats.failed == 0 for p in pollers.values())
    for queue in pollers:
        assert _dead_letters(stack, queue) == []


def test_filtered_queues_receive_only_their_event_type(stack: Stack) -> None:
    # Given recorders on the put-only and copy-only queues (MessageBody filter policies)
    acknowledge: Handler = lambda event, context: {"batchItemFailures": []}  # noqa: E731
    put, copy = Recorder(acknowledge), Recorder(acknowledge)
    everything = Recorder(_template_handler(stack, "IngestQueue"))
    pollers = _pollers(stack, {"PutQueue": put, "CopyQueue": copy, "IngestQueue": everything})

    # When the bucket sees puts, a copy, a tagging and a delete
    _upload_all(stack)
    stack.s3.put_object_tagging(
        Bucket=stack.bucket,
        Key="config/pipeline.json",
        Tagging={"TagSet": [{"Key": "k", "Value": "v"}]},
    )
    stack.s3.put_bucket_versioning(
        Bucket=stack.bucket, VersioningConfiguration={"Status": "Suspended"}
    )
    drain(list(pollers.values()), timeout=60)

    # Then the put queue got only the puts, the copy queue only the copy
    assert put.names == Counter({"ObjectCreated:Put": len(UPLOADS)})
    assert copy.names == Counter({"ObjectCreated:Copy": len(COPIES)})
    # while the unfiltered queue got those and the rest
    assert everything.names["ObjectCreated:Put"] == len(UPLOADS)
    assert everything.names["ObjectCreated:Copy"] == len(COPIES)
    assert everything.names["ObjectTagging:Put"] >= 1
    # and the put queue's bodies are SNS envelopes (no raw delivery), the ingest queue's raw
    assert all(json.loads(b)["Type"] == "Notification" for b in put.bodies.values())
    assert all("Type" not in json.loads(b) for b in everything.bodies.values())


def test_a_poison_message_is_dead_lettered_and_its_batch_mates_are_stored(stack: Stack) -> None:
    # Given a malformed message waiting in the ingest queue among real notifications
    ingest_queue = stack.fanout.queues["IngestQueue"]
    poison = stack.sqs.send_message(QueueUrl=ingest_queue.url, MessageBody='{"Records": [42]}')
    _upload_all(stack)
    pollers = _pollers(stack, {"IngestQueue": _template_handler(stack, "IngestQueue")})

    # When the consumer drains the queue (failed messages retried at once)
    drain(list(pollers.values()), timeout=60)

    # Then the poison message is in the dead-letter queue, received maxReceiveCount times
    (dead,) = _dead_letters(stack, "IngestQueue")
    assert dead["MessageId"] == poison["MessageId"]
    assert dead["Body"] == '{"Records": [42]}'
    # (at least: two pollers may both receive it once, as SQS allows)
    assert pollers["IngestQueue"].stats.failed >= MAX_RECEIVE_COUNT
    # and every real upload was stored, none twice
    store = stack.store()
    created = Counter(
        e.event.key for e in store.read() if e.event.event_name.startswith("ObjectCreated:")
    )
    assert created == Counter([*UPLOADS, *COPIES])
    assert store.verify().ok


def test_archive_bucket_holds_every_raw_notification_in_the_documented_layout(
    stack: Stack,
) -> None:
    # Given the archive consumer of the template on the archive queue
    recorder = Recorder(_template_handler(stack, "ArchiveQueue"))
    pollers = _pollers(stack, {"ArchiveQueue": recorder})

    # When objects are uploaded and the archive queue is drained
    _upload_all(stack)
    drain(list(pollers.values()), timeout=60)

    # Then there is one object per message (a redelivered one overwrites its own object), at
    # {prefix}YYYY/MM/DD/HH/{messageId}.json
    consumer = stack.fanout.consumer_of("ArchiveQueue")
    assert consumer is not None
    prefix = consumer.environment["ARCHIVE_PREFIX"]
    listing = stack.s3.list_objects_v2(Bucket=stack.archive_bucket)["Contents"]
    assert len(listing) == len(recorder.bodies)
    layout = re.compile(re.escape(prefix) + r"\d{4}/\d{2}/\d{2}/\d{2}/[0-9a-f-]{36}\.json")
    archived: dict[str, str] = {}
    for item in listing:
        assert layout.fullmatch(item["Key"]), item["Key"]
        hour, message_id = parse_archive_key(item["Key"], prefix)
        head = stack.s3.head_object(Bucket=stack.archive_bucket, Key=item["Key"])
        # the hour partition is that of the message's SentTimestamp, in UTC
        sent_ms = int(head["Metadata"]["sent-timestamp"])
        assert hour.timestamp() <= sent_ms / 1000 < hour.timestamp() + 3600
        assert head["Metadata"]["message-id"] == message_id
        assert head["Metadata"]["source-queue-arn"] == stack.fanout.queues["ArchiveQueue"].arn
        body = stack.s3.get_object(Bucket=stack.archive_bucket, Key=item["Key"])["Body"].read()
        archived[message_id] = body.decode("utf-8")
    # and each body is the message verbatim: the S3 notification itself (raw delivery)
    assert archived == recorder.bodies
    names = Counter(
        e.event_name
        for body in archived.values()
        for e in parse_sqs_body(body, message_id="archived").events
    )
    assert names["ObjectCreated:Put"] == len(UPLOADS)
    assert names["ObjectCreated:Copy"] == len(COPIES)
    assert any(json.loads(b).get("Event") == "s3:TestEvent" for b in archived.values())


def test_replaying_the_archive_into_an_empty_log_gives_the_same_events(
    stack: Stack, tmp_path: Path
) -> None:
    # Given the ingest and archive consumers have drained their queues
    handlers = {q: _template_handler(stack, q) for q in ("IngestQueue", "ArchiveQueue")}
    _upload_all(stack)
    drain(list(_pollers(stack, handlers).values()), timeout=60)

    # When the archive is replayed into an empty database with the CLI
    consumer = stack.fanout.consumer_of("ArchiveQueue")
    assert consumer is not None
    replayed_url = f"sqlite:///{tmp_path / 'replayed.db'}"
    source = f"s3://{stack.archive_bucket}/{consumer.environment['ARCHIVE_PREFIX']}"
    assert main(["--db", replayed_url, "replay", "--from", "archive", source]) == 0

    # Then it holds the same events (same ids) and its hash chain verifies
    original, replayed = stack.store(), open_store(replayed_url)
    assert {e.event.event_id for e in replayed.read()} == {
        e.event.event_id for e in original.read()
    }
    assert replayed.verify().ok
    assert main(["--db", replayed_url, "verify"]) == 0
