"""The reactor interface: a named, versioned consumer of S3 events with side effects.

A reactor declares which S3 events it wants (`EventFilter`: event names, key prefix,
suffixes) and what it does for one of them (`react`). It reads and writes through the
`ReactorIO` it is given, never through its own clients, so every object it writes and every
message it sends is recorded in the log with its cause (see eventstore.reactors.outcomes).

Processing is recorded once per (reactor, version, event); side effects are at least once
(a crash after writing and before recording runs the event again), so a reactor must make
them idempotent: derive output keys from the input, never from the clock.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar, Protocol

from eventstore.core.events import NewEvent
from eventstore.errors import ConfigurationError, EventStoreError
from eventstore.store.base import type_matches


class ReactorError(EventStoreError):
    """A reactor could not handle an event (a bad input, a missing setting). The event's
    message fails, SQS retries it and finally dead-letters it; the reason is recorded."""


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which S3 events a reactor wants: all of the conditions hold.

    `event_names` holds names (`ObjectCreated:Put`) or `Prefix:*` patterns; `prefix` is a key
    prefix; `suffixes`, when given, are alternatives (`.csv` or `.txt`)."""

    event_names: tuple[str, ...] = ("ObjectCreated:*",)
    prefix: str = ""
    suffixes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.event_names:
            raise ConfigurationError("a reactor's filter needs at least one event name")
        for name in self.event_names:
            if "*" in name[:-1]:
                raise ConfigurationError(f"event name pattern {name!r}: '*' only at the end")

    def matches(self, event: NewEvent) -> bool:
        if not any(type_matches(name, event.event_name) for name in self.event_names):
            return False
        if not event.key.startswith(self.prefix):
            return False
        return not self.suffixes or event.key.endswith(self.suffixes)

    def filter_policy(self) -> dict[str, Any]:
        """The SNS subscription filter policy (FilterPolicyScope: MessageBody) that lets
        through at least what this filter wants.

        SNS cannot require a prefix and a suffix of the same attribute at once, so with both
        the policy filters on the prefix and the handler applies the suffixes; either way the
        handler checks the whole filter again."""
        names: list[Any] = [
            {"prefix": name[:-1]} if name.endswith("*") else name for name in self.event_names
        ]
        record: dict[str, Any] = {"eventName": names}
        key: list[Any] = []
        if self.prefix:
            key = [{"prefix": self.prefix}]
        elif self.suffixes:
            key = [{"suffix": suffix} for suffix in self.suffixes]
        if key:
            record["s3"] = {"object": {"key": key}}
        return {"Records": record}


@dataclass(frozen=True, slots=True)
class Output:
    """An object a reactor wrote, as S3 reported it."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message a reactor sent."""

    queue_url: str
    message_id: str


class ObjectStore(Protocol):
    """Where reactors read and write objects (S3, or a fake in unit tests)."""

    def open(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> AbstractContextManager[BinaryIO]: ...

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes | BinaryIO,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Output: ...

    def copy(
        self,
        source_bucket: str,
        source_key: str,
        source_version_id: str | None,
        bucket: str,
        key: str,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> Output: ...


class MessageSender(Protocol):
    """Where reactors send messages (SQS, or a fake)."""

    def send(self, queue_url: str, body: str) -> str:
        """Send `body`; the message id."""
        ...


# Object metadata every output carries, so S3 itself says where an object came from.
CAUSE_METADATA = "eventstore-cause"
REACTOR_METADATA = "eventstore-reactor"


@dataclass
class ReactorIO:
    """What a reactor may do while it handles one event; each write and send is recorded."""

    reactor: str
    cause: NewEvent
    objects: ObjectStore
    messages: MessageSender
    outputs: list[Output] = field(default_factory=list)
    sent: list[SentMessage] = field(default_factory=list)
    # A reactor may record a short summary of its work (rows converted, characters
    # extracted) in its processed outcome; keep values small and JSON-serialisable.
    details: dict[str, Any] = field(default_factory=dict)
    # Per output (bucket, key): extra fields for that output's produced outcome.
    output_details: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def open_input(self) -> AbstractContextManager[BinaryIO]:
        """The object version the event is about, streamed."""
        return self.objects.open(self.cause.bucket, self.cause.key, self.cause.version_id)

    def open_object(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> AbstractContextManager[BinaryIO]:
        return self.objects.open(bucket, key, version_id)

    def write_object(
        self,
        bucket: str,
        key: str,
        body: bytes | BinaryIO,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Output:
        """Write an object derived from the cause; recorded as a produced outcome."""
        output = self.objects.put(
            bucket, key, body, content_type=content_type, metadata=self._metadata(metadata)
        )
        return self._record(output, details)

    def copy_input(
        self,
        bucket: str,
        key: str,
        *,
        metadata: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Output:
        """Copy the cause's object version to `bucket`/`key` server-side; recorded as produced."""
        cause = self.cause
        output = self.objects.copy(
            cause.bucket, cause.key, cause.version_id, bucket, key,
            metadata=self._metadata(metadata),
        )  # fmt: skip
        if output.size is None:  # a copy has the size of its source
            output = Output(output.bucket, output.key, output.version_id, output.etag, cause.size)
        return self._record(output, details)

    def send_message(self, queue_url: str, body: str) -> str:
        """Send a message about this event; its id is recorded with the processed outcome."""
        message_id = self.messages.send(queue_url, body)
        self.sent.append(SentMessage(queue_url, message_id))
        return message_id

    def _metadata(self, given: Mapping[str, str] | None) -> dict[str, str]:
        return {
            **(given or {}),
            CAUSE_METADATA: self.cause.event_id,
            REACTOR_METADATA: self.reactor,
        }

    def _record(self, output: Output, details: Mapping[str, Any] | None) -> Output:
        self.outputs.append(output)
        if details:
            self.output_details[(output.bucket, output.key)] = dict(details)
        return output


class Reactor(ABC):
    """Subclass, set `name`, `version` and `wants`, implement `react`; register with
    `@reactor` or the `eventstore.reactors` entry-point group.

    Bump `version` when the reactor's outputs change (a bug fix): `reactors run NAME --from
    log` then treats every event as unprocessed by the new version."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    description: ClassVar[str] = ""
    wants: ClassVar[EventFilter] = EventFilter()

    @abstractmethod
    def react(self, event: NewEvent, io: ReactorIO) -> None:
        """Handle one wanted event. Raise (ReactorError for a clear reason) to fail it: its
        message is retried and finally dead-lettered, and each failure is recorded."""

    def wanted(self, events: Iterator[NewEvent] | tuple[NewEvent, ...]) -> list[NewEvent]:
        return [event for event in events if self.wants.matches(event)]
