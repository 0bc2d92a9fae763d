"""The object catalog's rules: last writer wins by sequencer, per version; no I/O."""

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore.core.events import Effect, NewEvent, effect_of
from eventstore.core.objectstate import CatalogEntry, ObjectState
from tests.helpers import events_of, make_event, only_event_of


def fold(events: Sequence[NewEvent]) -> CatalogEntry | None:
    """Apply events in the order given (that is, delivery order), positions 1, 2, 3…"""
    first = events[0]
    state = ObjectState(first.bucket, first.key)
    for position, event in enumerate(events, start=1):
        state.apply(event, position)
    return state.entry()


def put(
    sequencer: str, *, version: str | None = None, size: int = 100, seconds: float = 0
) -> NewEvent:
    return make_event(
        "ObjectCreated:Put", version_id=version, sequencer=sequencer, size=size, seconds=seconds
    )


def delete(sequencer: str, *, version: str | None = None, seconds: float = 0) -> NewEvent:
    return make_event(
        "ObjectRemoved:Delete", version_id=version, sequencer=sequencer, seconds=seconds
    )


def marker(sequencer: str, version: str, *, seconds: float = 0) -> NewEvent:
    return make_event(
        "ObjectRemoved:DeleteMarkerCreated",
        version_id=version,
        sequencer=sequencer,
        seconds=seconds,
    )


@pytest.mark.parametrize(
    ("event_name", "effect"),
    [
        ("ObjectCreated:Put", Effect.CREATE),
        ("ObjectCreated:Post", Effect.CREATE),
        ("ObjectCreated:Copy", Effect.CREATE),
        ("ObjectCreated:CompleteMultipartUpload", Effect.CREATE),
        ("ObjectRemoved:Delete", Effect.REMOVE),
        ("ObjectRemoved:DeleteMarkerCreated", Effect.DELETE_MARKER),
        ("LifecycleExpiration:Delete", Effect.REMOVE),
        ("LifecycleExpiration:DeleteMarkerCreated", Effect.DELETE_MARKER),
        ("ObjectRestore:Post", Effect.NONE),
        ("ObjectRestore:Completed", Effect.NONE),
        ("ObjectRestore:Delete", Effect.NONE),
        ("Replication:OperationFailedReplication", Effect.NONE),
        ("ObjectTagging:Put", Effect.NONE),
        ("ObjectTagging:Delete", Effect.NONE),
        ("ObjectAcl:Put", Effect.NONE),
        ("IntelligentTiering", Effect.NONE),
        ("LifecycleTransition", Effect.NONE),
        ("ObjectSnapshot:Created", Effect.NONE),  # a name S3 may add one day
    ],
)
def test_effect_of_event_names(event_name: str, effect: Effect) -> None:
    assert effect_of(event_name) is effect


def test_no_entry_until_a_state_changing_event() -> None:
    state = ObjectState("bucket", "key.txt")
    assert state.entry() is None
    assert state.apply(make_event("ObjectTagging:Put", seconds=1), 1) == set()
    assert state.entry() is None


# -- unversioned bucket ----------------------------------------------------------------


def test_put_then_delete_ends_deleted() -> None:
    entry = fold([put("0010"), delete("0020")])
    assert entry is not None
    assert entry.deleted
    assert entry.size is None
    assert entry.etag is None
    assert entry.last_event_name == "ObjectRemoved:Delete"


def test_a_delete_delivered_before_the_put_it_followed_still_ends_deleted() -> None:
    entry = fold([delete("0020", seconds=1), put("0010")])
    assert entry is not None
    assert entry.deleted
    assert entry.last_event_name == "ObjectRemoved:Delete"
    assert entry.sequencer == "0020"


def test_overwrites_resolve_by_sequencer_not_delivery_order() -> None:
    entry = fold([put("0030", size=3), put("0010", size=1), put("0020", size=2)])
    assert entry is not None
    assert not entry.deleted
    assert entry.size == 3
    assert entry.sequencer == "0030"


