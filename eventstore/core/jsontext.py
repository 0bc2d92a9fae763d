"""JSON in and out on the hot path: orjson's speed with the standard library's meaning.

The standard `json` module took about a tenth of the consumer's profiled time (two decodes
per SQS message, two encodes per event). orjson does that work several times faster, and for what
the hash chain encodes (strings, integers, None) it writes exactly the bytes `json` writes
with `ensure_ascii=False` and compact separators (checked over every code point by
tests/unit/test_jsontext.py), so rows hashed by earlier releases still verify.

Wherever orjson refuses something the standard library accepts (NaN, a lone surrogate escape,
nesting past its limit, an integer past 64 bits to write) the standard library answers
instead, so callers see its result or its error, never orjson's. orjson reads an integer of
more than 64 bits as a float, silently: a text with a run of 20 digits or more (anywhere, even
inside a string; it costs only speed) is read by the standard library.
"""

import json
from typing import Any

import orjson

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# Every ASCII digit to "1", every other byte to "0": a run of 20 digits (19 always fit a signed
# 64-bit integer) is then a substring search, a tenth of what a regular expression costs.
_DIGITS_AS_ONES = bytes(0x31 if 0x30 <= b <= 0x39 else 0x30 for b in range(256))
_TWENTY_DIGITS = b"1" * 20


def _has_long_number(text: str) -> bool:
    return _TWENTY_DIGITS in text.encode("utf-8", "surrogatepass").translate(_DIGITS_AS_ONES)


def loads(text: str) -> Any:
    """`json.loads(text)`: the same value, or the same exception."""
    if _has_long_number(text):
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def compact(value: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, separators=(",", ":"))` of a JSON value (what
    `loads` returns). Floats may be spelled differently (`1e-7` for `1e-07`); they read back
    as the same number."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return _COMPACT.encode(value)
