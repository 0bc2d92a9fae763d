"""JSON in and out on the hot path: orjson's speed with the standard library's meaning.

The standard `json` module was a fifth of the consumer's time (two decodes per SQS message,
two encodes per event). orjson does the same work in C several times faster, and for what
the hash chain encodes (strings, integers, None) it writes exactly the bytes `json` writes
with `ensure_ascii=False` and compact separators (checked over every code point by
tests/unit/test_jsontext.py), so rows hashed by earlier releases still verify.

Wherever orjson refuses something the standard library accepts (integers past 64 bits, NaN,
a lone surrogate escape, nesting past its limit), the standard library answers instead, so
callers see its result or its error, never orjson's.
"""

import json
from typing import Any

import orjson

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def loads(text: str) -> Any:
    """`json.loads(text)`: the same value, or the same exception."""
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
