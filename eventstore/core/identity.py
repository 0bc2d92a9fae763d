"""Deterministic event ids: the same S3 change gets the same id through any wrapper or replay."""

import hashlib
from datetime import datetime

from eventstore.core.jsontext import compact
from eventstore.core.timeutil import format_time


def derive_event_id(
    *,
    bucket: str,
    key: str,
    version_id: str | None,
    sequencer: str | None,
    event_name: str,
    event_time: datetime,
    request_id: str | None,
    etag: str | None,
    size: int | None,
) -> str:
    """128 bits of SHA-256 over what identifies the change, as 32 hex digits.

    With a sequencer, (bucket, key, version, sequencer, name) identify a change exactly. Without
    one (tagging, ACL, restore, S3-compatible producers) the S3 request id is the next best
    witness; EventBridge reports times only to the second, so the time is cut to the second
    where a request id pins the change. With neither, the full time, etag and size are used.
    """
    if sequencer is not None:
        parts: list[object] = ["s", bucket, key, version_id, sequencer, event_name]
    elif request_id:
        second = event_time.replace(microsecond=0)
        parts = ["r", bucket, key, version_id, event_name, format_time(second), request_id]
    else:
        parts = ["t", bucket, key, version_id, event_name, format_time(event_time), etag, size]
    digest = hashlib.sha256(identity_text(parts).encode("utf-8")).hexdigest()
    return digest[:32]


def identity_text(parts: list[object]) -> str:
    """`json.dumps(parts, ensure_ascii=False)` of strings, integers and None, the text every
    release has hashed: each part as jsontext writes it (the same bytes), with the standard
    library's ", " between them. Twice as fast as its encoder."""
    return "[" + ", ".join([compact(part) for part in parts]) + "]"
