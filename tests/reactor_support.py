"""Running a reactor on an upload in tests: the upload's S3 event as the parser makes it, and
a ReactorIO over the in-memory ports (tests/reactor_fakes.py) or any other ObjectStore."""

import json
from typing import Any

from eventstore.core.events import NewEvent
from eventstore.reactors.base import MessageSender, ObjectStore, Reactor, ReactorIO
from eventstore.reactors.builtin.extract_text import ExtractTextReactor
from tests.helpers import make_event
from tests.reactor_fakes import InMemoryMessages, InMemoryObjectStore

BUCKET = "bucket"


def uploaded(
    objects: InMemoryObjectStore,
    key: str,
    body: bytes,
    *,
    bucket: str = BUCKET,
    seconds: float = 0,
    event_name: str = "ObjectCreated:Put",
) -> NewEvent:
    """Put `body` at `key` and return the S3 event of that version."""
    output = objects.put(bucket, key, body)
    return make_event(
        event_name, bucket=bucket, key=key, version_id=output.version_id,
        sequencer=f"{int(seconds * 1000):012X}", seconds=seconds, size=output.size,
        etag=output.etag,
    )  # fmt: skip


def react(
    reactor: Reactor,
    event: NewEvent,
    objects: ObjectStore,
    messages: MessageSender | None = None,
) -> ReactorIO:
    """Run `reactor` on `event` as the runner would, letting what it raises through."""
    io = ReactorIO(reactor.name, event, objects, messages or InMemoryMessages())
    reactor.react(event, io)
    return io


def json_lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def extracted(objects: InMemoryObjectStore, key: str, body: bytes) -> tuple[str, ReactorIO]:
    """The text extract-text writes for `body` uploaded at `key`, and the io it used."""
    event = uploaded(objects, key, body)
    io = react(ExtractTextReactor(), event, objects)
    (output,) = io.outputs
    return objects.body(output.bucket, output.key).decode("utf-8"), io
