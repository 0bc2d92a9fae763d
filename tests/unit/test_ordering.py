"""S3's per-key order: sequencers as right-zero-padded hex, event time when there is none."""

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore.core.ordering import (
    OrderKey,
    compare_sequencers,
    normalise_sequencer,
    sort_events_of_one_key,
)
from tests.helpers import events_of

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("0065e1f7a0b1c2d3", "0065E1F7A0B1C2D3"),
        (" 0055AED6DCD90281E5 ", "0055AED6DCD90281E5"),
        ("", None),
        (None, None),
    ],
)
def test_normalise_sequencer(raw: str | None, normalised: str | None) -> None:
    assert normalise_sequencer(raw) == normalised


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ("0065E1F7A0B1C2D3", "0065E1F7A0B1C2D3E4", -1),  # the shorter is padded with zeros
        ("0065E1F7A0B1C2D3F5", "0065E1F7A0B1C2D3E4", 1),
        ("0065E1F7A0B1C2D3F5", "0065E1F7A0B1C2D3F50A", -1),
        ("0A", "0A00", 0),  # equal once padded
        ("00ab", "00AB", 0),  # case does not matter
        ("00ac", "00AB", 1),
        ("1", "0FFFFFFFFFFFFFFF", 1),  # not numeric: "1" pads to "1000000000000000"
    ],
)
def test_compare_sequencers(left: str, right: str, expected: int) -> None:
    assert compare_sequencers(left, right) == expected
    assert compare_sequencers(right, left) == -expected


def test_a_later_sequencer_wins_even_with_an_earlier_event_time() -> None:
    put = OrderKey("0065E1F7A0B1C2D3", at(10), position=1)
    delete = OrderKey("0065E1F7A0B1C2D3E4", at(0), position=2)
    assert delete.is_after(put)
    assert not put.is_after(delete)


def test_without_sequencers_event_time_decides() -> None:
    earlier = OrderKey(None, at(0), position=9)
    later = OrderKey(None, at(1), position=1)
    assert later.compare(earlier) == 1
    assert earlier.compare(later) == -1


def test_when_only_one_has_a_sequencer_event_time_decides() -> None:
    sequenced = OrderKey("0065E1F7A0B1C2D3", at(5))
    timed = OrderKey(None, at(6))
    assert timed.is_after(sequenced)


def test_the_position_breaks_ties() -> None:
    assert OrderKey("00AB", at(0), 2).compare(OrderKey("00ab", at(0), 1)) == 1
    assert OrderKey(None, at(0), 1).compare(OrderKey(None, at(0), 2)) == -1
    assert OrderKey(None, at(0), 3).compare(OrderKey(None, at(0), 3)) == 0


def test_anything_is_after_nothing() -> None:
    assert OrderKey(None, at(0)).is_after(None)


def test_sort_of_the_fixture_with_sequencers_of_different_lengths_and_cases() -> None:
    # Given four events of one key delivered out of order, sequencers of 16, 18 and 20 digits
    events = events_of("s3_sequencer_lengths_and_cases.json")
    # When sorted into S3 order
    ordered = sort_events_of_one_key(
        events, lambda e: OrderKey(e.sequencer, e.event_time, events.index(e) + 1)
    )
    # Then the sequencers, padded, decide (not delivery order, not length, not event time)
    assert [(e.event_name, e.size) for e in ordered] == [
        ("ObjectCreated:Put", 1024),
        ("ObjectCreated:Put", 2048),
        ("ObjectRemoved:Delete", None),
        ("ObjectCreated:Put", 4096),
    ]


def test_events_without_sequencer_are_merged_in_by_event_time() -> None:
    keys = {
        "put": OrderKey("0010", at(0), 1),
        "tag": OrderKey(None, at(5), 2),
        "acl": OrderKey(None, at(1), 3),
        "delete": OrderKey("0020", at(10), 4),
    }
    ordered = sort_events_of_one_key(list(keys), lambda name: keys[name])
    assert ordered == ["put", "acl", "tag", "delete"]


sequencer = st.text(alphabet="0123456789ABCDEFabcdef", min_size=1, max_size=20)


@given(st.lists(sequencer, min_size=1, max_size=8, unique_by=lambda s: s.upper()), st.randoms())
def test_sort_ignores_delivery_order(sequencers: list[str], random: object) -> None:
    keys = [OrderKey(s.upper(), T0, position=i + 1) for i, s in enumerate(sequencers)]
    ordered = sort_events_of_one_key(keys, lambda k: k)
    shuffled = list(keys)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    assert sort_events_of_one_key(shuffled, lambda k: k) == ordered
    # and the order agrees with pairwise comparison
    for earlier, later in pairwise(ordered):
        assert compare_sequencers(str(earlier.sequencer), str(later.sequencer)) <= 0


@given(sequencer, sequencer, sequencer)
def test_compare_sequencers_is_a_consistent_order(a: str, b: str, c: str) -> None:
    assert compare_sequencers(a, b) == -compare_sequencers(b, a)
    if compare_sequencers(a, b) <= 0 and compare_sequencers(b, c) <= 0:
        assert compare_sequencers(a, c) <= 0


def test_sort_normalises_case_like_compare() -> None:
    # "e" sorts after "E" as a string; as hex they are the same digit
    put = OrderKey("0065e1f7a0b1d200", T0, position=2)
    delete = OrderKey("0065E1F7A0B1E200", T0, position=1)
    assert compare_sequencers("0065e1f7a0b1d200", "0065E1F7A0B1E200") == -1
    assert sort_events_of_one_key([delete, put], lambda k: k) == [put, delete]
