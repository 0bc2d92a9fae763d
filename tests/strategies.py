"""Hypothesis strategies: true S3 histories of a few keys, and the messy ways they arrive.

A history is what really happened, in S3's order; a reference model says what each key must
look like afterwards. Deliveries are that history shuffled, with duplicates.
"""

from dataclasses import dataclass, field

from hypothesis import strategies as st

from eventstore.core.events import NewEvent
from tests.helpers import make_event

KEYS = [
    ("acme-media", "photos/summer holiday/beach.jpg"),  # versioned
    ("acme-media", "menus/café crème.pdf"),  # versioned
    ("acme-logs", "logs/app.log"),  # not versioned
    ("acme-logs", "logs/a+b=c.log"),  # not versioned
]
VERSIONED = {"acme-media"}
NEUTRAL = [
    "ObjectTagging:Put",
    "ObjectTagging:Delete",
    "ObjectAcl:Put",
    "ObjectRestore:Post",
    "ObjectRestore:Completed",
    "Replication:OperationFailedReplication",
    "IntelligentTiering",
    "LifecycleTransition",
]


@dataclass
class Expected:
    """The reference model of one key: S3's own semantics, applied in S3's order."""

    versioned: bool
    versions: list[tuple[str | None, bool, int | None]] = field(default_factory=list)
    last_event_name: str | None = None

    @property
    def deleted(self) -> bool:
        return not self.versions or self.versions[-1][1]

    @property
    def size(self) -> int | None:
        return None if self.deleted else self.versions[-1][2]

    @property
    def version_id(self) -> str | None:
        return self.versions[-1][0] if self.versions else None


@dataclass
class History:
    events: list[NewEvent]  # in S3's order, per key
    expected: dict[tuple[str, str], Expected]


def _sequencer(counter: int, extra: str, lower: bool) -> str:
    """Increasing with `counter`; `extra` digits make it longer without changing its place."""
    text = f"{0x0065E1F7A0B1C200 + counter * 0x1000:016X}{extra}"
    return text.lower() if lower else text


@st.composite
def histories(draw: st.DrawFn, max_steps: int = 12) -> History:
    events: list[NewEvent] = []
    expected: dict[tuple[str, str], Expected] = {}
    counters: dict[tuple[str, str], int] = {}
    steps = draw(st.integers(min_value=1, max_value=max_steps))
    for step in range(steps):
        bucket, key = draw(st.sampled_from(KEYS))
        versioned = bucket in VERSIONED
        model = expected.setdefault((bucket, key), Expected(versioned))
        counter = counters[(bucket, key)] = counters.get((bucket, key), 0) + 1
        sequencer = _sequencer(
            counter,
            draw(st.sampled_from(["", "", "0", "00", "0A", "F3C2"])),
            draw(st.booleans()),
        )
        # S3's event times are close to, but not always in, sequencer order
        seconds = step + draw(st.sampled_from([0, 0, -1.5, 0.25]))
        options = ["put", "neutral"]
        if model.versions or not versioned:
            options.append("delete")
        if versioned:
            options.append("marker")
        action = draw(st.sampled_from(options))
        where = {"bucket": bucket, "key": key, "seconds": seconds}
        if action == "put":
            size = draw(st.integers(min_value=0, max_value=10_000))
            version = f"v{step}" if versioned else None
            name = draw(st.sampled_from(["ObjectCreated:Put", "ObjectCreated:Copy",
                                         "ObjectCreated:CompleteMultipartUpload"]))  # fmt: skip
            event = make_event(name, version_id=version, sequencer=sequencer, size=size, **where)
            if versioned:
                model.versions.append((version, False, size))
            else:
                model.versions = [(None, False, size)]
        elif action == "delete":
            name = draw(st.sampled_from(["ObjectRemoved:Delete", "LifecycleExpiration:Delete"]))
            if versioned:
                index = draw(st.integers(min_value=0, max_value=len(model.versions) - 1))
                version = model.versions.pop(index)[0]
            else:
                version = None
                model.versions = []
            event = make_event(name, version_id=version, sequencer=sequencer, **where)
        elif action == "marker":
            version = f"m{step}"
            name = draw(st.sampled_from(["ObjectRemoved:DeleteMarkerCreated",
                                         "LifecycleExpiration:DeleteMarkerCreated"]))  # fmt: skip
            event = make_event(name, version_id=version, sequencer=sequencer, **where)
            model.versions.append((version, True, None))
        else:
            name = draw(st.sampled_from(NEUTRAL))
            version = model.version_id if versioned else None
            # no sequencer: tagging, ACL, restore… carry a request id instead
            event = make_event(name, version_id=version, request_id=f"REQ{step:04d}", **where)
        if action != "neutral":
            model.last_event_name = name
        events.append(event)
    return History(events, expected)


@st.composite
def deliveries(draw: st.DrawFn, history: History) -> list[NewEvent]:
    """Every event at least once, some more than once, in any order."""
    extra = draw(st.lists(st.sampled_from(history.events), max_size=len(history.events)))
    return draw(st.permutations(history.events + extra))


def batches(events: list[NewEvent]) -> st.SearchStrategy[list[list[NewEvent]]]:
    """The deliveries cut into consecutive batches (as SQS hands them to Lambda)."""
    if not events:
        return st.just([])
    cuts = st.sets(st.integers(min_value=1, max_value=len(events) - 1), max_size=4) if len(
        events
    ) > 1 else st.just(set())  # fmt: skip
    return cuts.map(
        lambda points: [
            events[a:b]
            for a, b in zip([0, *sorted(points)], [*sorted(points), len(events)], strict=True)
        ]
    )
