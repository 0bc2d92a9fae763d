"""Deterministic event ids: one S3 change, one id, through any wrapper, redelivery or replay."""

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore.core.identity import derive_event_id, identity_text
from tests.helpers import only_event_of

T0 = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)


def fields(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "bucket": "acme-media",
        "key": "photos/beach day.jpg",
        "version_id": "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
        "sequencer": "0065E1F7A93B2C4D12",
        "event_name": "ObjectCreated:Put",
        "event_time": T0,
        "request_id": "C3D13FE58DE4C810",
        "etag": "b1946ac92492d2347c6235b4d2611184",
        "size": 524288,
    }
    base.update(changes)
    return base


def test_an_event_id_is_32_hex_digits_and_deterministic() -> None:
    first = derive_event_id(**fields())
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert derive_event_id(**fields()) == first


@pytest.mark.parametrize(
    "change",
    [
        {"bucket": "acme-media-replica"},
        {"key": "photos/beach+day.jpg"},
        {"key": "Photos/beach day.jpg"},
        {"version_id": "other-version"},
        {"version_id": None},
        {"sequencer": "0065E1F7A93B2C4D13"},
        {"event_name": "ObjectCreated:Copy"},
    ],
)
def test_what_identifies_a_change_changes_the_id(change: dict[str, Any]) -> None:
    assert derive_event_id(**fields(**change)) != derive_event_id(**fields())


@pytest.mark.parametrize(
    "change",
    [
        {"event_time": T0 + timedelta(seconds=3)},
        {"request_id": None},
        {"etag": None},
        {"size": None},
    ],
)
def test_with_a_sequencer_other_fields_do_not_matter(change: dict[str, Any]) -> None:
    # EventBridge and notifications disagree on time precision; deletes lack size and etag
    assert derive_event_id(**fields(**change)) == derive_event_id(**fields())


def test_without_a_sequencer_the_request_id_pins_the_change_to_the_second() -> None:
    tagging = fields(sequencer=None, event_name="ObjectTagging:Put", etag=None, size=None)
    same_second = dict(tagging, event_time=T0.replace(microsecond=999000))
    next_second = dict(tagging, event_time=T0 + timedelta(seconds=1))
    other_request = dict(tagging, request_id="5E7A9C1B3D5F7A92")
    assert derive_event_id(**same_second) == derive_event_id(**tagging)
    assert derive_event_id(**next_second) != derive_event_id(**tagging)
    assert derive_event_id(**other_request) != derive_event_id(**tagging)


def test_without_sequencer_or_request_id_the_full_time_etag_and_size_identify() -> None:
    loose = fields(sequencer=None, request_id=None, version_id=None)
    assert derive_event_id(**loose) == derive_event_id(**dict(loose))
    for change in (
        {"event_time": T0 + timedelta(milliseconds=1)},
        {"etag": "9b2cf535f27731c974343645a3985328"},
        {"size": 1},
    ):
        assert derive_event_id(**dict(loose, **change)) != derive_event_id(**loose)


def test_ids_of_different_key_paths_do_not_collide_by_concatenation() -> None:
    # ("a/b", "c") and ("a", "b/c") must not hash alike
    one = derive_event_id(**fields(bucket="a/b", key="c"))
    other = derive_event_id(**fields(bucket="a", key="b/c"))
    assert one != other


@pytest.mark.parametrize(
    "fixture",
    [
        "sqs_sns_put.json",
        "sqs_raw_delivery_put.json",
        "sqs_direct_put.json",
        "sns_put.json",
        "eventbridge_object_created_put.json",
        "sqs_eventbridge_put.json",
    ],
)
def test_the_same_change_through_any_wrapper_gets_the_same_id(fixture: str) -> None:
    assert only_event_of(fixture).event_id == only_event_of("s3_put.json").event_id


def test_a_tagging_event_seen_through_eventbridge_gets_the_notification_id() -> None:
    assert (
        only_event_of("eventbridge_object_tags_added.json").event_id
        == only_event_of("s3_tagging_put.json").event_id
    )


def test_a_delete_and_the_put_it_followed_differ() -> None:
    put = derive_event_id(**fields())
    delete = derive_event_id(
        **fields(event_name="ObjectRemoved:Delete", sequencer="0065E1F7A93B2C4D20", size=None)
    )
    assert put != delete


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, "debf89e79d8b8d8836c5310a05d8e1c7"),
        ({"sequencer": None}, "da6913cc93cfe998d4f36a74e2192a4a"),
        ({"sequencer": None, "request_id": None}, "a41cceff445f9512bc1bf7939a9f7e37"),
        (
            {"key": 'ünïcødé/日本語 "quoted" \\ back', "version_id": None},
            "932c300c31812d1734fe822b55879d75",
        ),
    ],
)
def test_ids_are_the_ones_earlier_releases_gave(change: dict[str, Any], expected: str) -> None:
    """An id must never change: it is how a redelivered or replayed change is known again."""
    assert derive_event_id(**fields(**change)) == expected


@given(
    st.lists(st.one_of(st.none(), st.text(), st.integers(-(2**70), 2**70)), min_size=1, max_size=9)
)
def test_the_identity_text_is_what_the_standard_library_writes(parts: list[object]) -> None:
    assert identity_text(parts) == json.dumps(parts, ensure_ascii=False)
