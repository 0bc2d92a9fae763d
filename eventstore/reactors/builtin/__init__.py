"""The built-in reactors: the classic pipelines of the S3 fan-out."""

from collections.abc import Callable

from eventstore.reactors.base import Reactor
from eventstore.reactors.builtin.recorders import CopyConsumer, PutConsumer

BUILTIN_REACTORS: tuple[Callable[[], Reactor], ...] = (PutConsumer, CopyConsumer)

__all__ = ["BUILTIN_REACTORS", "CopyConsumer", "PutConsumer"]
