"""extract-text: the text of each kind of file, the start of it recorded for the search index,
and the bounds: a JSON document too large or not JSON fails with its reason."""

import dataclasses
import json

import pytest

from eventstore.reactors import ReactorError
from eventstore.reactors.builtin.extract_text import (
    CONTENT_TYPE,
    MAX_INDEXED_CHARS,
    MAX_JSON_BYTES,
    ExtractTextReactor,
    output_key,
)
from tests.reactor_fakes import InMemoryObjectStore
from tests.reactor_support import BUCKET, extracted, react, uploaded


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("uploads/a.csv", "extracted/a.csv.txt"),
        ("uploads/a.json", "extracted/a.json.txt"),
        ("uploads/deep/er/notes.txt", "extracted/deep/er/notes.txt.txt"),
    ],
)
def test_output_keys_keep_the_whole_name(key: str, expected: str) -> None:
    assert output_key(key) == expected


def test_text_is_decoded_with_undecodable_bytes_replaced() -> None:
    objects = InMemoryObjectStore()
    text, io = extracted(objects, "uploads/notes.txt", b"\xef\xbb\xbfCaf\xc3\xa9 \xff ok\r\nnext")

    assert text == "Café \ufffd ok\r\nnext"
    (output,) = io.outputs
    assert objects.objects[(BUCKET, output.key)][-1].content_type == CONTENT_TYPE
    assert io.output_details[(BUCKET, output.key)] == {"text": text, "truncated": False}
    assert io.details == {"chars": len(text)}


def test_csv_cells_are_separated_by_spaces_and_rows_by_newlines() -> None:
    body = b'name;city;note\n"Ana";"S\xc3\xa3o Paulo";"two\nlines"\nBob;;x\n\n'
    text, _ = extracted(InMemoryObjectStore(), "uploads/people.csv", body)
    assert text == "name city note\nAna São Paulo two lines\nBob x\n"


def test_json_strings_and_keys_come_depth_first_in_document_order() -> None:
    document = {
        "title": "Quarterly report",
        "pages": 12,
        "authors": [{"name": "Zoë", "roles": ["editor", None, True]}, "anonymous"],
        "nested": {"deeper": {"deepest": "bottom"}},
    }
    text, _ = extracted(InMemoryObjectStore(), "uploads/r.json", json.dumps(document).encode())
    assert text.splitlines() == [
        "title", "Quarterly report", "pages", "authors", "name", "Zoë", "roles", "editor",
        "anonymous", "nested", "deeper", "deepest", "bottom",
    ]  # fmt: skip


def test_json_nested_deeper_than_the_parser_goes_fails_clearly() -> None:
    objects = InMemoryObjectStore()
    event = uploaded(objects, "uploads/deep.json", b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ReactorError, match="nested too deeply"):
        react(ExtractTextReactor(), event, objects)


def test_json_nested_as_deep_as_the_parser_goes_is_extracted() -> None:
    depth = 900  # near the parser's own limit
    text, _ = extracted(
        InMemoryObjectStore(), "uploads/deep.json", b'{"k": ' * depth + b'"x"' + b"}" * depth
    )
    assert text == "k\n" * depth + "x\n"


def test_json_escapes_no_utf_8_can_hold_are_replaced() -> None:
    text, _ = extracted(InMemoryObjectStore(), "uploads/s.json", b'["a\\ud800b", "nul\\u0000"]')
    assert text == "a\ufffdb\nnul\x00\n"


@pytest.mark.parametrize(
    "body", [b"{not json", b'{"a": 1', b"", b"\xff\xfe{"], ids=["syntax", "cut", "empty", "bytes"]
)
def test_a_document_that_is_not_json_fails_with_its_reason(body: bytes) -> None:
    objects = InMemoryObjectStore()
    event = uploaded(objects, "uploads/bad.json", body)
    with pytest.raises(ReactorError, match="not valid JSON"):
        react(ExtractTextReactor(), event, objects)
    assert (BUCKET, "extracted/bad.json.txt") not in objects.objects


def test_json_over_the_bound_is_refused_by_its_size_and_by_what_is_read() -> None:
    objects = InMemoryObjectStore()
    big = b'["' + b"x" * MAX_JSON_BYTES + b'"]'
    event = uploaded(objects, "uploads/big.json", big)

    with pytest.raises(ReactorError, match=f"of {len(big)} bytes, over {MAX_JSON_BYTES}"):
        react(ExtractTextReactor(), event, objects)
    # An event without a size (or a wrong one) is caught by reading one byte past the bound.
    with pytest.raises(ReactorError, match=f"JSON document over {MAX_JSON_BYTES} bytes"):
        react(ExtractTextReactor(), dataclasses.replace(event, size=None), objects)
    assert (BUCKET, "extracted/big.json.txt") not in objects.objects


@pytest.mark.parametrize(("chars", "truncated"), [(MAX_INDEXED_CHARS, False), (200_001, True)])
def test_the_index_gets_the_start_of_a_long_text_and_the_object_all_of_it(
    chars: int, truncated: bool
) -> None:
    # Two-byte characters across the 64 KiB reads: a character split between two reads
    # decodes whole.
    body = ("é" * (chars - 1) + "!").encode()
    text, io = extracted(InMemoryObjectStore(), "uploads/long.txt", body)

    assert text == body.decode()
    details = io.output_details[(BUCKET, "extracted/long.txt.txt")]
    assert details["text"] == text[:MAX_INDEXED_CHARS]
    assert details["truncated"] is truncated
    assert io.details["chars"] == chars
