"""Parsing every accepted form of S3 event into NewEvents (no I/O)."""

import json
import logging
from datetime import UTC, datetime
from urllib.parse import quote_plus

import pytest

from eventstore.core.events import NewEvent, Source
from eventstore.core.identity import derive_event_id
from eventstore.core.ordering import OrderKey, sort_events_of_one_key
from eventstore.core.parsing import (
    Envelope,
    decode_key,
    envelopes_of_file,
    parse_envelope,
    parse_sqs_body,
    split_document,
)
from eventstore.errors import MalformedMessageError
from tests.conftest import event_text, load_event
from tests.helpers import deliveries_of, events_of, first_record, only_event_of, sns_body
from tests.notification_factory import notification

INVOICE_KEY = "invoices/2026/03/inv-1042.pdf"
INVOICE_VERSION = "Rb_l2T8UHDkFEwCgJjhlgPOZC0qJ.vpD"

# The same S3 change (one PUT of the invoice) through every wrapper S3 events arrive in.
SAME_PUT_WRAPPERS = {
    "s3_put.json": Source.S3,
    "sqs_sns_put.json": Source.SQS_SNS,
    "sqs_raw_delivery_put.json": Source.SQS,
    "sqs_direct_put.json": Source.SQS,
    "sns_put.json": Source.SNS,
    "eventbridge_object_created_put.json": Source.EVENTBRIDGE,
    "sqs_eventbridge_put.json": Source.SQS_EVENTBRIDGE,
}


@pytest.mark.parametrize(("fixture", "source"), SAME_PUT_WRAPPERS.items())
def test_every_wrapper_yields_the_same_put(fixture: str, source: Source) -> None:
    # Given the invoice upload as one of the wrappers AWS delivers it in
    # When it is parsed
    event = only_event_of(fixture)
    # Then the S3 event is the same, and only how it arrived differs
    assert event.event_name == "ObjectCreated:Put"
    assert event.bucket == "acme-invoices"
    assert event.key == INVOICE_KEY
    assert event.version_id == INVOICE_VERSION
    assert event.sequencer == "0065E1F7A93B2C4D12"
    assert event.size == 48213
    assert event.etag == "0f343b0931126a20f133d67c2b018a3b"
    assert event.request_id == "C3D13FE58DE4C810"
    assert event.region == "eu-west-1"
    assert event.source is source
    assert event.event_id == only_event_of("s3_put.json").event_id


def test_notification_fields_are_taken_from_their_documented_places() -> None:
    # Given a bare S3 notification (the Lambda S3 event shape)
    event = only_event_of("s3_put.json")
    # Then principal, source IP, request id and time come from the record
    assert event.principal_id == "AWS:AIDAJDPLRKLG7UEXAMPLE"
    assert event.source_ip == "203.0.113.17"
    assert event.event_time == datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert event.stream == f"s3://acme-invoices/{INVOICE_KEY}"


def test_eventbridge_fields_are_taken_from_the_detail() -> None:
    event = only_event_of("eventbridge_object_created_put.json")
    assert event.principal_id == "123456789012"
    assert event.source_ip == "203.0.113.17"
    assert event.event_time == datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    # the EventBridge event id is what caused this event
    assert event.causation_id == load_event("eventbridge_object_created_put.json")["id"]


def test_sqs_message_id_is_the_causation_of_its_events() -> None:
    document = load_event("sqs_sns_put.json")
    (envelope,) = split_document(document)
    assert envelope.message_id == document["Records"][0]["messageId"]
    (event,) = parse_envelope(envelope).events
    assert event.causation_id == envelope.message_id


