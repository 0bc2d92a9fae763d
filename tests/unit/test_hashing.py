"""The hash chain: every stored column of every row, linked to the row before."""

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventstore.core.events import EVENT_COLUMNS, NewEvent, Source, StoredEvent
from eventstore.core.hashing import (
    GENESIS_HASH,
    PendingRow,
    UnreadableRow,
    canonical_row,
    chain_hash,
    follows,
    verify_chain,
)
from eventstore.store.schema import events
from tests.helpers import events_of, make_event
from tests.notification_factory import new_events, s3_record

RECORDED = datetime(2026, 3, 1, 12, 0, 1, 250000, tzinfo=UTC)


def build_chain(events: list[NewEvent]) -> list[StoredEvent]:
    chain: list[StoredEvent] = []
    previous = GENESIS_HASH
    for position, event in enumerate(events, start=1):
        record_json = json.dumps(event.record, separators=(",", ":"))
        digest = chain_hash(previous, position, event, record_json, RECORDED)
        chain.append(StoredEvent(position, event, record_json, RECORDED, digest))
        previous = digest
    return chain


def sample_chain() -> list[StoredEvent]:
    return build_chain(events_of("sqs_sns_batch_realistic.json"))


def test_an_intact_chain_verifies() -> None:
    chain = sample_chain()
    result = verify_chain(chain)
    assert result.ok
    assert result.checked == len(chain)
    assert result.head_position == len(chain)
    assert result.reason is None


def test_an_empty_log_verifies() -> None:
    result = verify_chain([])
    assert result.ok
    assert result.checked == 0
    assert result.head_position == 0


def test_the_first_row_links_to_the_genesis_hash() -> None:
    (first, *_) = sample_chain()
    assert first.hash == chain_hash(GENESIS_HASH, 1, first.event, first.record_json, RECORDED)
    assert len(first.hash) == 64


# Every column of NewEvent that is stored (the record is stored as record_json).
EVENT_CHANGES: dict[str, Any] = {
    "event_id": "0" * 32,
    "event_name": "ObjectRemoved:Delete",
    "event_time": datetime(2026, 3, 1, 9, 15, 2, 115000, tzinfo=UTC),
    "bucket": "acme-other",
    "key": "orders/2026/03/01/order-7781.JSON",
    "version_id": "forged",
    "sequencer": "0065E19B2E4F6A8C0F",
    "size": 1,
    "etag": "forged",
    "principal_id": "AWS:AIDAFORGED",
    "source_ip": "198.51.100.1",
    "request_id": "FORGED",
    "region": "us-east-1",
    "source": Source.ARCHIVE,
    "causation_id": "forged",
    "correlation_id": "forged",
}


def test_every_stored_field_is_named_in_the_changes() -> None:
    names = {f.name for f in dataclasses.fields(NewEvent)} - {"record"}
    assert names == set(EVENT_CHANGES)


@pytest.mark.parametrize("field", sorted(EVENT_CHANGES))
def test_a_changed_column_breaks_the_chain_at_its_row(field: str) -> None:
    # Given an intact chain
    chain = sample_chain()
    # When one column of row 3 is changed
    victim = chain[2]
    changed = dataclasses.replace(victim.event, **{field: EVENT_CHANGES[field]})
    assert canonical_row(3, changed, victim.record_json, RECORDED) != canonical_row(
        3, victim.event, victim.record_json, RECORDED
    )
    chain[2] = dataclasses.replace(victim, event=changed)
    # Then verification names row 3
    result = verify_chain(chain)
    assert not result.ok
    assert result.first_bad_position == 3
    assert result.checked == 2


def test_a_sub_millisecond_time_change_breaks_the_chain() -> None:
    chain = sample_chain()
    victim = chain[0]
    nudged = victim.event.event_time + timedelta(microseconds=1)
    chain[0] = dataclasses.replace(
        victim, event=dataclasses.replace(victim.event, event_time=nudged)
    )
    assert verify_chain(chain).first_bad_position == 1


def test_a_changed_record_breaks_the_chain() -> None:
    chain = sample_chain()
    victim = chain[4]
    record = json.loads(victim.record_json)
    record["userIdentity"]["principalId"] = "AWS:AIDAFORGED"
    chain[4] = dataclasses.replace(victim, record_json=json.dumps(record, separators=(",", ":")))
    assert verify_chain(chain).first_bad_position == 5


def test_a_changed_recorded_at_breaks_the_chain() -> None:
    chain = sample_chain()
    chain[1] = dataclasses.replace(chain[1], recorded_at=RECORDED + timedelta(seconds=1))
    assert verify_chain(chain).first_bad_position == 2


def test_a_changed_hash_breaks_the_chain() -> None:
    chain = sample_chain()
    chain[5] = dataclasses.replace(chain[5], hash="f" * 64)
    assert verify_chain(chain).first_bad_position == 6


def test_a_deleted_row_is_found() -> None:
    chain = sample_chain()
    del chain[3]
    result = verify_chain(chain)
    assert result.first_bad_position == 4
    assert "expected position 4, found 5" in str(result.reason)


def test_a_deleted_last_row_cannot_be_seen_by_the_chain_alone() -> None:
    # Truncation at the head leaves a valid shorter chain: the head position is reported
    chain = sample_chain()
    result = verify_chain(chain[:-1])
    assert result.ok
    assert result.head_position == len(chain) - 1


def test_rows_swapped_with_their_positions_break_the_chain() -> None:
    chain = sample_chain()
    chain[2], chain[3] = chain[3], chain[2]
    assert verify_chain(chain).first_bad_position == 3


def test_rows_swapped_but_renumbered_break_the_chain() -> None:
    chain = sample_chain()
    third, fourth = chain[2], chain[3]
    chain[2] = dataclasses.replace(fourth, position=3)
    chain[3] = dataclasses.replace(third, position=4)
    assert verify_chain(chain).first_bad_position == 3


