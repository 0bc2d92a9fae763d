"""No loops: the objects the built-in reactors write come back as S3 events of the same bucket
(or of the copy's target bucket), and no built-in reactor that wants one of them writes or
sends anything for it, so no chain of reactions can feed itself."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore.core.events import NewEvent
from eventstore.reactors.base import Output, Reactor
from eventstore.reactors.builtin import BUILTIN_REACTORS
from eventstore.reactors.builtin.copy_to_bucket import TARGET_BUCKET_VARIABLE
from eventstore.reactors.builtin.csv_to_json import OUTPUT_QUEUE_VARIABLE
from tests.helpers import make_event
from tests.reactor_fakes import InMemoryObjectStore
from tests.reactor_support import BUCKET, react, uploaded

TARGET = "second-bucket"
CREATED = ("ObjectCreated:Put", "ObjectCreated:Post", "ObjectCreated:Copy",
           "ObjectCreated:CompleteMultipartUpload")  # fmt: skip
BODIES = {".csv": b"a,b\n1,2\n", ".json": b'{"a": "b"}', ".txt": b"words"}

segment = st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=8)
keys = st.builds(
    lambda folders, stem, suffix: "/".join(["uploads", *folders, stem + suffix]),
    st.lists(segment, max_size=3),
    segment,
    st.sampled_from([".csv", ".json", ".txt", ".bin", ".csv.txt", ".jsonl", ""]),
)


def builtins() -> list[Reactor]:
    return [make() for make in BUILTIN_REACTORS]


def outputs_of(key: str) -> tuple[InMemoryObjectStore, list[Output]]:
    """Every object the built-ins write for an upload at `key`."""
    objects = InMemoryObjectStore()
    body = next((b for suffix, b in BODIES.items() if key.endswith(suffix)), b"bytes")
    event = uploaded(objects, key, body)
    written = []
    for reactor in builtins():
        if reactor.wants.matches(event):
            written += react(reactor, event, objects).outputs
    return objects, written


def event_of(output: Output, event_name: str) -> NewEvent:
    return make_event(
        event_name, bucket=output.bucket, key=output.key, version_id=output.version_id,
        size=output.size, etag=output.etag,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TARGET_BUCKET_VARIABLE, TARGET)
    monkeypatch.setenv(OUTPUT_QUEUE_VARIABLE, "https://sqs.local/converted")


def test_every_builtin_writes_its_outputs_where_no_builtin_writes_again() -> None:
    objects, outputs = outputs_of("uploads/report.csv")
    assert sorted((o.bucket, o.key) for o in outputs) == [
        (BUCKET, "converted/report.jsonl"),
        (BUCKET, "extracted/report.csv.txt"),
        (TARGET, "uploads/report.csv"),
    ]
    _assert_no_reaction(objects, outputs)


@settings(max_examples=60, deadline=None)
@given(key=keys)
def test_no_output_of_any_upload_sets_off_a_builtin_that_writes(key: str) -> None:
    objects, outputs = outputs_of(key)
    _assert_no_reaction(objects, outputs)


def _assert_no_reaction(objects: InMemoryObjectStore, outputs: list[Output]) -> None:
    for output in outputs:
        # The copy goes to another bucket (the reactor refuses its own as the target) ...
        if output.bucket != BUCKET:
            assert output.bucket == TARGET
            continue
        # ... and in the source bucket only the recorders want an output, and they write
        # nothing and send nothing for it.
        for event_name in CREATED:
            event = event_of(output, event_name)
            wanting = [r for r in builtins() if r.wants.matches(event)]
            assert {r.name for r in wanting} <= {"put-consumer", "copy-consumer"}
            for reactor in wanting:
                io = react(reactor, event, objects)
                assert (io.outputs, io.sent) == ([], [])