@pytest.mark.parametrize(
    ("fixture", "key"),
    [
        ("s3_put_key_with_spaces.json", "photos/summer holiday/beach day (1).jpg"),
        ("s3_post.json", "uploads/form+data/avatar.png"),
        ("s3_copy.json", "reports/q1+q2.csv"),
        ("s3_complete_multipart_upload.json", "data/year=2026/month=03/part-0000.parquet"),
        ("s3_delete_marker_created.json", "menus/café crème.pdf"),
        ("s3_lifecycle_expiration_delete_marker_created.json", "tmp/session=abc123/state.json"),
        ("minio_put.json", "cats/tabby #1.jpg"),
        ("moto_put.json", "incoming/report 2026.csv"),
    ],
)
def test_keys_are_decoded_once(fixture: str, key: str) -> None:
    assert only_event_of(fixture).key == key


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("a+b.txt", "a b.txt"),
        ("a%2Bb.txt", "a+b.txt"),
        ("x%3Dy", "x=y"),
        ("caf%C3%A9", "café"),
        ("50%25+off", "50% off"),
        ("%252B", "%2B"),  # decoded once only: a literal "%2B" in the key stays
        ("%E2%9C%93+done", "✓ done"),
        ("plain/key.txt", "plain/key.txt"),
    ],
)
def test_decode_key(raw: str, decoded: str) -> None:
    assert decode_key(raw) == decoded


def test_decode_key_rejects_escapes_that_are_not_utf8() -> None:
    with pytest.raises(MalformedMessageError, match="not UTF-8"):
        decode_key("caf%E9")


def test_key_of_exactly_1024_bytes_is_accepted() -> None:
    # 512 two-byte characters, written as percent-escapes (3072 characters before decoding)
    assert len(decode_key("%C3%A9" * 512).encode("utf-8")) == 1024


@pytest.mark.parametrize(
    "fixture",
    [
        "s3_delete_unversioned.json",
        "s3_delete_version.json",
        "s3_delete_marker_created.json",
        "s3_lifecycle_expiration_delete.json",
        "s3_lifecycle_expiration_delete_marker_created.json",
        "eventbridge_object_deleted_lifecycle_expiration_delete.json",
    ],
)
def test_deletes_without_size_or_etag(fixture: str) -> None:
    event = only_event_of(fixture)
    assert event.size is None
    assert event.etag is None


@pytest.mark.parametrize(
    ("fixture", "event_version"),
    [
        ("s3_put.json", "2.1"),
        ("s3_replication_operation_failed.json", "2.2"),
        ("s3_replication_after_threshold.json", "2.2"),
        ("s3_intelligent_tiering.json", "2.3"),
        ("s3_lifecycle_transition.json", "2.3"),
        ("minio_put.json", "2.0"),
    ],
)
def test_every_event_version_2x_is_accepted(fixture: str, event_version: str) -> None:
    event = only_event_of(fixture)
    assert event.record["eventVersion"] == event_version


@pytest.mark.parametrize("event_version", ["1.0", "3.0", 2.1])
def test_other_event_versions_are_rejected(event_version: object) -> None:
    record = first_record("s3_put.json")
    record["eventVersion"] = event_version
    with pytest.raises(MalformedMessageError, match=r"eventVersion .* is not 2\.x"):
        parse_sqs_body(json.dumps(notification([record])), message_id="m-1")


@pytest.mark.parametrize(
    ("fixture", "event_name"),
    [
        ("s3_post.json", "ObjectCreated:Post"),
        ("s3_copy.json", "ObjectCreated:Copy"),
        ("s3_complete_multipart_upload.json", "ObjectCreated:CompleteMultipartUpload"),
        ("s3_delete_unversioned.json", "ObjectRemoved:Delete"),
        ("s3_delete_marker_created.json", "ObjectRemoved:DeleteMarkerCreated"),
        ("s3_lifecycle_expiration_delete.json", "LifecycleExpiration:Delete"),
        (
            "s3_lifecycle_expiration_delete_marker_created.json",
            "LifecycleExpiration:DeleteMarkerCreated",
        ),
        ("s3_restore_post.json", "ObjectRestore:Post"),
        ("s3_restore_completed.json", "ObjectRestore:Completed"),
        ("s3_restore_delete.json", "ObjectRestore:Delete"),
        ("s3_replication_operation_failed.json", "Replication:OperationFailedReplication"),
        ("s3_replication_after_threshold.json", "Replication:OperationReplicatedAfterThreshold"),
        ("s3_tagging_put.json", "ObjectTagging:Put"),
        ("s3_tagging_delete.json", "ObjectTagging:Delete"),
        ("s3_acl_put.json", "ObjectAcl:Put"),
        ("s3_intelligent_tiering.json", "IntelligentTiering"),
        ("s3_lifecycle_transition.json", "LifecycleTransition"),
        ("minio_put.json", "ObjectCreated:Put"),  # "s3:ObjectCreated:Put" from MinIO
    ],
)
def test_notification_event_names(fixture: str, event_name: str) -> None:
    assert only_event_of(fixture).event_name == event_name


