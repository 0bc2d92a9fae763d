"""Bad input: each malformed message fails alone, with an error naming it and the reason.

(That the rest of the batch is stored is proven through the handler and the CLI in
tests/integration/test_bad_input_batches.py.)
"""

import json
from collections.abc import Callable
from typing import Any

import pytest

from eventstore.core.events import Effect, Source
from eventstore.core.hashing import compact_json
from eventstore.core.parsing import (
    MAX_MESSAGE_BYTES,
    Envelope,
    parse_envelope,
    parse_sqs_body,
)
from eventstore.errors import MalformedMessageError
from tests.conftest import load_event
from tests.helpers import first_record, sns_body
from tests.notification_factory import notification

MESSAGE_ID = "059f36b4-87a3-44ab-83d2-661975830a7d"


def rejected(body: str) -> MalformedMessageError:
    """Parse an SQS body that must be rejected; return the error."""
    with pytest.raises(MalformedMessageError) as failure:
        parse_sqs_body(body, message_id=MESSAGE_ID)
    error = failure.value
    assert error.message_id == MESSAGE_ID
    assert MESSAGE_ID in str(error)
    assert error.reason in str(error)
    return error


def put_record_with(change: Callable[[dict[str, Any]], None]) -> str:
    record = first_record("s3_put.json")
    change(record)
    return json.dumps(notification([record]))


def test_body_that_is_not_json() -> None:
    error = rejected("Records: [this is not JSON")
    assert error.reason.startswith("SQS message body is not JSON")


def test_empty_body() -> None:
    assert "not JSON" in rejected("").reason


def test_body_that_is_json_but_not_an_object() -> None:
    assert rejected("[1, 2, 3]").reason == "notification is not a JSON object"


def test_json_without_records() -> None:
    error = rejected(json.dumps({"Service": "Amazon S3", "Time": "2026-03-01T12:00:00Z"}))
    assert error.reason == "notification has no Records"


def test_records_that_is_not_a_list() -> None:
    assert rejected(json.dumps({"Records": {"eventName": "x"}})).reason == "Records is not a list"


def test_sns_notification_whose_message_is_not_json() -> None:
    error = rejected(sns_body("Amazon S3 says hello"))
    assert error.reason.startswith("SNS Message is not JSON")


def test_sns_notification_without_message() -> None:
    body = json.loads(sns_body("{}"))
    del body["Message"]
    assert rejected(json.dumps(body)).reason == "SNS Message is missing or not text"


def test_sns_message_without_records() -> None:
    assert (
        rejected(sns_body(json.dumps({"hello": "world"}))).reason == "notification has no Records"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r["s3"].pop("bucket"), "Records[0].s3.bucket is missing"),
        (lambda r: r["s3"]["bucket"].pop("name"), "Records[0].s3.bucket.name is missing"),
        (lambda r: r["s3"]["bucket"].update(name=""), "Records[0].s3.bucket.name is missing"),
        (lambda r: r["s3"]["object"].pop("key"), "Records[0].s3.object.key is missing"),
        (lambda r: r["s3"].pop("object"), "Records[0].s3.object is missing"),
        (lambda r: r.pop("s3"), "Records[0].s3 is missing"),
        (lambda r: r["s3"]["bucket"].update(name=42), "Records[0].s3.bucket.name is not a string"),
        (lambda r: r.pop("eventName"), "Records[0].eventName is missing"),
    ],
    ids=[
        "no-bucket",
        "no-bucket-name",
        "empty-bucket-name",
        "no-key",
        "no-object",
        "no-s3",
        "bucket-not-string",
        "no-event-name",
    ],
)
def test_record_missing_bucket_or_key(
    change: Callable[[dict[str, Any]], None], reason: str
) -> None:
    assert rejected(put_record_with(change)).reason == reason


def test_key_over_1024_bytes_after_decoding() -> None:
    # 1025 bytes once decoded: 341 three-byte characters and two ASCII ones
    raw_key = "%E2%9C%93" * 341 + "ab"
    error = rejected(put_record_with(lambda r: r["s3"]["object"].update(key=raw_key)))
    assert error.reason == ("Records[0].s3.object.key is 1025 bytes after decoding, over S3's 1024")