def test_put_after_delete_recreates() -> None:
    entry = fold([put("0030", size=7), delete("0020"), put("0010")])
    assert entry is not None
    assert not entry.deleted
    assert entry.size == 7


def test_fixture_with_sequencers_of_different_lengths_ends_with_the_last_put() -> None:
    # delete 0065E1F7A0B1C2D3F5 < put 0065E1F7A0B1C2D3F50A once padded
    entry = fold(events_of("s3_sequencer_lengths_and_cases.json"))
    assert entry is not None
    assert not entry.deleted
    assert entry.size == 4096
    assert entry.sequencer == "0065E1F7A0B1C2D3F50A"


def test_without_sequencers_event_time_orders_moto_style_events() -> None:
    moto_put, moto_delete = only_event_of("moto_put.json"), only_event_of("moto_delete.json")
    for delivered in ([moto_put, moto_delete], [moto_delete, moto_put]):
        entry = fold(delivered)
        assert entry is not None
        assert entry.deleted


@pytest.mark.parametrize("name", ["LifecycleExpiration:Delete"])
def test_lifecycle_expiration_deletes(name: str) -> None:
    entry = fold([put("0010"), make_event(name, sequencer="0020")])
    assert entry is not None
    assert entry.deleted


# -- versioned bucket ------------------------------------------------------------------


def test_deleting_a_non_current_version_leaves_the_object() -> None:
    entry = fold([put("0010", version="v1", size=1), put("0020", version="v2", size=2),
                  delete("0030", version="v1")])  # fmt: skip
    assert entry is not None
    assert not entry.deleted
    assert entry.version_id == "v2"
    assert entry.size == 2


def test_deleting_the_current_version_makes_the_previous_one_current() -> None:
    entry = fold([put("0010", version="v1", size=1), put("0020", version="v2", size=2),
                  delete("0030", version="v2")])  # fmt: skip
    assert entry is not None
    assert not entry.deleted
    assert entry.version_id == "v1"
    assert entry.size == 1
    assert entry.last_event_name == "ObjectRemoved:Delete"


def test_deleting_every_version_deletes_the_object() -> None:
    entry = fold([put("0010", version="v1"), delete("0020", version="v1")])
    assert entry is not None
    assert entry.deleted


def test_a_delete_marker_hides_the_object() -> None:
    entry = fold([put("0010", version="v1"), marker("0020", "m1")])
    assert entry is not None
    assert entry.deleted
    assert entry.version_id == "m1"
    assert entry.size is None


def test_deleting_the_delete_marker_brings_the_object_back() -> None:
    entry = fold([put("0010", version="v1", size=5), marker("0020", "m1"),
                  delete("0030", version="m1")])  # fmt: skip
    assert entry is not None
    assert not entry.deleted
    assert entry.version_id == "v1"
    assert entry.size == 5


def test_a_put_after_a_delete_marker_is_current() -> None:
    entry = fold(
        [put("0030", version="v2", size=9), marker("0020", "m1"), put("0010", version="v1")]
    )
    assert entry is not None
    assert not entry.deleted
    assert entry.version_id == "v2"


def test_version_delete_delivered_before_its_put_leaves_the_version_gone() -> None:
    entry = fold([delete("0030", version="v2"), put("0010", version="v1", size=1),
                  put("0020", version="v2", size=2)])  # fmt: skip
    assert entry is not None
    assert not entry.deleted
    assert entry.version_id == "v1"


def test_lifecycle_expiration_delete_marker_hides_the_object() -> None:
    entry = fold([put("0010", version="v1"),
                  make_event("LifecycleExpiration:DeleteMarkerCreated", version_id="m1",
                             sequencer="0020")])  # fmt: skip
    assert entry is not None
    assert entry.deleted


# -- events that never change existence, size or version ----------------------------------