@pytest.mark.parametrize(
    ("fixture", "event_name"),
    [
        ("eventbridge_object_created_put.json", "ObjectCreated:Put"),
        ("eventbridge_object_created_post.json", "ObjectCreated:Post"),
        ("eventbridge_object_created_copy.json", "ObjectCreated:Copy"),
        (
            "eventbridge_object_created_complete_multipart_upload.json",
            "ObjectCreated:CompleteMultipartUpload",
        ),
        (
            "eventbridge_object_deleted_delete_marker_created.json",
            "ObjectRemoved:DeleteMarkerCreated",
        ),
        ("eventbridge_object_deleted_permanently_deleted.json", "ObjectRemoved:Delete"),
        (
            "eventbridge_object_deleted_lifecycle_expiration_delete.json",
            "LifecycleExpiration:Delete",
        ),
        (
            "eventbridge_object_deleted_lifecycle_expiration_delete_marker.json",
            "LifecycleExpiration:DeleteMarkerCreated",
        ),
        ("eventbridge_object_restore_initiated.json", "ObjectRestore:Post"),
        ("eventbridge_object_restore_completed.json", "ObjectRestore:Completed"),
        ("eventbridge_object_restore_expired.json", "ObjectRestore:Delete"),
        ("eventbridge_object_tags_added.json", "ObjectTagging:Put"),
        ("eventbridge_object_tags_deleted.json", "ObjectTagging:Delete"),
        ("eventbridge_object_acl_updated.json", "ObjectAcl:Put"),
        ("eventbridge_object_storage_class_changed.json", "LifecycleTransition"),
        ("eventbridge_object_access_tier_changed.json", "IntelligentTiering"),
    ],
)
def test_eventbridge_detail_types_map_to_notification_names(fixture: str, event_name: str) -> None:
    event = only_event_of(fixture)
    assert event.event_name == event_name
    assert event.source is Source.EVENTBRIDGE


def test_eventbridge_key_is_taken_as_it_is() -> None:
    event = only_event_of("eventbridge_object_deleted_lifecycle_expiration_delete_marker.json")
    assert event.key == "tmp/session=def456/state.json"


def test_an_eventbridge_key_with_spaces_is_the_key_its_notification_encodes() -> None:
    # Given one upload of a key with spaces, as a notification (form-encoded: `+` for a space)
    # and as EventBridge delivers it (the key as named)
    from_notification = only_event_of("s3_put_key_with_spaces.json")
    from_eventbridge = only_event_of("eventbridge_object_created_put_key_with_spaces.json")
    # Then both are the same key and the same event
    assert from_eventbridge.key == "photos/summer holiday/beach day (1).jpg"
    assert from_eventbridge.key == from_notification.key
    assert from_eventbridge.event_id == from_notification.event_id


def eventbridge_put_of(key: str) -> NewEvent:
    """The invoice PUT through EventBridge, under another key (EventBridge does not encode)."""
    document = load_event("eventbridge_object_created_put.json")
    document["detail"]["object"]["key"] = key
    (event,) = parse_envelope(Envelope(document["id"], document, Source.EVENTBRIDGE)).events
    return event


def notification_put_of(key: str) -> NewEvent:
    """The same PUT through SNS and SQS, its key form-URL-encoded as S3 encodes it."""
    record = first_record("s3_put.json")
    record["s3"]["object"]["key"] = quote_plus(key, safe="/")
    return parse_sqs_body(sns_body(json.dumps(notification([record]))), message_id="m-1").events[0]