def test_key_of_1024_bytes_after_decoding_is_accepted() -> None:
    raw_key = "%E2%9C%93" * 341 + "a"
    delivery = parse_sqs_body(
        put_record_with(lambda r: r["s3"]["object"].update(key=raw_key)), message_id=MESSAGE_ID
    )
    assert len(delivery.events[0].key.encode("utf-8")) == 1024


def test_key_with_escapes_that_are_not_utf8() -> None:
    error = rejected(put_record_with(lambda r: r["s3"]["object"].update(key="caf%E9")))
    assert "Records[0].s3.object.key" in error.reason
    assert "not UTF-8" in error.reason


@pytest.mark.parametrize(
    "event_time",
    ["yesterday", "2026-13-01T00:00:00Z", "2026-03-01T25:00:00.000Z", "0001-01-01T00:00:00+01:00"],
)
def test_event_time_that_does_not_parse(event_time: str) -> None:
    error = rejected(put_record_with(lambda r: r.update(eventTime=event_time)))
    assert error.reason == f"Records[0].eventTime {event_time!r} is not an ISO 8601 time"


def test_event_time_missing_or_not_text() -> None:
    assert rejected(put_record_with(lambda r: r.pop("eventTime"))).reason == (
        "Records[0].eventTime is missing or not a string"
    )
    assert rejected(put_record_with(lambda r: r.update(eventTime=1772366400))).reason == (
        "Records[0].eventTime is missing or not a string"
    )


@pytest.mark.parametrize(
    ("size", "reason"),
    [
        ("forty-two", "Records[0].s3.object.size 'forty-two' is not a whole number"),
        ("12abc", "Records[0].s3.object.size '12abc' is not a whole number"),
        ("²", "Records[0].s3.object.size '²' is not a whole number"),
        (1.5, "Records[0].s3.object.size 1.5 is not a whole number"),
        (True, "Records[0].s3.object.size True is not a whole number"),
        ([1], "Records[0].s3.object.size [1] is not a whole number"),
        (-1, "Records[0].s3.object.size -1 is negative"),
        (10**30, f"Records[0].s3.object.size {10**30} is out of range"),
    ],
)
def test_wrong_types(size: object, reason: str) -> None:
    assert rejected(put_record_with(lambda r: r["s3"]["object"].update(size=size))).reason == reason


@pytest.mark.parametrize(("size", "parsed"), [("2048", 2048), (2048.0, 2048), (0, 0)])
def test_sizes_that_are_whole_numbers_in_another_type_are_accepted(
    size: object, parsed: int
) -> None:
    body = put_record_with(lambda r: r["s3"]["object"].update(size=size))
    assert parse_sqs_body(body, message_id=MESSAGE_ID).events[0].size == parsed


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r["s3"]["object"].update(sequencer="A" * 65),
         "Records[0].s3.object.sequencer has 65 hex digits, over the 64 stored"),
        (lambda r: r["s3"]["object"].update(sequencer=17),
         "Records[0].s3.object.sequencer 17 is not a string"),
        (lambda r: r["s3"]["object"].update(versionId=17),
         "Records[0].s3.object.versionId is not a string"),
        (lambda r: r.update(userIdentity="admin"), "Records[0].userIdentity is not an object"),
        (lambda r: r.update(eventVersion="1.0"), "Records[0].eventVersion '1.0' is not 2.x"),
    ],
)  # fmt: skip
def test_other_malformed_fields(change: Callable[[dict[str, Any]], None], reason: str) -> None:
    assert rejected(put_record_with(change)).reason == reason


def test_the_failing_record_is_named_by_its_index() -> None:
    good, bad = first_record("s3_put.json"), first_record("s3_copy.json")
    bad["s3"]["object"]["size"] = "lots"
    error = rejected(json.dumps({"Records": [good, bad]}))
    assert error.reason.startswith("Records[1].s3.object.size")


def test_unknown_event_name_is_stored_not_failed() -> None:
    # Given an event name S3 might add one day
    body = put_record_with(lambda r: r.update(eventName="ObjectSnapshot:Created"))
    # When it is parsed
    (event,) = parse_sqs_body(body, message_id=MESSAGE_ID).events
    # Then it is an event like any other, which changes no object state
    assert event.event_name == "ObjectSnapshot:Created"
    assert event.effect is Effect.NONE
    assert event.key == "invoices/2026/03/inv-1042.pdf"


