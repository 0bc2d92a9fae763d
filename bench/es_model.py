"""The `eventsourcing` side of the benchmarks: one aggregate per S3 event record.

A module of its own because the library stores each event's class as a topic
(`module:qualname`) and must import it again to read the event back."""

from typing import Any

from eventsourcing.domain import Aggregate


class S3Event(Aggregate):
    """One S3 event record: its created event is the one stored event, carrying the record."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
