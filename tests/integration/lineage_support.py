"""A small pipeline for the lineage tests: uploads/*.csv -> converted/*.jsonl (a CSV-like
reactor) -> summaries/*.txt (a second reactor on the first one's outputs), each step's S3
event made the way the parser makes it from a real-shaped notification."""

import csv
import io
import json
from datetime import datetime, timedelta
from typing import ClassVar

from eventstore.core.events import NewEvent
from eventstore.reactors import EventFilter, Output, Reactor, ReactorError, ReactorIO
from eventstore.reactors.runner import Reaction, ReactorRunner
from eventstore.store.sql import SqlEventStore
from tests.notification_factory import T0, new_events, s3_record
from tests.reactor_fakes import InMemoryMessages, InMemoryObjectStore

BUCKET = "data"
CSV_SAMPLE = b"name,qty\napple,3\npear,5\n"


class CsvToLines(Reactor):
    """uploads/X.csv -> converted/X.jsonl, one JSON object per row; an empty file fails."""

    name = "test-csv-lines"
    version = 1
    wants: ClassVar[EventFilter] = EventFilter(prefix="uploads/", suffixes=(".csv",))

    def react(self, event: NewEvent, io_: ReactorIO) -> None:
        with io_.open_input() as body:
            text = body.read().decode("utf-8")
        if not text:
            raise ReactorError("empty file")
        rows = list(csv.DictReader(io.StringIO(text)))
        lines = "".join(json.dumps(r) + "\n" for r in rows).encode()
        key = "converted/" + event.key.removeprefix("uploads/").removesuffix(".csv") + ".jsonl"
        io_.write_object(event.bucket, key, lines, details={"rows": len(rows)})


class Summarise(Reactor):
    """converted/X.jsonl -> summaries/X.txt (the line count)."""

    name = "test-summarise"
    version = 1
    wants: ClassVar[EventFilter] = EventFilter(prefix="converted/", suffixes=(".jsonl",))

    def react(self, event: NewEvent, io_: ReactorIO) -> None:
        with io_.open_input() as body:
            count = body.read().count(b"\n")
        key = "summaries/" + event.key.removeprefix("converted/").removesuffix(".jsonl") + ".txt"
        io_.write_object(event.bucket, key, str(count).encode())


class UnversionedObjectStore(InMemoryObjectStore):
    """A bucket without versioning: S3 reports no version id, only the ETag."""

    def put(self, *args: object, **kwargs: object) -> Output:
        written = super().put(*args, **kwargs)  # type: ignore[arg-type]
        return Output(written.bucket, written.key, None, written.etag, written.size)

    def copy(self, *args: object, **kwargs: object) -> Output:
        written = super().copy(*args, **kwargs)  # type: ignore[arg-type]
        return Output(written.bucket, written.key, None, written.etag, written.size)


class Pipeline:
    """The log, an object store, and a clock the tests move: uploads and outputs' S3 events
    are appended as the ingest consumer would append them."""

    def __init__(self, log: SqlEventStore, objects: InMemoryObjectStore | None = None) -> None:
        self.log = log
        self.objects = objects if objects is not None else InMemoryObjectStore()
        self.messages = InMemoryMessages()
        self.seconds = 0
        self.now: datetime = T0

    def tick(self, seconds: int = 1) -> datetime:
        self.seconds += seconds
        self.now = T0 + timedelta(seconds=self.seconds)
        return self.now

    def s3_event(
        self, bucket: str, key: str, version_id: str | None, etag: str | None, size: int | None
    ) -> NewEvent:
        """The S3 event of an object just written, appended to the log."""
        record = s3_record(
            bucket, key, when=self.tick(), sequencer=f"{self.seconds:016X}",
            version_id=version_id, etag=etag, size=size,
        )  # fmt: skip
        (event,) = new_events([record])
        self.log.append([event])
        return event

    def upload(self, key: str, body: bytes, bucket: str = BUCKET) -> NewEvent:
        written = self.objects.put(bucket, key, body)
        return self.s3_event(bucket, key, written.version_id, written.etag, written.size)

    def arrive(self, output: Output) -> NewEvent:
        """The S3 event of a reactor's output reaches the log (through the fan-out)."""
        return self.s3_event(output.bucket, output.key, output.version_id, output.etag, output.size)

    def runner(self, reactor: Reactor) -> ReactorRunner:
        return ReactorRunner(reactor, self.log, self.objects, self.messages, clock=lambda: self.now)

    def react(
        self, reactor: Reactor, cause: NewEvent, *, attempt: int = 1, delivery: str = "m-1",
        after: int = 1, request_id: str | None = None,
    ) -> Reaction:  # fmt: skip
        """`reactor` handles `cause` `after` seconds on; its outcomes are recorded."""
        runner = self.runner(reactor)
        self.tick(after)
        reaction = runner.react(cause, delivery=delivery, attempt=attempt, request_id=request_id)
        runner.record([reaction])
        return reaction


def produced(reaction: Reaction) -> Output:
    """The one output a reaction recorded."""
    (event,) = [e for e in reaction.outcomes if e.event_name == "Reactor:Produced"]
    return Output(event.bucket, event.key, event.version_id, event.etag, event.size)