def test_body_over_256_kb() -> None:
    # Given a notification padded (in an unknown field) past SQS's 256 KB limit
    record = first_record("s3_put.json")
    record["padding"] = "x" * MAX_MESSAGE_BYTES
    body = json.dumps(notification([record]))
    error = rejected(body)
    assert error.reason == (
        f"SQS message body is {len(body.encode())} bytes, over the {MAX_MESSAGE_BYTES}-byte limit"
    )


def test_body_of_exactly_256_kb_is_accepted() -> None:
    record = first_record("s3_put.json")
    record["padding"] = ""
    size = len(json.dumps(notification([record])).encode())
    record["padding"] = "x" * (MAX_MESSAGE_BYTES - size)
    body = json.dumps(notification([record]))
    assert len(body.encode()) == MAX_MESSAGE_BYTES
    assert len(parse_sqs_body(body, message_id=MESSAGE_ID).events) == 1


def test_multibyte_body_over_256_kb_is_measured_in_bytes() -> None:
    record = first_record("s3_put.json")
    record["padding"] = "é" * (MAX_MESSAGE_BYTES // 2)  # fewer characters than bytes
    body = json.dumps(notification([record]), ensure_ascii=False)
    assert len(body) < MAX_MESSAGE_BYTES < len(body.encode())
    assert "over the" in rejected(body).reason


def test_lone_surrogate_escape_is_rejected_before_it_reaches_the_database() -> None:
    body = put_record_with(lambda r: r.update(note="\ud800"))
    assert "\\ud800" in body
    assert rejected(body).reason == (
        "SQS message body has a lone surrogate at Records[0].note (not text)"
    )


def test_valid_surrogate_pairs_are_text() -> None:
    # json.dumps writes the emoji as the escaped surrogate pair "\\ud83c\\udf89"
    body = put_record_with(
        lambda r: r.update(note="🎉") or r["s3"]["object"].update(key="party%F0%9F%8E%89.txt")
    )
    assert "\\ud83c\\udf89" in body
    (event,) = parse_sqs_body(body, message_id=MESSAGE_ID).events
    assert event.key == "party🎉.txt"
    assert event.record["note"] == "🎉"


def test_bad_input_inside_sns_names_the_sqs_message() -> None:
    record = first_record("s3_put.json")
    record["eventTime"] = "not a time"
    error = rejected(sns_body(json.dumps(notification([record]))))
    assert error.reason == "Records[0].eventTime 'not a time' is not an ISO 8601 time"


def test_bad_eventbridge_event_names_the_event() -> None:
    document = load_event("eventbridge_object_created_put.json")
    del document["detail"]["object"]["key"]
    envelope = Envelope(document["id"], document, Source.EVENTBRIDGE)
    with pytest.raises(MalformedMessageError) as failure:
        parse_envelope(envelope)
    assert failure.value.message_id == document["id"]
    assert failure.value.reason == "detail.object.key is missing"


def test_sns_record_without_sns_object() -> None:
    with pytest.raises(MalformedMessageError) as failure:
        parse_envelope(Envelope("sns#0", None, Source.SNS))
    assert failure.value.reason == "SNS record has no Sns object"
    assert failure.value.message_id == "sns#0"


# -- what a backend cannot store fails while parsing, alike on SQLite and PostgreSQL ----------

NUL_REASON = "holds a NUL character (U+0000), which PostgreSQL cannot store"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r["s3"]["object"].update(key="a%00b"), "Records[0].s3.object.key 'a%00b'"),
        (lambda r: r["s3"]["object"].update(key="a\x00b"), "Records[0].s3.object.key"),
        (lambda r: r["s3"]["bucket"].update(name="acme\x00"), "Records[0].s3.bucket.name"),
        (lambda r: r.update(eventName="ObjectCreated:\x00"), "Records[0].eventName"),
        (lambda r: r["s3"]["object"].update(versionId="v\x001"), "Records[0].s3.object.versionId"),
        (lambda r: r["s3"]["object"].update(eTag="\x00"), "Records[0].s3.object.eTag"),
        (lambda r: r.update(userIdentity={"principalId": "AWS:\x00"}),
         "Records[0].userIdentity.principalId"),
        (lambda r: r["requestParameters"].update(sourceIPAddress="203.0.113.17\x00"),
         "Records[0].requestParameters.sourceIPAddress"),
        (lambda r: r["responseElements"].update({"x-amz-request-id": "C3D1\x00"}),
         "Records[0].responseElements.x-amz-request-id"),
        (lambda r: r.update(awsRegion="eu-west-1\x00"), "Records[0].awsRegion"),
    ],
)  # fmt: skip
def test_nul_in_a_stored_notification_field_is_malformed(
    change: Callable[[dict[str, Any]], None], field: str
) -> None:
    # Given a notification one of whose stored fields holds NUL (JSON spells it \u0000)
    body = put_record_with(change)
    # When it is parsed, Then it fails alone, naming the field
    assert rejected(body).reason == f"{field} {NUL_REASON}"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["detail"]["object"].update(key="a\x00b"), "detail.object.key"),
        (lambda d: d["detail"]["bucket"].update(name="b\x00"), "detail.bucket.name"),
        (lambda d: d.update({"detail-type": "Object\x00Created"}), "event.detail-type"),
        (lambda d: d["detail"].update(reason="Put\x00Object"), "event name"),
        (lambda d: d["detail"]["object"].update({"version-id": "\x00"}),
         "detail.object.version-id"),
        (lambda d: d["detail"]["object"].update(etag="\x00"), "detail.object.etag"),
        (lambda d: d["detail"].update(requester="\x00"), "detail.requester"),
        (lambda d: d["detail"].update({"source-ip-address": "\x00"}),
         "detail.source-ip-address"),
        (lambda d: d["detail"].update({"request-id": "\x00"}), "detail.request-id"),
        (lambda d: d.update(region="\x00"), "event.region"),
        (lambda d: d.update(id="963d320a\x00"), "message id"),
    ],
)  # fmt: skip
def test_nul_in_a_stored_eventbridge_field_is_malformed(
    change: Callable[[dict[str, Any]], None], field: str
) -> None:
    document = load_event("eventbridge_object_created_put.json")
    change(document)
    assert rejected(json.dumps(document)).reason == f"{field} {NUL_REASON}"


