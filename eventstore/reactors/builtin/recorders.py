"""The fan-out's Put and Copy consumers: each handles one kind of upload (its queue's filter
policy lets only that kind through) and records what it handled; no side effects."""

from eventstore.core.events import NewEvent
from eventstore.reactors.base import EventFilter, Reactor, ReactorIO


class PutConsumer(Reactor):
    name = "put-consumer"
    version = 1
    description = "records every ObjectCreated:Put (the fan-out's Put queue)"
    wants = EventFilter(event_names=("ObjectCreated:Put",))

    def react(self, event: NewEvent, io: ReactorIO) -> None:
        io.details["size"] = event.size


class CopyConsumer(Reactor):
    name = "copy-consumer"
    version = 1
    description = "records every ObjectCreated:Copy (the fan-out's Copy queue)"
    wants = EventFilter(event_names=("ObjectCreated:Copy",))

    def react(self, event: NewEvent, io: ReactorIO) -> None:
        io.details["size"] = event.size
