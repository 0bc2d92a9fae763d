"""Every accepted form of S3 event notification, turned into NewEvents; no I/O.

A *document* (a Lambda event, a file, a JSON line) splits into *envelopes*: the units that
succeed or fail as a whole (one SQS message, one SNS message, one notification). An envelope
parses into a Delivery (its events, and how many records were skipped) or raises
MalformedMessageError naming the reason.
"""

import itertools
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO
from urllib.parse import unquote_plus

from eventstore.core import jsontext
from eventstore.core.eventbridge import event_name_for, is_eventbridge_s3_event
from eventstore.core.events import NewEvent, Source
from eventstore.core.identity import derive_event_id
from eventstore.core.ordering import normalise_sequencer
from eventstore.core.timeutil import parse_time
from eventstore.errors import MalformedMessageError

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 256 * 1024  # SQS's own limit; a larger body did not come from S3
MAX_KEY_BYTES = 1024  # S3's limit on a decoded key
MAX_SIZE = 2**63 - 1  # what a BIGINT column holds; S3 objects are far smaller
MAX_SEQUENCER_CHARS = 64  # the width of the log's sequencer column; S3's are about 18 hex digits
# S3 notifications nest six levels deep. Far deeper documents are refused while parsing, as
# the encoders and walkers after the parse (the stored record's JSON, the append) recurse
# and would otherwise fail the whole batch with a RecursionError instead of this message.
MAX_NESTING = 100
# The columns that are indexed must fit PostgreSQL's B-tree entry limit (about 2.7 kB) when
# combined, e.g. (bucket, key, version id); SQLite has no such limit, so without these bounds
# the two backends would answer differently. Real values are far shorter (buckets 63 chars).
MAX_BUCKET_BYTES = 255
MAX_FIELD_BYTES = 1024
_HEX = re.compile(r"[0-9A-Fa-f]+")
_DIGITS = re.compile(r"[0-9]+")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One unit of delivery: it is stored whole or fails whole."""

    message_id: str
    body: Any  # decoded JSON, or the raw text of an SQS body
    source: Source


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one envelope held: its S3 events, and the records recognised and skipped."""

    message_id: str
    events: tuple[NewEvent, ...]
    skipped: int = 0

    @property
    def received(self) -> int:
        return len(self.events) + self.skipped


def split_document(document: Any, *, default_id: str = "document") -> list[Envelope]:
    """Split a decoded JSON document (or a list of them) into envelopes."""
    return _split(document, default_id, 1)


def _split(document: Any, default_id: str, depth: int) -> list[Envelope]:
    if isinstance(document, list):
        if depth > MAX_NESTING:
            # Lists this deep hold no accepted form: as one envelope, they fail alone.
            return [Envelope(default_id, document, Source.S3)]
        envelopes: list[Envelope] = []
        for index, item in enumerate(document):
            envelopes.extend(_split(item, f"{default_id}[{index}]", depth + 1))
        return envelopes
    if isinstance(document, dict):
        records = document.get("Records")
        if isinstance(records, list) and records and isinstance(records[0], dict):
            first = records[0]
            if first.get("eventSource") == "aws:sqs":
                return [
                    _sqs_envelope(record, index, default_id) for index, record in enumerate(records)
                ]
            if first.get("EventSource") == "aws:sns" or "Sns" in first:
                return [
                    _sns_envelope(record, index, default_id) for index, record in enumerate(records)
                ]
        if is_eventbridge_s3_event(document):
            event_id = _id_text(document.get("id"), default_id)
            return [Envelope(event_id, document, Source.EVENTBRIDGE)]
        if document.get("Type") == "Notification":
            message_id = _id_text(document.get("MessageId"), default_id)
            return [Envelope(message_id, document, Source.SNS)]
    return [Envelope(default_id, document, Source.S3)]


def _id_text(value: Any, default_id: str) -> str:
    """A message id as given when it is a usable string, else the id of its place."""
    return value if isinstance(value, str) and value.strip() else default_id