def test_nul_in_the_message_id_is_malformed() -> None:
    # Given a message id (the events' causation id) holding NUL, as a file might carry it
    with pytest.raises(MalformedMessageError) as failure:
        parse_sqs_body(put_record_with(lambda r: None), message_id="m\x00")
    assert failure.value.reason == f"message id {NUL_REASON}"


def test_nul_in_an_unknown_field_is_stored_escaped_in_the_verbatim_record() -> None:
    # Given a record whose unknown field holds NUL (PostgreSQL text cannot hold U+0000)
    body = put_record_with(lambda r: r.update(note="before\x00after"))
    # When it is parsed
    (event,) = parse_sqs_body(body, message_id=MESSAGE_ID).events
    # Then the record keeps it, and its stored JSON text spells it as an escape, not as NUL
    assert event.record["note"] == "before\x00after"
    stored = compact_json(event.record)
    assert "\x00" not in stored
    assert '"note":"before\\u0000after"' in stored
    assert json.loads(stored) == event.record


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (put_record_with(lambda r: r["s3"]["object"].update(key="a\ud800b")),
         "Records[0].s3.object.key"),
        (put_record_with(lambda r: r["s3"]["bucket"].update(name="\udfff")),
         "Records[0].s3.bucket.name"),
        (put_record_with(lambda r: r.update({"\ud83c": "unpaired in a name"})),
         "the name of 'Records[0].\\ud83c'"),
        (json.dumps({"Records": [first_record("s3_put.json")], "x": ["\udc00"]}), "x[0]"),
    ],
)  # fmt: skip
def test_lone_surrogates_anywhere_are_malformed_naming_where(body: str, where: str) -> None:
    # Given a body whose JSON spells a lone UTF-16 surrogate, which UTF-8 cannot encode
    # When it is parsed, Then it fails alone, naming where it is
    assert rejected(body).reason.startswith("SQS message body has a lone surrogate")
    assert where in rejected(body).reason


