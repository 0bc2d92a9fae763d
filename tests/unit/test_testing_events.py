"""The public event builders (eventstore.testing) make what AWS sends: the same fields as the
captured fixtures in tests/events, and records the library's own parser accepts with the
keys decoded and the event ids S3's identity rules give, through every wrapper."""

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from eventstore.core.events import Source
from eventstore.core.identity import derive_event_id
from eventstore.core.parsing import parse_sqs_record, sqs_records
from eventstore.errors import MalformedMessageError
from eventstore.testing import (
    events_of,
    s3_notification,
    s3_record,
    sequencer_at,
    sns_message,
    sqs_event_of,
)
from eventstore.testing.events import PRINCIPAL, S3_SERVICE
from tests.conftest import EVENTS_DIR, load_event

T = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)


def shape(value: Any) -> Any:
    """The field names at every level of a JSON document (values left out)."""
    if isinstance(value, dict):
        return {name: shape(item) for name, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return type(value).__name__


# Every captured S3 record but the test event and the widely copied sample with its made-up
# sequencer (event version 2.0): one builder call per kind must give the same fields.
CAPTURED = sorted(
    path.name
    for path in EVENTS_DIR.glob("s3_*.json")
    if path.name not in ("s3_test_event.json", "s3_put_sample_non_hex_sequencer.json")
)


@pytest.mark.parametrize("fixture", CAPTURED)
def test_a_record_has_the_fields_s3_sends_for_its_kind(fixture: str) -> None:
    for captured in load_event(fixture)["Records"]:
        event_name = captured["eventName"]
        version_id = captured["s3"]["object"].get("versionId")
        built = s3_record("a/b.txt", event_name=event_name, version_id=version_id, body=b"x")
        assert shape(built) == shape(captured), event_name
        assert built["eventVersion"] == captured["eventVersion"]
        principal = captured["userIdentity"]["principalId"]  # S3 itself, or a user
        assert built["userIdentity"]["principalId"] == (
            principal if principal == S3_SERVICE else PRINCIPAL
        )


def test_the_lambda_sqs_event_is_shaped_as_the_captured_ones() -> None:
    record = s3_record("invoices/inv-1.pdf", version_id="v1", body=b"%PDF")
    through_sns = sqs_event_of(record)["Records"][0]
    raw = sqs_event_of(record, via_sns=False)["Records"][0]

    captured = load_event("sqs_sns_put.json")["Records"][0]
    assert shape(through_sns) == shape(captured)
    assert shape(json.loads(through_sns["body"])) == shape(json.loads(captured["body"]))
    assert through_sns["body"].startswith('{\n  "Type": "Notification"')  # SNS pretty-prints
    assert shape(raw) == shape(load_event("sqs_raw_delivery_put.json")["Records"][0])
    for message in (through_sns, raw):
        body = message["body"].encode("utf-8")
        assert message["md5OfBody"] == hashlib.md5(body).hexdigest()


def test_the_parser_decodes_the_key_and_derives_the_id_from_the_fields() -> None:
    key = "reports/Q1 + Q2 (café)/100%.csv"
    record = s3_record(
        key, event_time=T, body=b"a,b\n", version_id="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
        sequencer="0065E1F7B0C1D2E3F4", request_id="C3D13FE58DE4C810",
        principal="AWS:AIDAEXAMPLE", source_ip="198.51.100.1",
    )  # fmt: skip

    (event,) = events_of(record)

    assert record["s3"]["object"]["key"] == "reports/Q1+%2B+Q2+%28caf%C3%A9%29/100%25.csv"
    assert (event.bucket, event.key, event.event_time) == ("eventstore-test-bucket", key, T)
    assert (event.size, event.etag) == (4, hashlib.md5(b"a,b\n").hexdigest())
    assert (event.principal_id, event.source_ip, event.request_id) == (
        "AWS:AIDAEXAMPLE", "198.51.100.1", "C3D13FE58DE4C810",
    )  # fmt: skip
    assert event.event_id == derive_event_id(
        bucket="eventstore-test-bucket", key=key, version_id="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
        sequencer="0065E1F7B0C1D2E3F4", event_name="ObjectCreated:Put", event_time=T,
        request_id="C3D13FE58DE4C810", etag=event.etag, size=4,
    )  # fmt: skip


def test_every_wrapper_gives_the_same_events() -> None:
    records = [s3_record("a.txt", body=b"a"), s3_record("a.txt", event_name="ObjectRemoved:Delete")]
    notification = s3_notification(*records)
    lambda_event = sqs_event_of(notification)

    forms = {
        "records": events_of(records),
        "notification": events_of(notification),
        "sns": events_of(sns_message(notification)),
        "sqs via sns": events_of(lambda_event),
        "sqs raw": events_of(sqs_event_of(notification, via_sns=False)),
        "text": events_of(json.dumps(notification)),
        "handler": [e for r in sqs_records(lambda_event) for e in parse_sqs_record(r).events],
    }

    ids = {name: [e.event_id for e in events] for name, events in forms.items()}
    assert all(found == ids["records"] for found in ids.values()), ids
    assert len(set(ids["records"])) == 2
    assert forms["sqs via sns"][0].source is Source.SQS_SNS
    assert forms["sqs raw"][0].source is Source.SQS


def test_records_built_one_after_another_are_later_and_distinct() -> None:
    built = [s3_record("same.txt") for _ in range(50)]
    events = events_of(built)
    times = [e.event_time for e in events]
    sequencers = [e.sequencer or "" for e in events]
    assert times == sorted(times) and len(set(times)) == 50
    assert sequencers == sorted(sequencers) and len(set(sequencers)) == 50
    assert len({e.event_id for e in events}) == 50


def test_given_the_identifying_fields_a_record_keeps_its_event_id() -> None:
    def build() -> dict[str, Any]:
        return s3_record("k.txt", event_time=T, request_id="R1", version_id="v1")

    first, again = events_of(build(), build())
    assert first.event_id == again.event_id
    assert first.sequencer == sequencer_at(T) == "0069A42A4001E07800"  # 2026-03-01T12:00:00.123Z


def test_a_test_event_holds_no_event_and_a_malformed_record_says_why() -> None:
    assert events_of(load_event("s3_test_event.json")) == []
    broken = s3_record("k.txt")
    del broken["s3"]["bucket"]["name"]
    with pytest.raises(MalformedMessageError, match=r"s3\.bucket\.name is missing"):
        events_of(broken)


def test_what_is_no_event_at_all_is_refused_by_type() -> None:
    with pytest.raises(TypeError, match="not an S3 event, record or notification: bytes"):
        events_of(b'{"Records": []}')
