"""Reactors: named, versioned consumers of S3 events with side effects, whose every outcome
(processed, produced, failed) is recorded in the log with its cause."""

from eventstore.reactors.base import (
    EventFilter,
    MessageSender,
    ObjectStore,
    Output,
    Reactor,
    ReactorError,
    ReactorIO,
    SentMessage,
)
from eventstore.reactors.registry import get_reactor, load_reactors, reactor, unregister

__all__ = [
    "EventFilter",
    "MessageSender",
    "ObjectStore",
    "Output",
    "Reactor",
    "ReactorError",
    "ReactorIO",
    "SentMessage",
    "get_reactor",
    "load_reactors",
    "reactor",
    "unregister",
]
