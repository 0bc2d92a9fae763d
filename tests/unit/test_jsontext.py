"""eventstore.core.jsontext: orjson where it means what the standard library means, the
standard library everywhere else. The hash chain depends on the first half: rows hashed by
earlier releases (with `json`) must still verify."""

import json
import math

import pytest

from eventstore.core import jsontext

STDLIB_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def test_every_character_is_written_as_the_standard_library_writes_it() -> None:
    # Given every Unicode scalar value, alone and between other characters
    characters = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    values = [characters, [f"a{c}b" for c in characters[:0x3000]]]
    # Then the compact text is byte for byte json's (escapes of quotes, backslashes and
    # control characters included)
    for value in values:
        assert jsontext.compact(value) == STDLIB_COMPACT.encode(value)


def test_what_a_row_holds_is_written_as_the_standard_library_writes_it() -> None:
    row = ["id", None, 0, -1, 2**63 - 1, True, False, "", 'q"uo\\te', {"k": [1, {"n": None}]}]
    assert jsontext.compact(row) == STDLIB_COMPACT.encode(row)


def test_integers_past_64_bits_fall_back_to_the_standard_library() -> None:
    value = [2**64, -(2**70), 10**30, 2**63 - 1]
    assert jsontext.compact(value) == STDLIB_COMPACT.encode(value)
    # Read back as the integers they are (orjson alone reads them as floats)
    read = jsontext.loads(STDLIB_COMPACT.encode(value))
    assert read == value and all(type(n) is int for n in read)
    assert jsontext.loads('{"size": 1000000000000000000000000000000}') == {"size": 10**30}
    assert type(jsontext.loads("99999999999999999999")) is int


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '["\\u00e9\\n\\t", "é", 1.5, -0.0, 1e-7, 10000000000000000000]',
        '  {"nested": [[[{"x": null}]]]}  ',
        '"\\ud83d\\ude00"',  # an escaped surrogate pair: one character
    ],
)
def test_valid_documents_decode_to_what_the_standard_library_returns(text: str) -> None:
    ours, theirs = jsontext.loads(text), json.loads(text)
    assert ours == theirs and repr(ours) == repr(theirs)  # the same types, too


def test_what_orjson_refuses_is_read_as_the_standard_library_reads_it() -> None:
    # NaN and Infinity, a lone surrogate escape, a number too large for a double
    (nan, infinity) = jsontext.loads("[NaN, Infinity]")
    assert math.isnan(nan) and infinity == math.inf
    assert jsontext.loads('"\\ud800"') == "\ud800"
    assert jsontext.loads("1e400") == math.inf


@pytest.mark.parametrize("text", ["", "{", '{"a" 1}', "[1,]", "nul"])
def test_invalid_documents_raise_the_standard_librarys_error(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as ours:
        jsontext.loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert (ours.value.msg, ours.value.pos) == (theirs.value.msg, theirs.value.pos)
