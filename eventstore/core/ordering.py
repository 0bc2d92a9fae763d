"""S3's per-key order: sequencers compare only within one key, as right-zero-padded hex.

Events without a sequencer (tagging, ACL, restore, records from S3-compatible producers)
are ordered by event time; the log position breaks remaining ties.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

T = TypeVar("T")


def normalise_sequencer(value: str | None) -> str | None:
    """Upper-case hex, or None for a missing or empty sequencer."""
    if value is None:
        return None
    cleaned = value.strip().upper()
    return cleaned or None


def compare_sequencers(left: str, right: str) -> int:
    """-1, 0 or 1: compare two sequencers of the same key."""
    width = max(len(left), len(right))
    a, b = left.upper().ljust(width, "0"), right.upper().ljust(width, "0")
    return (a > b) - (a < b)


@dataclass(frozen=True, slots=True)
class OrderKey:
    """Where an event stands among the events of its key."""

    sequencer: str | None
    event_time: datetime
    position: int = 0

    def compare(self, other: "OrderKey") -> int:
        """-1, 0 or 1. Sequencers decide when both events have one, else event time."""
        if self.sequencer is not None and other.sequencer is not None:
            by_sequencer = compare_sequencers(self.sequencer, other.sequencer)
            if by_sequencer:
                return by_sequencer
        elif self.event_time != other.event_time:
            return -1 if self.event_time < other.event_time else 1
        return (self.position > other.position) - (self.position < other.position)

    def is_after(self, other: "OrderKey | None") -> bool:
        return other is None or self.compare(other) > 0


def sort_events_of_one_key(events: Sequence[T], key: Callable[[T], OrderKey]) -> list[T]:
    """Sort the events of one object into S3 order.

    Events with a sequencer are placed by it (padded to a common width); events without one
    are merged in by event time, since nothing finer is known about them.
    """
    keyed = [(key(event), event) for event in events]
    width = max((len(k.sequencer) for k, _ in keyed if k.sequencer), default=0)
    sequenced = sorted(
        (pair for pair in keyed if pair[0].sequencer is not None),
        key=lambda pair: (str(pair[0].sequencer).upper().ljust(width, "0"), pair[0].position),
    )
    timed = sorted(
        (pair for pair in keyed if pair[0].sequencer is None),
        key=lambda pair: (pair[0].event_time, pair[0].position),
    )
    merged: list[T] = []
    i = j = 0
    while i < len(sequenced) or j < len(timed):
        take_sequenced = j >= len(timed) or (
            i < len(sequenced) and sequenced[i][0].event_time <= timed[j][0].event_time
        )
        if take_sequenced:
            merged.append(sequenced[i][1])
            i += 1
        else:
            merged.append(timed[j][1])
            j += 1
    return merged