@pytest.mark.parametrize(
    "key",
    [
        "a+b%20c d.txt",
        "report+final 2026.pdf",
        "Screenshot from 2026-03-11 18-23-57.png",
        "100% done+dusted/%2B %25.txt",
        "plus+only",
        "café/crème brûlée.txt",
    ],
)
def test_one_change_through_eventbridge_and_a_notification_has_one_key_and_id(key: str) -> None:
    # Given the same PUT of a key holding `+`, `%` or spaces, through EventBridge (as named)
    # and through a notification (form-encoded)
    from_eventbridge = eventbridge_put_of(key)
    from_notification = notification_put_of(key)
    # Then both store the key as named, under one event id
    assert from_eventbridge.key == key
    assert from_notification.key == key
    assert from_eventbridge.event_id == from_notification.event_id


def test_an_eventbridge_key_is_not_decoded_a_second_time() -> None:
    # Given an EventBridge key that looks form-encoded
    event = eventbridge_put_of("report%2Bfinal+2026.pdf")
    # Then it is that key, not "report+final 2026.pdf" (which S3 would have named otherwise)
    assert event.key == "report%2Bfinal+2026.pdf"
    assert event.event_id != notification_put_of("report+final 2026.pdf").event_id


def test_unknown_eventbridge_detail_type_is_kept_under_a_telling_name() -> None:
    document = load_event("eventbridge_object_acl_updated.json")
    document["detail-type"] = "Object Legal Hold Changed"
    (envelope,) = split_document(document)
    (event,) = parse_envelope(envelope).events
    assert event.event_name == "EventBridge:ObjectLegalHoldChanged"


@pytest.mark.parametrize(
    ("notification", "eventbridge"),
    [
        ("sqs_sns_put.json", "eventbridge_object_created_put.json"),
        ("s3_tagging_put.json", "eventbridge_object_tags_added.json"),
    ],
)
def test_same_change_as_notification_and_eventbridge_has_one_event_id(
    notification: str, eventbridge: str
) -> None:
    # Given one change seen through a notification and through EventBridge (whose sequencer
    # is lower-case, and whose time has no fraction)
    from_notification = only_event_of(notification)
    from_eventbridge = only_event_of(eventbridge)
    # Then both get the same id
    assert from_notification.event_id == from_eventbridge.event_id
    assert from_notification.event_time != from_eventbridge.event_time


@pytest.mark.parametrize("fixture", ["s3_test_event.json", "sqs_sns_test_event.json"])
def test_the_s3_test_event_is_skipped_not_failed(fixture: str) -> None:
    (delivery,) = deliveries_of(fixture)
    assert delivery.events == ()
    assert delivery.skipped == 1
    assert delivery.received == 1


def test_moto_records_without_sequencer_version_or_identity_are_accepted() -> None:
    event = only_event_of("moto_put.json")
    assert event.sequencer is None
    assert event.version_id is None
    assert event.principal_id is None
    assert event.source_ip is None
    assert event.request_id is None
    assert event.region == "us-east-1"
    assert event.size == 42


def test_minio_records_are_accepted() -> None:
    event = only_event_of("minio_put.json")
    assert event.bucket == "images"
    assert event.principal_id == "minioadmin"
    assert event.region is None  # MinIO sends an empty awsRegion
    assert event.request_id == "17F8A3C2B1D0E9F8"
    assert event.sequencer == "17F8A3C2B1D5E7A0"


def test_the_original_record_is_kept_verbatim_unknown_fields_included() -> None:
    record = first_record("s3_restore_completed.json")
    event = only_event_of("s3_restore_completed.json")
    assert event.record == record
    assert event.record["glacierEventData"]["restoreEventData"]["lifecycleRestoreStorageClass"] == (
        "Standard"
    )
    minio = only_event_of("minio_put.json")
    assert minio.record["source"]["userAgent"].startswith("MinIO")
    assert minio.record["eventName"] == "s3:ObjectCreated:Put"


def test_eventbridge_record_is_the_whole_event() -> None:
    assert only_event_of("eventbridge_object_restore_completed.json").record == load_event(
        "eventbridge_object_restore_completed.json"
    )