def _sqs_envelope(record: Any, index: int, default_id: str) -> Envelope:
    if not isinstance(record, dict):
        # Not an SQS record at all: it has no body (its own text is no message to decode).
        return Envelope(f"{default_id}#{index}", None, Source.SQS)
    message_id = _id_text(record.get("messageId"), f"{default_id}#{index}")
    return Envelope(message_id, record.get("body"), Source.SQS)


def _sns_envelope(record: Any, index: int, default_id: str) -> Envelope:
    sns = record.get("Sns") if isinstance(record, dict) else None
    message_id = f"{default_id}#{index}"
    if isinstance(sns, dict):
        message_id = _id_text(sns.get("MessageId"), message_id)
    return Envelope(message_id, sns, Source.SNS)


def sqs_records(event: Any) -> list[dict[str, Any]]:
    """The records of a Lambda SQS event, each a JSON object with a message id.

    Raises MalformedMessageError (with no message id) when the event is not that shape: its
    messages cannot then be named in a partial batch response, so no single one can fail.
    """
    if not isinstance(event, dict):
        raise MalformedMessageError("Lambda event is not a JSON object")
    records = event.get("Records")
    if not isinstance(records, list):
        raise MalformedMessageError("Lambda event has no Records list")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise MalformedMessageError(f"Lambda event Records[{index}] is not an object")
        message_id = record.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            raise MalformedMessageError(f"Lambda event Records[{index}] has no messageId")
    return records


def parse_sqs_record(record: Mapping[str, Any]) -> Delivery:
    """Parse one record of a Lambda SQS event (as sqs_records returns them): its body, named
    by its messageId. A record without a body fails alone like any malformed message."""
    message_id = _id_text(record.get("messageId"), "(no messageId)")
    return parse_sqs_body(record.get("body"), message_id=message_id)


def parse_sqs_body(body: Any, *, message_id: str) -> Delivery:
    """Parse the body of one SQS message: an SNS notification, an S3 notification or an
    EventBridge event, as text."""
    return parse_envelope(Envelope(message_id, body, Source.SQS))


def parse_envelope(envelope: Envelope) -> Delivery:
    """Parse one envelope, or raise MalformedMessageError naming it and the reason."""
    try:
        return _parse(envelope)
    except MalformedMessageError as error:
        raise error.for_message(envelope.message_id) from None


def _parse(envelope: Envelope) -> Delivery:
    body, source = envelope.body, envelope.source
    if source is Source.SQS:
        body = _decode_text(body, "SQS message body")
        if isinstance(body, dict) and body.get("Type") == "Notification":
            return _parse_sns_notification(body, envelope.message_id, Source.SQS_SNS)
        if is_eventbridge_s3_event(body):
            return _eventbridge_delivery(body, envelope.message_id, Source.SQS_EVENTBRIDGE)
        return _parse_notification(body, envelope.message_id, Source.SQS)
    if source is Source.SNS:
        if not isinstance(body, dict):
            raise MalformedMessageError("SNS record has no Sns object")
        return _parse_sns_notification(body, envelope.message_id, Source.SNS)
    # Here the body is already decoded (from a file, or by the caller) and is stored verbatim.
    _check_storable_document(body, "document")
    if source is Source.EVENTBRIDGE:
        return _eventbridge_delivery(body, envelope.message_id, Source.EVENTBRIDGE)
    return _parse_notification(body, envelope.message_id, source)


def _decode_text(body: Any, what: str) -> Any:
    if not isinstance(body, str):
        raise MalformedMessageError(f"{what} is missing or not text")
    if len(body) > MAX_MESSAGE_BYTES // 4 and _utf8_size(body) > MAX_MESSAGE_BYTES:
        raise MalformedMessageError(
            f"{what} is {_utf8_size(body)} bytes, over the {MAX_MESSAGE_BYTES}-byte limit"
        )
    document = _loads(body, what)
    if _may_be_unstorable(body):
        _check_storable_document(document, what)
    return document