def test_an_inserted_forged_row_is_found() -> None:
    chain = sample_chain()
    forged_event = make_event("ObjectRemoved:Delete", sequencer="0065E19D2BD4F6A8CB")
    forged = StoredEvent(3, forged_event, "{}", RECORDED, chain[1].hash)
    renumbered = [dataclasses.replace(s, position=s.position + 1) for s in chain[2:]]
    result = verify_chain([*chain[:2], forged, *renumbered])
    assert result.first_bad_position == 3


def test_an_unreadable_row_is_reported_at_its_position() -> None:
    chain = sample_chain()
    result = verify_chain([*chain[:2], UnreadableRow(3, "row cannot be read back: bad time")])
    assert not result.ok
    assert result.first_bad_position == 3
    assert result.reason == "row cannot be read back: bad time"


def test_the_chain_depends_on_the_previous_hash() -> None:
    event = make_event("ObjectCreated:Put", sequencer="0010")
    assert chain_hash(GENESIS_HASH, 1, event, "{}", RECORDED) != chain_hash(
        "1" * 64, 1, event, "{}", RECORDED
    )


# The head hash of the fixture's chain as the first release computed it. Logs written since
# then must keep verifying: a change to what is hashed, or how, fails here first.
FIRST_RELEASE_HEAD = "26144bd9634ffed57b9b78629147ec967f982e15220465731d0ad153a8e16ad9"


def test_the_chain_format_is_the_one_existing_logs_were_written_with() -> None:
    chain = sample_chain()
    previous = GENESIS_HASH
    for stored in chain:
        previous = PendingRow.of(stored.event).seal(previous, stored.position, RECORDED).hash
    assert previous == FIRST_RELEASE_HEAD
    assert chain[-1].hash == FIRST_RELEASE_HEAD


def test_the_canonical_row_is_the_compact_json_list_of_every_column() -> None:
    # Times at millisecond precision as S3 writes them; the microseconds follow each.
    event = sample_chain()[0].event
    record_json = json.dumps(event.record, separators=(",", ":"), ensure_ascii=False)
    columns = [
        7, event.event_id, event.stream, event.event_name,
        event.event_time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        event.event_time.microsecond,
        event.bucket, event.key, event.version_id, event.sequencer, event.size, event.etag,
        event.principal_id, event.source_ip, event.request_id, event.region, str(event.source),
        event.causation_id, event.correlation_id, record_json,
        "2026-03-01T12:00:01.250Z", 250000,
    ]  # fmt: skip
    expected = json.dumps(columns, separators=(",", ":"), ensure_ascii=False).encode()
    assert canonical_row(7, event, record_json, RECORDED) == expected


@pytest.mark.parametrize("year", [1, 500, 999])
def test_an_event_time_before_year_1000_hashes_the_same_when_written_and_verified(
    year: int,
) -> None:
    # Given an event whose time is before year 1000 (format_time now writes it with four
    # digits; strftime used to write "500-…")
    event = dataclasses.replace(
        make_event("ObjectCreated:Put"), event_time=datetime(year, 1, 1, 0, 0, 0, 5000, tzinfo=UTC)
    )
    # When it is sealed as an append does, and the chain is verified as verify does
    stored = PendingRow.of(event).seal(GENESIS_HASH, 1, RECORDED)
    result = verify_chain([stored])
    # Then the chain holds, and the hashed time is the four-digit one
    assert result.ok
    assert (
        f'"{year:04d}-01-01T00:00:00.005Z"'
        in canonical_row(1, event, stored.record_json, RECORDED).decode()
    )


def test_the_event_row_has_one_definition_shared_by_table_row_and_chain() -> None:
    # Given one stored event whose every column holds a distinct value
    record = s3_record("bucket-1", "k/é 1.txt", sequencer="00AB", version_id="v-1", size=77)
    event = dataclasses.replace(new_events([record])[0], correlation_id="corr-1")
    recorded = datetime(2026, 3, 1, 12, 0, 0, 654321, tzinfo=UTC)
    stored = StoredEvent(41, event, '{"r":1}', recorded, "f" * 64)
    # Then the table's columns are EVENT_COLUMNS, in that order
    assert [column.name for column in events.columns] == list(EVENT_COLUMNS)
    # And the stored row reads back into the same event, field for field
    values = stored.values()
    assert len(values) == len(EVENT_COLUMNS)
    assert StoredEvent.of_values(values).values() == values
    # And the canonical row the chain hashes holds every column but the hash itself, in order
    canonical = json.loads(canonical_row(41, event, '{"r":1}', recorded))
    named = dict(zip(EVENT_COLUMNS, values, strict=True))
    assert canonical[0] == named["position"]
    assert canonical[1:4] == [named["event_id"], named["stream"], named["event_name"]]
    assert canonical[-2:] == ["2026-03-01T12:00:00.654Z", 654321]
    assert canonical[-3] == named["record"]
    assert "f" * 64 not in canonical


def test_a_row_follows_the_row_before_it_in_its_own_chain_only() -> None:
    """`follows` tells the next row of one chain from a row at the next position of another
    chain (a log restored and appended to again): what lets a runner keep folding the events
    its writer appended from memory across calls."""
    first, second, third, *_ = sample_chain()
    assert follows(first, second) and follows(second, third)
    assert not follows(first, third)  # not the next position
    records = [s3_record("elsewhere", f"k{i}.txt", sequencer=f"{i + 1:04X}") for i in range(2)]
    other_first, other_second = build_chain(new_events(records))
    assert not follows(first, other_second)  # the next position, another chain
    assert follows(other_first, other_second)
