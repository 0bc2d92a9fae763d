"""Every accepted form of S3 event notification, turned into NewEvents; no I/O.

A *document* (a Lambda event, a file, a JSON line) splits into *envelopes*: the units that
succeed or fail as a whole (one SQS message, one SNS message, one notification). An envelope
parses into a Delivery (its events, and how many records were skipped) or raises
MalformedMessageError naming the reason.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from eventstore.core.eventbridge import event_name_for, is_eventbridge_s3_event
from eventstore.core.events import NewEvent, Source
from eventstore.core.identity import derive_event_id
from eventstore.core.ordering import normalise_sequencer
from eventstore.core.timeutil import parse_time
from eventstore.errors import MalformedMessageError

MAX_MESSAGE_BYTES = 256 * 1024  # SQS's own limit; a larger body did not come from S3
MAX_KEY_BYTES = 1024  # S3's limit on a decoded key
_HEX = re.compile(r"^[0-9A-Fa-f]+$")
_DIGITS = re.compile(r"[0-9]+")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
MAX_SIZE = 2**63 - 1  # what a BIGINT column holds; S3 objects are far smaller


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
    if isinstance(document, list):
        envelopes: list[Envelope] = []
        for index, item in enumerate(document):
            envelopes.extend(split_document(item, default_id=f"{default_id}[{index}]"))
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
            return [Envelope(str(document.get("id") or default_id), document, Source.EVENTBRIDGE)]
        if document.get("Type") == "Notification":
            return [Envelope(str(document.get("MessageId") or default_id), document, Source.SNS)]
    return [Envelope(default_id, document, Source.S3)]


def _sqs_envelope(record: Any, index: int, default_id: str) -> Envelope:
    if not isinstance(record, dict):
        return Envelope(f"{default_id}#{index}", record, Source.SQS)
    message_id = str(record.get("messageId") or f"{default_id}#{index}")
    return Envelope(message_id, record.get("body"), Source.SQS)


def _sns_envelope(record: Any, index: int, default_id: str) -> Envelope:
    sns = record.get("Sns") if isinstance(record, dict) else None
    message_id = f"{default_id}#{index}"
    if isinstance(sns, dict) and sns.get("MessageId"):
        message_id = str(sns["MessageId"])
    return Envelope(message_id, sns, Source.SNS)


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
    if source is Source.EVENTBRIDGE:
        return _eventbridge_delivery(body, envelope.message_id, Source.EVENTBRIDGE)
    return _parse_notification(body, envelope.message_id, source)


def _decode_text(body: Any, what: str) -> Any:
    if not isinstance(body, str):
        raise MalformedMessageError(f"{what} is missing or not text")
    if len(body) > MAX_MESSAGE_BYTES // 4 and len(body.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise MalformedMessageError(
            f"{what} is {len(body.encode('utf-8'))} bytes, over the {MAX_MESSAGE_BYTES}-byte limit"
        )
    try:
        document = json.loads(body)
    except json.JSONDecodeError as error:
        raise MalformedMessageError(
            f"{what} is not JSON ({error.msg} at char {error.pos})"
        ) from None
    if _SURROGATE_ESCAPE.search(body):
        # JSON may spell a lone UTF-16 surrogate ("\\ud800"); no database can store it, and
        # finding out at the append would fail the whole batch instead of this message.
        try:
            json.dumps(document, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedMessageError(f"{what} has a lone surrogate escape (not text)") from None
    return document


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
    name = _required_str(record, "eventName", where)
    if name.startswith("s3:"):  # MinIO and some other S3-compatible producers
        name = name[3:]
    event_time = _time(record.get("eventTime"), f"{where}.eventTime")
    s3 = _object(record, "s3", where)
    bucket = _required_str(_object(s3, "bucket", f"{where}.s3"), "name", f"{where}.s3.bucket")
    obj = _object(s3, "object", f"{where}.s3")
    key = decode_key(_required_str(obj, "key", f"{where}.s3.object"), f"{where}.s3.object.key")
    version_id = _optional_str(obj, "versionId", f"{where}.s3.object")
    sequencer = _sequencer(obj.get("sequencer"), f"{where}.s3.object.sequencer")
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
        principal_id=_optional_str(identity, "principalId", f"{where}.userIdentity"),
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
    detail_type = _required_str(document, "detail-type", "event")
    detail = _object(document, "detail", "event")
    bucket = _required_str(_object(detail, "bucket", "detail"), "name", "detail.bucket")
    obj = _object(detail, "object", "detail")
    key = decode_key(_required_str(obj, "key", "detail.object"), "detail.object.key")
    event = _new_event(
        name=event_name_for(detail_type, detail),
        event_time=_time(document.get("time"), "time"),
        bucket=bucket,
        key=key,
        version_id=_optional_str(obj, "version-id", "detail.object"),
        sequencer=_sequencer(obj.get("sequencer"), "detail.object.sequencer"),
        size=_size(obj.get("size"), "detail.object.size"),
        etag=_optional_str(obj, "etag", "detail.object"),
        principal_id=_optional_str(detail, "requester", "detail"),
        source_ip=_optional_str(detail, "source-ip-address", "detail"),
        request_id=_optional_str(detail, "request-id", "detail"),
        region=_optional_str(document, "region", "event") or None,
        source=source,
        record=document,
        causation_id=str(document.get("id") or message_id),
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
    if not key:
        raise MalformedMessageError(f"{where} is empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise MalformedMessageError(f"{where} {raw!r} has a lone surrogate (not text)") from None
    if size > MAX_KEY_BYTES:
        raise MalformedMessageError(
            f"{where} is {size} bytes after decoding, over S3's {MAX_KEY_BYTES}"
        )
    return key


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


def _required_str(parent: dict[str, Any], name: str, where: str) -> str:
    value = parent.get(name)
    if value is None or value == "":
        raise MalformedMessageError(f"{where}.{name} is missing")
    if not isinstance(value, str):
        raise MalformedMessageError(f"{where}.{name} is not a string")
    return value


def _optional_str(parent: dict[str, Any], name: str, where: str) -> str | None:
    value = parent.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedMessageError(f"{where}.{name} is not a string")
    return value


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedMessageError(f"{where} is missing or not a string")
    try:
        return parse_time(value)
    except ValueError:
        raise MalformedMessageError(f"{where} {value!r} is not an ISO 8601 time") from None


def _sequencer(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _HEX.match(value):
        raise MalformedMessageError(f"{where} {value!r} is not a hexadecimal string")
    return normalise_sequencer(value)


def _size(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MalformedMessageError(f"{where} {value!r} is not a whole number")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        size = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        size = int(value)
    else:
        raise MalformedMessageError(f"{where} {value!r} is not a whole number")
    if size < 0:
        raise MalformedMessageError(f"{where} {value!r} is negative")
    if size > MAX_SIZE:
        raise MalformedMessageError(f"{where} {value!r} is out of range")
    return size


def iter_documents(text: str, *, name: str) -> Iterator[tuple[str, Any]]:
    """Decode a file's text: one JSON document, or JSON lines. Yields (id, document).

    A line that is not JSON is yielded as its raw text, so that it fails alone as a message.
    """
    stripped = text.strip()
    if not stripped:
        return
    try:
        document = json.loads(stripped)
    except json.JSONDecodeError:
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
        except json.JSONDecodeError:
            yield line_id, _Undecodable(line)


def _checked_text(text: str, document: Any) -> Any:
    """The document, or its text marked undecodable when it spells a lone surrogate (which
    would fail the append of the whole batch; as text it fails alone, saying why)."""
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(document, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return _Undecodable(text)
    return document


@dataclass(frozen=True, slots=True)
class _Undecodable:
    text: str


def envelopes_of_file(text: str, *, name: str) -> Iterator[Envelope]:
    """Every envelope in a file of notifications, in file order."""
    for document_id, document in iter_documents(text, name=name):
        if isinstance(document, _Undecodable):
            # Handing the raw text over as an SQS body makes it fail as "not JSON", alone.
            yield Envelope(document_id, document.text, Source.SQS)
        else:
            yield from split_document(document, default_id=document_id)