def _utf8_size(text: str) -> int:
    # surrogatepass: a lone surrogate is measured here and refused, with its reason, later
    return len(text.encode("utf-8", errors="surrogatepass"))


def _loads(text: str, what: str) -> Any:
    try:
        return jsontext.loads(text)
    except json.JSONDecodeError as error:
        raise MalformedMessageError(
            f"{what} is not JSON ({error.msg} at char {error.pos})"
        ) from None
    except RecursionError:
        raise MalformedMessageError(
            f"{what} is nested too deeply (more than {MAX_NESTING} levels)"
        ) from None
    except ValueError as error:  # e.g. an integer of more digits than Python will convert
        raise MalformedMessageError(f"{what} is not JSON that can be read ({error})") from None


def _may_be_unstorable(text: str) -> bool:
    """False when the decoded text cannot hold a lone surrogate nor nest past MAX_NESTING:
    the common case, decided without walking the document."""
    # The escape's expression, not two substring tests for "\\ud" and "\\uD": over an SNS
    # body, whose every quote is escaped, those took 2.5 µs and the expression 0.8.
    return (
        _SURROGATE_ESCAPE.search(text) is not None
        or (not text.isascii() and _SURROGATE.search(text) is not None)
        or text.count("[") + text.count("{") > MAX_NESTING
    )


def _check_storable_document(document: Any, what: str) -> None:
    """Refuse what no backend can hold once decoded: nesting past MAX_NESTING, and lone
    UTF-16 surrogates (JSON may spell them, "\\ud800"; UTF-8 cannot), which would otherwise
    fail the append of the whole batch instead of this message. NUL is fine in the verbatim
    record: its JSON text spells it as the escape \\u0000."""
    reason = _unstorable(document)
    if reason is not None:
        raise MalformedMessageError(f"{what} {reason}")