def test_sequencers_are_normalised_to_upper_case() -> None:
    assert only_event_of("s3_delete_unversioned.json").sequencer == "0065E1F7F6A7B8C9D0"
    names = [(e.sequencer, e.size) for e in events_of("s3_sequencer_lengths_and_cases.json")]
    assert names == [
        ("0065E1F7A0B1C2D3F5", None),
        ("0065E1F7A0B1C2D3F50A", 4096),
        ("0065E1F7A0B1C2D3", 1024),
        ("0065E1F7A0B1C2D3E4", 2048),
    ]


def test_a_notification_may_hold_several_records() -> None:
    (delivery,) = deliveries_of("s3_sequencer_lengths_and_cases.json")
    assert len(delivery.events) == 4
    assert len({e.event_id for e in delivery.events}) == 4


def test_the_realistic_batch_splits_into_one_envelope_per_sqs_message() -> None:
    # Given a Lambda SQS batch of nine messages: the test event, seven S3 events and an SNS
    # retry of one of them
    document = load_event("sqs_sns_batch_realistic.json")
    envelopes = split_document(document)
    # Then each message is its own envelope, named by its SQS message id
    assert [e.message_id for e in envelopes] == [r["messageId"] for r in document["Records"]]
    deliveries = [parse_envelope(e) for e in envelopes]
    assert sum(d.skipped for d in deliveries) == 1
    events = [e for d in deliveries for e in d.events]
    assert len(events) == 8
    assert len({e.event_id for e in events}) == 7  # the retry is the same S3 event
    assert {e.source for e in events} == {Source.SQS_SNS}
    assert "customers/müller/café receipt.pdf" in {e.key for e in events}


def test_json_lines_of_any_accepted_form() -> None:
    # Given a file of JSON lines: an SQS event, a bare notification, an EventBridge event
    lines = [
        json.dumps(load_event("sqs_sns_put.json")),
        json.dumps(load_event("s3_copy.json")),
        "",
        json.dumps(load_event("eventbridge_object_created_post.json")),
    ]
    envelopes = list(envelopes_of_file("\n".join(lines), name="batch.jsonl"))
    events = [e for envelope in envelopes for e in parse_envelope(envelope).events]
    assert [e.event_name for e in events] == [
        "ObjectCreated:Put",
        "ObjectCreated:Copy",
        "ObjectCreated:Post",
    ]
    assert envelopes[1].message_id == "batch.jsonl:2"


def test_a_json_line_that_is_not_json_fails_alone() -> None:
    lines = [
        json.dumps(load_event("s3_copy.json")),
        "{not json",
        event_text("s3_post.json").replace("\n", ""),
    ]
    text = "\n".join(lines)
    envelopes = list(envelopes_of_file(text, name="mixed.jsonl"))
    assert len(envelopes) == 3
    with pytest.raises(MalformedMessageError) as failure:
        parse_envelope(envelopes[1])
    assert failure.value.message_id == "mixed.jsonl:2"
    assert "not JSON" in failure.value.reason
    assert parse_envelope(envelopes[2]).events[0].event_name == "ObjectCreated:Post"


def test_a_json_array_of_documents_is_split() -> None:
    document = [load_event("s3_post.json"), load_event("s3_copy.json")]
    envelopes = split_document(document, default_id="array.json")
    assert [e.message_id for e in envelopes] == ["array.json[0]", "array.json[1]"]


def test_an_empty_file_has_no_envelopes() -> None:
    assert list(envelopes_of_file("  \n", name="empty.json")) == []


def test_an_sns_subscription_confirmation_is_not_a_notification() -> None:
    body = json.dumps({"Type": "SubscriptionConfirmation", "MessageId": "x", "Message": "{}"})
    envelope = Envelope("sns-1", json.loads(body), Source.SNS)
    with pytest.raises(MalformedMessageError, match="not a Notification"):
        parse_envelope(envelope)


