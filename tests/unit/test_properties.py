"""Properties of the pure fold: any order and duplication of deliveries, one outcome."""

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore.core.events import NewEvent
from eventstore.core.objectstate import CatalogEntry, ObjectState
from tests.strategies import NEUTRAL, History, deliveries, histories


def catalog(delivered: list[NewEvent]) -> dict[tuple[str, str], CatalogEntry]:
    """What the log and its catalog make of deliveries: duplicates dropped by event id,
    positions handed out in arrival order, positions then ignored."""
    seen: set[str] = set()
    states: dict[tuple[str, str], ObjectState] = {}
    for event in delivered:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        state = states.setdefault((event.bucket, event.key), ObjectState(event.bucket, event.key))
        state.apply(event, len(seen))
    entries = (s.entry() for s in states.values())
    return {(e.bucket, e.key): replace(e, last_position=0) for e in entries if e is not None}


def assert_matches_s3(history: History, entries: dict[tuple[str, str], CatalogEntry]) -> None:
    for where, expected in history.expected.items():
        if expected.last_event_name is None:  # only neutral events: no catalog row
            assert where not in entries
            continue
        entry = entries[where]
        assert entry.deleted == expected.deleted, where
        assert entry.size == expected.size, where
        assert entry.last_event_name == expected.last_event_name, where
        if expected.versions:
            assert entry.version_id == expected.version_id, where


@settings(max_examples=200)
@given(st.data(), histories())
def test_any_order_and_duplication_gives_the_same_log_and_catalog(
    data: st.DataObject, history: History
) -> None:
    # Given a true S3 history, and the same history delivered in S3's order
    in_order = catalog(history.events)
    # When it is delivered shuffled, with duplicates
    delivered = data.draw(deliveries(history))
    # Then the log holds the same events and the catalog is the same
    assert {e.event_id for e in delivered} == {e.event_id for e in history.events}
    assert catalog(delivered) == in_order
    # and it is what S3 itself holds
    assert_matches_s3(history, in_order)


@given(histories())
def test_neutral_events_never_change_existence_size_or_version(history: History) -> None:
    without = [e for e in history.events if e.event_name not in NEUTRAL]
    assert catalog(history.events) == catalog(without)


@given(st.data(), histories())
def test_reversed_delivery_matches_s3(data: st.DataObject, history: History) -> None:
    # The worst case for last-writer-wins: every DELETE arrives before the PUT it followed
    assert_matches_s3(history, catalog(list(reversed(history.events))))
