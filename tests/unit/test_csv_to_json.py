"""csv-to-json: each dialect and quoting converts row for row; a bad row fails the event
naming its line, and nothing is written; memory stays bounded on a large CSV."""

import hashlib
import json
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import pytest

from eventstore.reactors import ReactorError
from eventstore.reactors.base import Output
from eventstore.reactors.builtin.csv_to_json import (
    CONTENT_TYPE,
    OUTPUT_QUEUE_VARIABLE,
    CsvToJsonReactor,
    output_key,
)
from tests.reactor_fakes import InMemoryMessages, InMemoryObjectStore
from tests.reactor_support import BUCKET, json_lines, react, uploaded

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/csv-converted"


@pytest.fixture(autouse=True)
def _no_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OUTPUT_QUEUE_VARIABLE, raising=False)


def converted(body: bytes, key: str = "uploads/data.csv") -> list[dict[str, str]]:
    objects = InMemoryObjectStore()
    react(CsvToJsonReactor(), uploaded(objects, key, body), objects)
    return json_lines(objects.body(BUCKET, output_key(key)))


PEOPLE = [
    {"name": "Ana, María", "city": "São Paulo", "note": 'said "olá"\nthen left'},
    {"name": "Zoë", "city": "Zürich", "note": ""},
]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            'name,city,note\n"Ana, María",São Paulo,"said ""olá""\nthen left"\nZoë,Zürich,\n',
            id="comma",
        ),
        pytest.param(
            'name;city;note\r\n"Ana, María";São Paulo;"said ""olá""\nthen left"\r\n'
            'Zoë;Zürich;""\r\n',
            id="semicolon-crlf",
        ),
        pytest.param(
            'name\tcity\tnote\n"Ana, María"\tSão Paulo\t"said ""olá""\nthen left"\nZoë\tZürich\t\n',
            id="tab",
        ),
        pytest.param(
            '\ufeffname,city,note\n"Ana, María","São Paulo","said ""olá""\nthen left"\n'
            '"Zoë","Zürich",""\n',
            id="bom-all-quoted",
        ),
    ],
)
def test_each_dialect_converts_row_for_row(text: str) -> None:
    assert converted(text.encode("utf-8")) == PEOPLE


def test_a_doubled_quote_after_the_sniffed_sample_is_one_quote() -> None:
    # The sniffer sees no doubled quotes at the start and would read them as malformed later.
    filler = b"".join(b"%d,plain value %d\n" % (i, i) for i in range(6000))
    rows = converted(b"id,text\n" + filler + b'6000,"a ""quoted"" word"\n')
    assert len(rows) == 6001
    assert rows[-1] == {"id": "6000", "text": 'a "quoted" word'}


def test_the_output_is_json_lines_with_a_message_describing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(OUTPUT_QUEUE_VARIABLE, QUEUE)
    objects, messages = InMemoryObjectStore(), InMemoryMessages()
    event = uploaded(objects, "uploads/2026/sales.csv", b"id,total\n1,9.50\n2,3\n")

    io = react(CsvToJsonReactor(), event, objects, messages)

    (output,) = io.outputs
    assert (output.bucket, output.key) == (BUCKET, "converted/2026/sales.jsonl")
    stored = objects.objects[(BUCKET, output.key)][-1]
    assert stored.content_type == CONTENT_TYPE
    assert stored.body == b'{"id": "1", "total": "9.50"}\n{"id": "2", "total": "3"}\n'
    assert io.details == {"rows": 2, "columns": 2, "delimiter": ","}
    ((queue, body),) = messages.sent
    assert queue == QUEUE
    assert json.loads(body) == {
        "source": {"bucket": BUCKET, "key": event.key, "versionId": event.version_id},
        "output": {
            "bucket": BUCKET, "key": output.key, "versionId": output.version_id,
            "eTag": output.etag, "size": output.size,
        },
        "rows": 2,
        "fields": ["id", "total"],
    }  # fmt: skip


def test_without_an_output_queue_it_says_so_and_sends_nothing() -> None:
    objects, messages = InMemoryObjectStore(), InMemoryMessages()
    io = react(CsvToJsonReactor(), uploaded(objects, "uploads/a.csv", b"a\n1\n"), objects, messages)
    assert messages.sent == []
    assert io.details["message"] == "no output queue configured"


def test_a_redelivered_event_writes_the_same_key_with_the_same_content() -> None:
    objects = InMemoryObjectStore()
    event = uploaded(objects, "uploads/a.csv", b"a,b\n1,2\n")
    first = react(CsvToJsonReactor(), event, objects).outputs
    again = react(CsvToJsonReactor(), event, objects).outputs
    assert [o.key for o in first] == [o.key for o in again] == ["converted/a.jsonl"]
    assert first[0].etag == again[0].etag