def test_a_sample_event_with_a_non_hex_sequencer_is_stored_without_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given the widely copied sample event (aws-lambda-go's shape), whose sequencer is
    # "Happy Sequencer", inside an SQS message
    body = event_text("s3_put_sample_non_hex_sequencer.json")
    # When it is parsed
    with caplog.at_level(logging.WARNING, logger="eventstore.core.parsing"):
        (event,) = parse_sqs_body(body, message_id="sample-1").events
    # Then the event is kept, its record verbatim, but it has no sequencer
    assert event.sequencer is None
    assert event.record["s3"]["object"]["sequencer"] == "Happy Sequencer"
    assert event.key == "samples/Happy Face.jpg"
    assert event.event_time == datetime(1970, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    # and it is identified as events without a sequencer are (by its request id and time)
    assert event.event_id == derive_event_id(
        bucket="example-bucket",
        key="samples/Happy Face.jpg",
        version_id="version",
        sequencer=None,
        event_name="ObjectCreated:Put",
        event_time=event.event_time,
        request_id="7A1E95D3C06B2F48",
        etag="d41d8cd98f00b204e9800998ecf8427e",
        size=1024,
    )
    # and a warning names the message and the value
    (warning,) = [r for r in caplog.records if r.name == "eventstore.core.parsing"]
    assert warning.levelno == logging.WARNING
    assert "sample-1" in warning.getMessage()
    assert "'Happy Sequencer'" in warning.getMessage()


def test_events_with_non_hex_sequencers_are_ordered_by_event_time() -> None:
    # Given two changes of one key whose records both carry a non-hex sequencer, the later
    # one with the sequencer that would sort first as text
    def put_at(event_time: str, sequencer: str) -> NewEvent:
        record = first_record("s3_put_sample_non_hex_sequencer.json")
        record["eventTime"] = event_time
        record["s3"]["object"]["sequencer"] = sequencer
        return parse_sqs_body(json.dumps(notification([record])), message_id="m").events[0]

    earlier = put_at("2026-03-01T12:00:00.000Z", "Zzz Sequencer")
    later = put_at("2026-03-01T12:00:01.000Z", "Aaa Sequencer")
    # When they are put in S3 order
    ordered = sort_events_of_one_key(
        [later, earlier], lambda e: OrderKey(e.sequencer, e.event_time)
    )
    # Then event time decides
    assert ordered == [earlier, later]
    assert OrderKey(later.sequencer, later.event_time).is_after(
        OrderKey(earlier.sequencer, earlier.event_time)
    )


@pytest.mark.parametrize("sequencer", ["0065e1f7a93b2c4d12 ", " 0065E1F7A93B2C4D12"])
def test_a_hex_sequencer_with_surrounding_blanks_is_still_the_sequencer(sequencer: str) -> None:
    record = first_record("s3_put.json")
    record["s3"]["object"]["sequencer"] = sequencer
    (event,) = parse_sqs_body(json.dumps(notification([record])), message_id="m").events
    assert event.sequencer == "0065E1F7A93B2C4D12"


def test_a_hex_sequencer_of_64_digits_is_accepted() -> None:
    record = first_record("s3_put.json")
    record["s3"]["object"]["sequencer"] = "0065e1f7" * 8
    (event,) = parse_sqs_body(json.dumps(notification([record])), message_id="m").events
    assert event.sequencer == "0065E1F7" * 8


@pytest.mark.parametrize("wrapper", ["notification", "eventbridge"])
def test_a_hex_sequencer_of_65_digits_is_a_malformed_message(wrapper: str) -> None:
    # Given a hex sequencer longer than the 64 characters the log stores
    sequencer = "A" * 65
    if wrapper == "notification":
        record = first_record("s3_put.json")
        record["s3"]["object"]["sequencer"] = sequencer
        body = json.dumps(notification([record]))
        where = "Records[0].s3.object.sequencer"
    else:
        document = load_event("eventbridge_object_created_put.json")
        document["detail"]["object"]["sequencer"] = sequencer
        body = json.dumps(document)
        where = "detail.object.sequencer"
    # When it is parsed, Then the message fails alone, saying why
    with pytest.raises(MalformedMessageError) as failure:
        parse_sqs_body(body, message_id="m-65")
    assert failure.value.message_id == "m-65"
    assert failure.value.reason == f"{where} has 65 hex digits, over the 64 stored"