def test_a_raw_lone_surrogate_in_a_text_body_is_malformed() -> None:
    # Given a body (a Python str) holding the surrogate itself, not its JSON escape
    body = put_record_with(lambda r: None).replace("inv-1042", "inv-\ud800")
    # When it is parsed, Then it fails alone instead of failing the append of the batch
    assert rejected(body).reason == (
        "SQS message body has a lone surrogate at Records[0].s3.object.key (not text)"
    )


def test_a_lone_surrogate_in_a_decoded_document_is_malformed() -> None:
    # Given an already decoded notification (as a file's document) with a lone surrogate
    document = load_event("s3_put.json")
    document["Records"][0]["s3"]["object"]["key"] = "a\ud800"
    with pytest.raises(MalformedMessageError) as failure:
        parse_envelope(Envelope("file.json", document, Source.S3))
    assert failure.value.reason == (
        "document has a lone surrogate at Records[0].s3.object.key (not text)"
    )


def test_a_lone_surrogate_in_the_message_id_is_malformed() -> None:
    with pytest.raises(MalformedMessageError) as failure:
        parse_sqs_body(put_record_with(lambda r: None), message_id="m\ud800")
    assert failure.value.reason == "message id has a lone surrogate (not text)"


@pytest.mark.parametrize(
    ("size", "accepted"),
    [
        (2**63 - 1, True),
        (str(2**63 - 1), True),
        (2**63, False),
        (str(2**63), False),
        ("0" * 30 + "42", True),  # leading zeros do not make it large
        ("9" * 5000, False),  # more digits than int() converts
    ],
)
def test_sizes_up_to_what_a_bigint_holds(size: object, accepted: bool) -> None:
    body = put_record_with(lambda r: r["s3"]["object"].update(size=size))
    if accepted:
        assert parse_sqs_body(body, message_id=MESSAGE_ID).events[0].size == int(str(size))
    else:
        assert rejected(body).reason.endswith("is out of range")


def test_a_json_number_of_more_digits_than_python_converts_is_malformed() -> None:
    # Given a body whose size is a JSON integer of 5000 digits (json.loads refuses it with a
    # ValueError that is not a JSONDecodeError)
    body = put_record_with(lambda r: r["s3"]["object"].update(size=0)).replace(
        '"size": 0', '"size": ' + "9" * 5000
    )
    # When it is parsed, Then it fails alone as JSON that cannot be read
    assert rejected(body).reason.startswith("SQS message body is not JSON that can be read")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r["s3"]["bucket"].update(name="b" * 256),
         "Records[0].s3.bucket.name is 256 bytes, over the 255 stored"),
        (lambda r: r["s3"]["object"].update(versionId="v" * 1025),
         "Records[0].s3.object.versionId is 1025 bytes, over the 1024 stored"),
        (lambda r: r.update(userIdentity={"principalId": "é" * 513}),
         "Records[0].userIdentity.principalId is 1026 bytes, over the 1024 stored"),
        (lambda r: r.update(eventName="ObjectCreated:" + "x" * 1011),
         "Records[0].eventName is 1025 bytes, over the 1024 stored"),
    ],
)  # fmt: skip
def test_indexed_fields_longer_than_a_btree_entry_allows_are_malformed(
    change: Callable[[dict[str, Any]], None], reason: str
) -> None:
    assert rejected(put_record_with(change)).reason == reason


def test_indexed_fields_at_their_limits_are_accepted() -> None:
    def at_limits(record: dict[str, Any]) -> None:
        record["s3"]["bucket"]["name"] = "b" * 255
        record["s3"]["object"]["versionId"] = "v" * 1024
        record["userIdentity"]["principalId"] = "p" * 1024
        record["eventName"] = "ObjectCreated:" + "x" * 1010

    (event,) = parse_sqs_body(put_record_with(at_limits), message_id=MESSAGE_ID).events
    assert (len(event.bucket), len(event.version_id or ""), len(event.event_name)) == (
        255,
        1024,
        1024,
    )