def test_a_header_only_file_is_zero_rows_and_blank_lines_are_skipped() -> None:
    objects = InMemoryObjectStore()
    io = react(CsvToJsonReactor(), uploaded(objects, "uploads/h.csv", b"a,b,c\n"), objects)
    assert objects.body(BUCKET, "converted/h.jsonl") == b""
    assert io.details["rows"] == 0
    assert converted(b"\na,b\n\n1,2\n\n") == [{"a": "1", "b": "2"}]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty file: no header row"),
        (b"\xef\xbb\xbf\n\n", "empty file: no header row"),
        (b"a,b\n1,2\n3,4,5\n6,7\n", "line 3: 3 fields, the header has 2"),
        (b"a,b\n1,2\n3\n", "line 3: 1 field, the header has 2"),
        (b'a,b\n1,"two\nlines"\n3,4,5\n', "line 4: 3 fields, the header has 2"),
        (b"a,b\n1,2\n3,\xff\n", r"line 3: not UTF-8 \(byte 0xff at byte 3 of the line\)"),
        (b'a,b\n1,2\n3,"open\n', "line 3: unexpected end of data"),
        (b'a,b\n1,"x"y\n', "line 2: ',' expected after '\"'"),
        (b"a,b,a\n1,2,3\n", "line 1: the header names 'a' more than once"),
    ],
)
def test_a_bad_file_fails_naming_its_line_and_writes_nothing(body: bytes, reason: str) -> None:
    objects, messages = InMemoryObjectStore(), InMemoryMessages()
    event = uploaded(objects, "uploads/bad.csv", body)

    with pytest.raises(ReactorError, match=reason):
        react(CsvToJsonReactor(), event, objects, messages)

    assert (BUCKET, "converted/bad.jsonl") not in objects.objects
    assert messages.sent == []


# -- memory ---------------------------------------------------------------------------------


class GeneratedCsv:
    """A CSV body made as it is read: `rows` rows of about 500 bytes, quoted fields with
    delimiters and line breaks in them."""

    def __init__(self, rows: int) -> None:
        self._lines = self._generate(rows)
        self._buffer = b""
        self.size = 0

    @staticmethod
    def _generate(rows: int) -> Iterator[bytes]:
        yield b"id,name,city,notes,amount\n"
        words = "lorem ipsum dolor sit amet, consectetur adipiscing elit; sed do eiusmod "
        for i in range(rows):
            notes = (words * 5)[: 300 + i % 50]
            yield (
                f'{i},"Name {i}, Jr.",São Paulo,"{notes}\nline two ""quoted""",{i * 3}.5\n'
            ).encode()

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            line = next(self._lines, None)
            if line is None:
                break
            self._buffer += line
        cut = len(self._buffer) if size < 0 else size
        chunk, self._buffer = self._buffer[:cut], self._buffer[cut:]
        self.size += len(chunk)
        return chunk


class StreamingObjectStore:
    """One generated input, and outputs hashed as they are written: neither is ever held in
    memory, so what tracemalloc sees is the reactor's own."""

    def __init__(self, rows: int) -> None:
        self.input = GeneratedCsv(rows)
        self.outputs: dict[str, tuple[int, str]] = {}

    @contextmanager
    def open(self, bucket: str, key: str, version_id: str | None = None) -> Iterator[BinaryIO]:
        yield self.input  # type: ignore[misc]

    def put(self, bucket: str, key: str, body: bytes | BinaryIO, **_: object) -> Output:
        assert not isinstance(body, bytes)
        digest, size = hashlib.md5(), 0
        while chunk := body.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
        self.outputs[key] = (size, digest.hexdigest())
        return Output(bucket, key, "v1", digest.hexdigest(), size)

    def copy(self, *args: object, **kwargs: object) -> Output:
        raise NotImplementedError


def test_a_large_csv_converts_in_bounded_memory() -> None:
    objects = StreamingObjectStore(rows=130_000)  # about 51 MB
    event = uploaded(InMemoryObjectStore(), "uploads/large.csv", b"")

    tracemalloc.start()
    try:
        io = react(CsvToJsonReactor(), event, objects)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    size = objects.input.size
    print(f"csv-to-json: {size / 1e6:.1f} MB in, peak traced {peak / 1e6:.1f} MB")
    assert size > 50_000_000
    assert io.details["rows"] == 130_000
    assert objects.outputs["converted/large.jsonl"][0] > size
    assert peak < 12_000_000  # the spool's 8 MiB in memory, then disk