NEUTRAL_FIXTURES = [
    "s3_tagging_put.json",
    "s3_tagging_delete.json",
    "s3_acl_put.json",
    "s3_restore_post.json",
    "s3_restore_completed.json",
    "s3_restore_delete.json",
    "s3_replication_operation_failed.json",
    "s3_intelligent_tiering.json",
    "s3_lifecycle_transition.json",
    "eventbridge_object_restore_expired.json",
    "eventbridge_object_storage_class_changed.json",
]


@pytest.mark.parametrize("fixture", NEUTRAL_FIXTURES)
@pytest.mark.parametrize("history", ["exists", "deleted"])
def test_neutral_events_change_nothing(fixture: str, history: str) -> None:
    # Given an object that exists (or was deleted), in the version the neutral event names
    neutral = only_event_of(fixture)
    where = {"bucket": neutral.bucket, "key": neutral.key, "version_id": neutral.version_id}
    earlier = [make_event("ObjectCreated:Put", sequencer="0010", size=77, **where)]
    if history == "deleted":
        earlier.append(make_event("ObjectRemoved:Delete", sequencer="0020", **where))
    state = ObjectState(neutral.bucket, neutral.key)
    for position, event in enumerate(earlier, start=1):
        state.apply(event, position)
    before = state.entry()
    # When a tagging, ACL, restore, replication or tiering event arrives
    changed = state.apply(neutral, len(earlier) + 1)
    # Then existence, size and version are as they were
    assert changed == set()
    assert state.entry() == before


def test_an_unknown_event_name_changes_nothing() -> None:
    state = ObjectState("bucket", "key.txt")
    state.apply(put("0010"), 1)
    before = state.entry()
    assert state.apply(make_event("ObjectSnapshot:Created", sequencer="0020"), 2) == set()
    assert state.entry() == before


def test_a_stale_event_reports_no_change() -> None:
    state = ObjectState("bucket", "key.txt")
    state.apply(put("0020"), 1)
    assert state.apply(put("0010"), 2) == set()


_ONE_SLOT_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(
            ["ObjectCreated:Put", "ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated",
             "ObjectTagging:Put"]
        ),
        st.none() | st.integers(1, 40).map(lambda n: f"{n:04X}"),  # sequencer, or none
        st.integers(0, 20),  # seconds
        st.sampled_from([None, "null"]),  # how S3 spells the version of an unversioned key
        st.integers(1, 1000),  # size
    ),
    min_size=1,
    max_size=12,
)  # fmt: skip


@given(history=_ONE_SLOT_EVENTS)
def test_a_key_with_one_version_is_all_in_its_catalog_row(
    history: list[tuple[str, str | None, int, str | None, int]],
) -> None:
    """What the catalog stores of a one-version key (no version row) gives back the state
    the fold holds, whatever order its events came in: a removed version keeps nothing."""
    state = ObjectState("bucket", "key.txt")
    for position, (name, sequencer, seconds, version, size) in enumerate(history, start=1):
        event = make_event(
            name, version_id=version, sequencer=sequencer, seconds=seconds,
            size=size if name.startswith("ObjectCreated:") else None,
        )  # fmt: skip
        state.apply(event, position)
    entry = state.entry()
    if entry is None:  # nothing but tagging: no catalog row, no state to keep
        assert not state.versions
        return
    assert state.last_order is not None and state.last_event_name is not None
    rebuilt = ObjectState.of_one_version(
        "bucket", "key.txt", last_event_name=entry.last_event_name,
        last_event_version=state.last_event_version, last_order=state.last_order,
        size=entry.size, etag=entry.etag,
    )  # fmt: skip
    assert rebuilt == state


def test_a_removed_version_keeps_nothing_of_what_it_was() -> None:
    state = ObjectState("bucket", "key.txt")
    state.apply(put("0010", version="v1", size=7), 1)
    state.apply(delete("0020", version="v1"), 2)
    (removed,) = state.versions.values()
    assert (removed.exists, removed.delete_marker, removed.size, removed.etag) == (
        False, False, None, None,
    )  # fmt: skip
    assert removed.created is None and removed.last.sequencer == "0020"
