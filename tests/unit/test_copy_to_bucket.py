"""copy-to-bucket: a server-side copy by default, the transform hook's result otherwise, and
clear failures for a missing or looping target."""

import io
from typing import BinaryIO, ClassVar

import pytest

from eventstore.core.events import NewEvent
from eventstore.reactors import ReactorError
from eventstore.reactors.builtin.copy_to_bucket import TARGET_BUCKET_VARIABLE, CopyToBucketReactor
from tests.reactor_fakes import InMemoryObjectStore
from tests.reactor_support import BUCKET, react, uploaded

TARGET = "second-bucket"


@pytest.fixture(autouse=True)
def _target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TARGET_BUCKET_VARIABLE, TARGET)


class Shouting(CopyToBucketReactor):
    name = "copy-shouting"
    content_type: ClassVar[str | None] = "text/plain"

    def transform(self, event: NewEvent, body: BinaryIO) -> bytes | None:
        if not event.key.endswith(".txt"):
            return None
        return body.read().upper()


class Passing(CopyToBucketReactor):
    """Returns the body stream itself, which cannot seek (as an S3 body cannot)."""

    name = "copy-passing"

    def transform(self, event: NewEvent, body: BinaryIO) -> BinaryIO:
        return Unseekable(body.read())


class Unseekable(io.BytesIO):
    def seekable(self) -> bool:
        return False


def test_the_identity_copies_the_version_of_the_event() -> None:
    objects = InMemoryObjectStore()
    first = uploaded(objects, "uploads/a.bin", b"first")
    uploaded(objects, "uploads/a.bin", b"second", seconds=1)

    result = react(CopyToBucketReactor(), first, objects)

    (output,) = result.outputs
    assert (output.bucket, output.key, output.size) == (TARGET, "uploads/a.bin", 5)
    assert objects.body(TARGET, "uploads/a.bin") == b"first"
    assert result.details == {"target": TARGET, "transformed": False}


def test_a_transform_writes_what_it_returns_and_none_copies_unchanged() -> None:
    objects = InMemoryObjectStore()
    text = uploaded(objects, "uploads/a.txt", b"quiet words")
    other = uploaded(objects, "uploads/b.bin", b"\x00\x01")

    shouted = react(Shouting(), text, objects)
    copied = react(Shouting(), other, objects)

    assert objects.body(TARGET, "uploads/a.txt") == b"QUIET WORDS"
    assert objects.objects[(TARGET, "uploads/a.txt")][-1].content_type == "text/plain"
    assert shouted.details["transformed"] is True
    assert objects.body(TARGET, "uploads/b.bin") == b"\x00\x01"
    assert copied.details["transformed"] is False


def test_a_stream_that_cannot_seek_is_spooled_before_it_is_written() -> None:
    objects = InMemoryObjectStore()
    event = uploaded(objects, "uploads/c.txt", b"streamed")
    (output,) = react(Passing(), event, objects).outputs
    assert objects.body(TARGET, "uploads/c.txt") == b"streamed"
    assert output.size == 8


def test_without_a_target_bucket_it_fails_saying_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TARGET_BUCKET_VARIABLE)
    objects = InMemoryObjectStore()
    event = uploaded(objects, "uploads/a.bin", b"x")
    with pytest.raises(ReactorError, match=r"^EVENTSTORE_COPY_TARGET_BUCKET is not set$"):
        react(CopyToBucketReactor(), event, objects)


def test_a_target_that_is_the_source_bucket_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TARGET_BUCKET_VARIABLE, BUCKET)
    objects = InMemoryObjectStore()
    event = uploaded(objects, "uploads/a.bin", b"x")
    with pytest.raises(ReactorError, match="names the source bucket"):
        react(CopyToBucketReactor(), event, objects)
    assert len(objects.objects[(BUCKET, "uploads/a.bin")]) == 1