def _unstorable(document: Any) -> str | None:
    # An explicit stack, not recursion: this must not itself fail on what it is there to find.
    stack: list[tuple[Any, int, str]] = [(document, 0, "")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and _SURROGATE.search(value):  # ASCII holds no surrogate
                return f"has a lone surrogate at {path or 'the top'} (not text)"
        elif isinstance(value, dict):
            if depth >= MAX_NESTING:
                return f"is nested too deeply (more than {MAX_NESTING} levels)"
            for name, item in value.items():
                child = f"{path}.{name}" if path else str(name)
                if isinstance(name, str) and _SURROGATE.search(name):
                    return f"has a lone surrogate in the name of {child!r} (not text)"
                stack.append((item, depth + 1, child))
        elif isinstance(value, list):
            if depth >= MAX_NESTING:
                return f"is nested too deeply (more than {MAX_NESTING} levels)"
            stack.extend((item, depth + 1, f"{path}[{i}]") for i, item in enumerate(value))
    return None


def _parse_sns_notification(
    notification: dict[str, Any], message_id: str, source: Source
) -> Delivery:
    kind = notification.get("Type")
    if kind != "Notification":
        raise MalformedMessageError(f"SNS message of Type {kind!r} is not a Notification")
    inner = _decode_text(notification.get("Message"), "SNS Message")
    if is_eventbridge_s3_event(inner):
        return _eventbridge_delivery(inner, message_id, source)
    return _parse_notification(inner, message_id, source)


def _parse_notification(document: Any, message_id: str, source: Source) -> Delivery:
    if not isinstance(document, dict):
        raise MalformedMessageError("notification is not a JSON object")
    if document.get("Event") == "s3:TestEvent":
        return Delivery(message_id, (), skipped=1)
    if is_eventbridge_s3_event(document):
        return _eventbridge_delivery(document, message_id, source)
    records = document.get("Records")
    if records is None:
        raise MalformedMessageError("notification has no Records")
    if not isinstance(records, list):
        raise MalformedMessageError("Records is not a list")
    events = tuple(
        _s3_record(record, index, message_id, source) for index, record in enumerate(records)
    )
    return Delivery(message_id, events)


def _s3_record(record: Any, index: int, message_id: str, source: Source) -> NewEvent:
    where = f"Records[{index}]"
    if not isinstance(record, dict):
        raise MalformedMessageError(f"{where} is not an object")
    version = record.get("eventVersion")
    if version is not None and not (isinstance(version, str) and version.startswith("2.")):
        raise MalformedMessageError(f"{where}.eventVersion {version!r} is not 2.x")
    name = _required_str(record, "eventName", where, max_bytes=MAX_FIELD_BYTES)
    if name.startswith("s3:"):  # MinIO and some other S3-compatible producers
        name = name[3:]
    event_time = _time(record.get("eventTime"), f"{where}.eventTime")
    s3 = _object(record, "s3", where)
    bucket = _required_str(
        _object(s3, "bucket", f"{where}.s3"), "name", f"{where}.s3.bucket", MAX_BUCKET_BYTES
    )
    obj = _object(s3, "object", f"{where}.s3")
    key = decode_key(_required_str(obj, "key", f"{where}.s3.object"), f"{where}.s3.object.key")
    version_id = _optional_str(obj, "versionId", f"{where}.s3.object", MAX_FIELD_BYTES)
    sequencer = _sequencer(obj.get("sequencer"), f"{where}.s3.object.sequencer", message_id)
    size = _size(obj.get("size"), f"{where}.s3.object.size")
    etag = _optional_str(obj, "eTag", f"{where}.s3.object")
    identity = _optional_object(record, "userIdentity", where)
    request_parameters = _optional_object(record, "requestParameters", where)
    response_elements = _optional_object(record, "responseElements", where)
    request_id = _optional_str(response_elements, "x-amz-request-id", f"{where}.responseElements")
    return _new_event(
        name=name,
        event_time=event_time,
        bucket=bucket,
        key=key,
        version_id=version_id,
        sequencer=sequencer,
        size=size,
        etag=etag,
        principal_id=_optional_str(
            identity, "principalId", f"{where}.userIdentity", MAX_FIELD_BYTES
        ),
        source_ip=_optional_str(
            request_parameters, "sourceIPAddress", f"{where}.requestParameters"
        ),
        request_id=request_id,
        region=_optional_str(record, "awsRegion", where) or None,
        source=source,
        record=record,
        causation_id=message_id,
    )


def _eventbridge_delivery(document: Any, message_id: str, source: Source) -> Delivery:
    if not isinstance(document, dict):
        raise MalformedMessageError("EventBridge event is not an object")
    detail_type = _required_str(document, "detail-type", "event", MAX_FIELD_BYTES)
    detail = _object(document, "detail", "event")
    bucket = _required_str(
        _object(detail, "bucket", "detail"), "name", "detail.bucket", MAX_BUCKET_BYTES
    )
    obj = _object(detail, "object", "detail")
    # EventBridge keys are not form-encoded: `a+b c.txt` arrives as it is named (a notification
    # would say `a%2Bb+c.txt`). Decoding it again would turn its `+` into a space and give the
    # change another id than its notification twin.
    key = _checked_key(_required_str(obj, "key", "detail.object"), "detail.object.key")
    event = _new_event(
        name=event_name_for(detail_type, detail),
        event_time=_time(document.get("time"), "time"),
        bucket=bucket,
        key=key,
        version_id=_optional_str(obj, "version-id", "detail.object", MAX_FIELD_BYTES),
        sequencer=_sequencer(obj.get("sequencer"), "detail.object.sequencer", message_id),
        size=_size(obj.get("size"), "detail.object.size"),
        etag=_optional_str(obj, "etag", "detail.object"),
        principal_id=_optional_str(detail, "requester", "detail", MAX_FIELD_BYTES),
        source_ip=_optional_str(detail, "source-ip-address", "detail"),
        request_id=_optional_str(detail, "request-id", "detail"),
        region=_optional_str(document, "region", "event") or None,
        source=source,
        record=document,
        causation_id=_id_text(document.get("id"), message_id),
    )
    return Delivery(message_id, (event,))


def _new_event(
    *,
    name: str,
    event_time: datetime,
    bucket: str,
    key: str,
    version_id: str | None,
    sequencer: str | None,
    size: int | None,
    etag: str | None,
    principal_id: str | None,
    source_ip: str | None,
    request_id: str | None,
    region: str | None,
    source: Source,
    record: dict[str, Any],
    causation_id: str | None,
) -> NewEvent:
    # The fields above were checked where they were read, by their path in the message; these
    # two are made from several parts (an EventBridge reason, a message id) and checked here.
    _storable_text(name, "event name", MAX_FIELD_BYTES)
    if causation_id is not None:
        _storable_text(causation_id, "message id")
    event_id = derive_event_id(
        bucket=bucket,
        key=key,
        version_id=version_id,
        sequencer=sequencer,
        event_name=name,
        event_time=event_time,
        request_id=request_id,
        etag=etag,
        size=size,
    )
    return NewEvent(
        event_id=event_id,
        event_name=name,
        event_time=event_time,
        bucket=bucket,
        key=key,
        version_id=version_id,
        sequencer=sequencer,
        size=size,
        etag=etag,
        principal_id=principal_id,
        source_ip=source_ip,
        request_id=request_id,
        region=region,
        source=source,
        record=record,
        causation_id=causation_id,
    )


def decode_key(raw: str, where: str = "key") -> str:
    """Decode a form-URL-encoded S3 key once: `+` is a space, `%2B` a plus, UTF-8 escapes."""
    try:
        key = unquote_plus(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise MalformedMessageError(
            f"{where} {raw!r} has percent-escapes that are not UTF-8"
        ) from None
    return _checked_key(key, where, raw=raw)


def _checked_key(key: str, where: str, *, raw: str | None = None) -> str:
    """A key as S3 names objects (`raw` is what the message spelled, when it was decoded)."""
    if not key:
        raise MalformedMessageError(f"{where} is empty")
    shown = repr(raw if raw is not None else key)
    if "\x00" in key:
        raise MalformedMessageError(
            f"{where} {shown} holds a NUL character (U+0000), which PostgreSQL cannot store"
        )
    if not key.isascii() and _SURROGATE.search(key):  # ASCII holds no surrogate
        raise MalformedMessageError(f"{where} {shown} has a lone surrogate (not text)")
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        decoded = " after decoding" if raw is not None else ""
        raise MalformedMessageError(f"{where} is {size} bytes{decoded}, over S3's {MAX_KEY_BYTES}")
    return key


def _storable_text(value: str, where: str, max_bytes: int | None = None) -> str:
    """`value`, when both backends can store it: PostgreSQL refuses NUL in text, UTF-8 has no
    lone surrogates, and indexed columns must fit a B-tree entry."""
    if "\x00" in value:
        raise MalformedMessageError(
            f"{where} holds a NUL character (U+0000), which PostgreSQL cannot store"
        )
    if not value.isascii() and _SURROGATE.search(value):  # ASCII holds no surrogate
        raise MalformedMessageError(f"{where} has a lone surrogate (not text)")
    if max_bytes is not None and len(value) * 4 > max_bytes:
        size = len(value.encode("utf-8"))
        if size > max_bytes:
            raise MalformedMessageError(f"{where} is {size} bytes, over the {max_bytes} stored")
    return value


def _object(parent: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = parent.get(name)
    if value is None:
        raise MalformedMessageError(f"{where}.{name} is missing")
    if not isinstance(value, dict):
        raise MalformedMessageError(f"{where}.{name} is not an object")
    return value


def _optional_object(parent: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = parent.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedMessageError(f"{where}.{name} is not an object")
    return value


def _required_str(
    parent: dict[str, Any], name: str, where: str, max_bytes: int | None = None
) -> str:
    value = parent.get(name)
    if value is None or value == "":
        raise MalformedMessageError(f"{where}.{name} is missing")
    if not isinstance(value, str):
        raise MalformedMessageError(f"{where}.{name} is not a string")
    return _storable_text(value, f"{where}.{name}", max_bytes)


def _optional_str(
    parent: dict[str, Any], name: str, where: str, max_bytes: int | None = None
) -> str | None:
    value = parent.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedMessageError(f"{where}.{name} is not a string")
    return _storable_text(value, f"{where}.{name}", max_bytes)


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedMessageError(f"{where} is missing or not a string")
    try:
        return parse_time(value)
    except ValueError:
        raise MalformedMessageError(f"{where} {value!r} is not an ISO 8601 time") from None


def _sequencer(value: Any, where: str, message_id: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedMessageError(f"{where} {value!r} is not a string")
    cleaned = value.strip()
    if not cleaned:
        return None
    if not _HEX.fullmatch(cleaned):
        # Widely copied sample events carry `"sequencer": "Happy Sequencer"`. The record is
        # still an S3 event: keep it (verbatim, value included) and order it as events
        # without a sequencer are ordered, by event time, rather than fail the whole message.
        shown = cleaned if len(cleaned) <= 80 else cleaned[:80] + "…"
        logger.warning(
            "message %s: %s %r is not hexadecimal; the event is stored without a sequencer"
            " and ordered by its event time",
            message_id,
            where,
            shown,
            extra={"message_id": message_id, "field": where, "value": shown},
        )
        return None
    if len(cleaned) > MAX_SEQUENCER_CHARS:
        raise MalformedMessageError(
            f"{where} has {len(cleaned)} hex digits, over the {MAX_SEQUENCER_CHARS} stored"
        )
    return normalise_sequencer(cleaned)


def _size(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MalformedMessageError(f"{where} {value!r} is not a whole number")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        digits = value.strip().lstrip("0") or "0"
        if len(digits) > len(str(MAX_SIZE)):  # int() refuses strings of over 4300 digits
            raise MalformedMessageError(f"{where} {_shorten(value)!r} is out of range")
        size = int(digits)
    elif isinstance(value, float) and value.is_integer():
        size = int(value)
    else:
        raise MalformedMessageError(f"{where} {_shorten(value)!r} is not a whole number")
    if size < 0:
        raise MalformedMessageError(f"{where} {value!r} is negative")
    if size > MAX_SIZE:
        raise MalformedMessageError(f"{where} {_shorten(value)!r} is out of range")
    return size


def _shorten(value: Any) -> Any:
    """A value short enough to quote in a reason."""
    if isinstance(value, str) and len(value) > 80:
        return value[:80] + "…"
    return value


def iter_documents(text: str, *, name: str) -> Iterator[tuple[str, Any]]:
    """Decode a file's text: one JSON document, or JSON lines. Yields (id, document).

    A line that is not JSON (or not a document that can be stored) is yielded as its raw
    text, so that it fails alone as a message, saying why.
    """
    stripped = text.strip()
    if not stripped:
        return
    try:
        document = json.loads(stripped)
    except RecursionError:
        # One document nested too deeply, or JSON lines whose first line is: only lines that
        # are JSON by themselves tell the two apart.
        first = next(line for line in stripped.splitlines() if line.strip())
        if first == stripped or not _is_json_or_too_deep(first):
            yield name, _Undecodable(stripped)
            return
    except ValueError:  # not JSON as a whole (JSONDecodeError among them): try JSON lines
        pass
    else:
        yield name, _checked_text(stripped, document)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        line_id = f"{name}:{number}"
        try:
            yield line_id, _checked_text(line, json.loads(line))
        except (ValueError, RecursionError):
            yield line_id, _Undecodable(line)


def _is_json_or_too_deep(line: str) -> bool:
    try:
        json.loads(line)
    except RecursionError:
        return True
    except ValueError:
        return False
    return True


def _checked_text(text: str, document: Any) -> Any:
    """The document, or its text marked undecodable when it cannot be stored (too deep, a
    lone surrogate), which would fail the append of the whole batch; as text it fails alone,
    saying why."""
    if _may_be_unstorable(text) and _unstorable(document) is not None:
        return _Undecodable(text)
    return document


@dataclass(frozen=True, slots=True)
class _Undecodable:
    text: str


def envelopes_of_file(text: str, *, name: str) -> Iterator[Envelope]:
    """Every envelope in a file of notifications, in file order."""
    for document_id, document in iter_documents(text, name=name):
        if isinstance(document, _Undecodable):
            # Handing the raw text over as an SQS body makes it fail alone, with its reason.
            yield Envelope(document_id, document.text, Source.SQS)
        else:
            yield from split_document(document, default_id=document_id)


# A line, or a file that is one document, is at most this long: a Lambda event (the largest
# document ingest accepts whole) is under Lambda's 6 MB payload limit; the rest is slack for
# a document saved pretty-printed. A longer line fails alone, and memory stays bounded.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


def _numbered_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) of each non-blank line; None for a line over MAX_DOCUMENT_BYTES,
    which is skipped without being held."""
    number = 0
    while line := stream.readline(MAX_DOCUMENT_BYTES + 1):
        number += 1
        if len(line) > MAX_DOCUMENT_BYTES and not line.endswith(b"\n"):
            while (rest := stream.readline(MAX_DOCUMENT_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield number, None
        elif line.strip():
            yield number, line


def envelopes_of_stream(
    stream: BinaryIO, *, name: str
) -> Iterator[Envelope | MalformedMessageError]:
    """The envelopes of a file of notifications, read line by line: JSON lines are parsed one
    at a time; a file that is one JSON document (up to MAX_DOCUMENT_BYTES, e.g. a Lambda
    event over several lines) is read whole, and gets the ids envelopes_of_file gives it. A
    line that cannot be read (not UTF-8, too long) comes out as its failure."""
    lines = _numbered_lines(stream)
    head = list(itertools.islice(lines, 2))
    if not head:
        return
    first = _line_text(*head[0], name=name)
    if len(head) == 1 or not (isinstance(first, str) and _is_json(first)):
        # One line, or a first line that is not JSON alone: perhaps one document.
        whole = _read_whole_document(head, lines)
        if whole is not None:
            yield from envelopes_of_file(whole, name=name)
            return
    for number, line in itertools.chain(head, lines):
        text = _line_text(number, line, name=name)
        if isinstance(text, MalformedMessageError):
            yield text
        else:
            yield from _envelopes_of_line(text, f"{name}:{number}")


def _read_whole_document(
    head: list[tuple[int, bytes | None]], lines: Iterator[tuple[int, bytes | None]]
) -> str | None:
    """Read on into `head` up to MAX_DOCUMENT_BYTES; the text if it all is one JSON document
    (else `head` holds what was read, for reading line by line)."""
    size = sum(len(line or b"") for _, line in head)
    for numbered in lines:
        head.append(numbered)
        size += len(numbered[1] or b"")
        if numbered[1] is None or size > MAX_DOCUMENT_BYTES:
            return None
    if any(line is None for _, line in head):
        return None
    try:
        text = b"".join(line or b"" for _, line in head).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if _is_json(text) else None


def _line_text(number: int, line: bytes | None, *, name: str) -> str | MalformedMessageError:
    line_id = f"{name}:{number}"
    if line is None:
        return MalformedMessageError(
            f"line {number} is longer than {MAX_DOCUMENT_BYTES} bytes", message_id=line_id
        )
    try:
        return line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as error:
        return MalformedMessageError(
            f"line {number} is not UTF-8 (byte 0x{line[error.start]:02x} at column "
            f"{error.start + 1})",
            message_id=line_id,
        )


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _envelopes_of_line(text: str, line_id: str) -> Iterator[Envelope]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        # As an SQS body the raw text fails alone, as "not JSON", saying where.
        yield Envelope(line_id, text, Source.SQS)
        return
    if "\\u" in text:
        # It may spell a lone surrogate, which envelopes_of_file turns into a failure of its
        # own rather than letting it fail the append of a whole batch.
        yield from envelopes_of_file(text, name=line_id)
    else:
        yield from split_document(document, default_id=line_id)
