"""The storage contract: one set of cases for the log and the object catalog kept from it, run
against every backend (SQLite and PostgreSQL). A backend is correct when it passes these;
each database is built by running the migrations."""

import itertools
import tracemalloc
from dataclasses import replace
from datetime import timedelta, timezone
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore.core.events import NewEvent, StoredEvent
from eventstore.core.objectstate import CatalogEntry
from eventstore.core.ordering import sort_events_of_one_key
from eventstore.projections.base import Projection, ProjectionContext
from eventstore.projections.catalog import ObjectCatalogProjection, catalog_entries
from eventstore.projections.runner import ProjectionRunner
from eventstore.store.base import EventQuery, HistoryCursor
from eventstore.store.database import create_engine
from eventstore.store.pg_append import JSON_ROWS
from eventstore.store.schema import events as events_table
from eventstore.store.schema import object_catalog, projection_checkpoints, projection_metadata
from eventstore.store.sql import SqlEventStore
from tests.notification_factory import (
    T0,
    new_events,
    put_records,
    s3_record,
    sequencer_of,
)


@pytest.fixture
def store_url(backend_url: str) -> str:
    return backend_url


@pytest.fixture
def store(backend_log: SqlEventStore) -> SqlEventStore:
    return backend_log


def objects(store: SqlEventStore, **filters: Any) -> list[CatalogEntry]:
    """The object catalog, caught up with the log first (as `eventstore objects` after an
    `eventstore ingest`)."""
    ProjectionRunner(store, [ObjectCatalogProjection()]).catch_up()
    return list(catalog_entries(store.engine, **filters))


def puts(bucket: str, keys: list[str], *, start: int = 0) -> list[NewEvent]:
    return new_events(put_records(bucket, keys, start=start))


def positions(stored: Any) -> list[int]:
    return [s.position for s in stored]


def catalog_checkpoint(store: SqlEventStore) -> int:
    with store.engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(projection_checkpoints.c.position).where(
                    projection_checkpoints.c.name == "object_catalog"
                )
            ).scalar_one()
        )


# -- the log ------------------------------------------------------------------------------


def test_an_empty_log_has_head_zero_reads_nothing_and_verifies(store: SqlEventStore) -> None:
    assert store.head_position() == 0
    assert list(store.read()) == []
    result = store.verify()
    assert result.ok and result.checked == 0


def test_appends_get_contiguous_positions_from_one_in_batch_order(store: SqlEventStore) -> None:
    first = store.append(puts("b", ["a", "b", "c"]))
    second = store.append(puts("b", ["d", "e"], start=3))

    assert positions(first.stored) == [1, 2, 3]
    assert positions(second.stored) == [4, 5]
    assert [s.event.key for s in store.read()] == ["a", "b", "c", "d", "e"]
    assert store.head_position() == 5


def test_the_same_event_twice_in_one_batch_is_stored_once(store: SqlEventStore) -> None:
    event = puts("b", ["k"])[0]

    result = store.append([event, event])

    assert result.appended == 1 and result.duplicates == 1
    assert store.head_position() == 1


def test_an_event_already_in_the_log_is_a_duplicate_not_a_new_row(store: SqlEventStore) -> None:
    batch = puts("b", ["a", "b", "c"])
    store.append(batch[:2])

    again = store.append(batch)  # one known, one known, one new

    assert again.duplicates == 2
    assert [(s.position, s.event.key) for s in again.stored] == [(3, "c")]
    assert store.append(batch).appended == 0
    assert store.head_position() == 3
    assert store.verify().ok


def test_redelivery_through_another_wrapper_is_a_duplicate(store: SqlEventStore) -> None:
    record = s3_record("b", "k", sequencer=sequencer_of(7), version_id="v1")
    store.append(new_events([record], message_id="queue-a-message"))

    again = store.append(new_events([record], message_id="queue-b-message"))

    assert again.appended == 0 and again.duplicates == 1


def test_a_stored_event_reads_back_exactly_as_appended(store: SqlEventStore) -> None:
    record = s3_record(
        "b", "dossier/données été+1.txt", when=T0 + timedelta(microseconds=123456),
        sequencer="00A1B2C3D4E5F60708", version_id="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
        size=5_000_000_000, principal="AWS:AIDAÜNICODE",
    )  # fmt: skip
    record["unknownField"] = {"nested": [1, 2.5, None, "ü"]}
    event = new_events([record])[0]

    stored = store.append([event], correlation_id="lambda-request-1").stored[0]
    (read,) = store.read()

    assert read.event == stored.event
    assert read.event.record == record
    assert read.record_json == stored.record_json
    assert read.hash == stored.hash
    assert read.recorded_at == stored.recorded_at
    assert read.recorded_at.utcoffset() == timedelta(0)
    assert read.event.event_time == T0 + timedelta(microseconds=123456)
    assert read.event.key == "dossier/données été+1.txt"
    assert read.event.size == 5_000_000_000
    assert read.event.correlation_id == "lambda-request-1"
    assert read.event.causation_id == "msg-1"


# A batch of up to JSON_ROWS rows goes into PostgreSQL as one JSON document, a larger one as
# arrays: both must store every value exactly.
@pytest.mark.parametrize("count", [12, JSON_ROWS + 15])
def test_a_batch_of_mixed_rows_reads_back_column_for_column(
    store: SqlEventStore, count: int
) -> None:
    # Given rows whose columns mix types, sizes and NULLs (small sizes fit a smallint, one
    # passes 32 bits, one the largest S3 could name, one has none; versions and principals
    # here and there; times with and without microseconds; text JSON must escape)
    awkward = ['q"uote', "back\\slash", "line\u2028sep", "tab\tnul-free\x01", "emoji \U0001f600"]
    records = [
        s3_record(
            "b", f"mixed/{i}-ü {awkward[i % 5]}.txt",
            when=T0 + timedelta(seconds=i, microseconds=i % 2 * 250_001),
            sequencer=f"{i + 1:018X}", version_id=f"v{i}" if i % 2 else None,
            size=[0, 7, 2**33, None, 2**63 - 1][i % 5],
            principal=None if i % 3 else f"AWS:P{i} {awkward[i % 5]}",
        )
        for i in range(count)
    ]  # fmt: skip
    # When they are appended in one batch
    stored = store.append(new_events(records)).stored
    # Then every column reads back as it was appended, and the chain holds
    assert [s.values() for s in store.read()] == [s.values() for s in stored]
    assert store.verify().ok


def test_an_events_own_correlation_id_is_kept(store: SqlEventStore) -> None:
    event = replace(puts("b", ["k"])[0], correlation_id="from-the-event")

    stored = store.append([event], correlation_id="from-the-call").stored[0]

    assert stored.event.correlation_id == "from-the-event"


def test_read_pages_through_more_than_one_page_in_position_order(store: SqlEventStore) -> None:
    keys = [f"k/{i:05d}" for i in range(2_300)]
    store.append(puts("b", keys))

    everything = list(store.read())
    window = list(store.read(after=995, limit=1_010))
    tail = list(store.read(after=2_290))

    assert positions(everything) == list(range(1, 2_301))
    assert positions(window) == list(range(996, 2_006))
    assert positions(tail) == list(range(2_291, 2_301))
    assert list(store.read(after=2_300)) == []


def test_history_is_in_s3_order_whatever_the_arrival_order(store: SqlEventStore) -> None:
    key = "reports/a b+c.csv"
    put_1 = s3_record("b", key, sequencer="0055", version_id="v1", when=T0)
    put_2 = s3_record("b", key, sequencer="0066", version_id="v2", when=T0 + timedelta(seconds=1))
    tag = s3_record(
        "b", key, event_name="ObjectTagging:Put", version_id="v2", when=T0 + timedelta(seconds=2)
    )
    delete = s3_record(
        "b", key, event_name="ObjectRemoved:DeleteMarkerCreated", sequencer="0077",
        version_id="v3", when=T0 + timedelta(seconds=3),
    )  # fmt: skip
    elsewhere = s3_record("other-bucket", key, sequencer="0001")
    # Arrival order: the delete first, the second put last.
    for record in (delete, tag, put_1, elsewhere, put_2):
        store.append(new_events([record]))

    history = store.history("b", key)

    assert [s.event.event_name for s in history] == [
        "ObjectCreated:Put", "ObjectCreated:Put", "ObjectTagging:Put",
        "ObjectRemoved:DeleteMarkerCreated",
    ]  # fmt: skip
    assert [s.event.version_id for s in history] == ["v1", "v2", "v2", "v3"]
    assert store.history("b", "reports/a") == []


_HISTORY_KEYS = itertools.count()
# Few digits: many sequencers are another's prefix, equal once padded with zeros ("A", "a0").
_SEQUENCERS = st.one_of(st.none(), st.text(alphabet="0Aa9", min_size=1, max_size=4))
_TIMES = st.sampled_from(
    [T0, T0 + timedelta(microseconds=1), T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
)
_NAMES = st.sampled_from(
    ["ObjectCreated:Put", "ObjectTagging:Put", "ObjectRemoved:DeleteMarkerCreated"]
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(st.tuples(_SEQUENCERS, _TIMES, _NAMES), min_size=1, max_size=12),
    batch=st.integers(min_value=1, max_value=5),
    page=st.integers(min_value=1, max_value=4),
    seed=st.randoms(use_true_random=False),
)
def test_a_streamed_history_is_in_s3_order_and_pages_resume_where_they_stopped(
    store: SqlEventStore, steps: list[tuple[str | None, Any, str]], batch: int, page: int,
    seed: Any,
) -> None:  # fmt: skip
    # Given one key's events (sequencers of any width and case, or none; equal times;
    # times on the second) appended in any order and batches, amid another key's
    key = f"history/{next(_HISTORY_KEYS)}.txt"
    records = [
        s3_record("b", key, sequencer=sequencer, when=when, event_name=name)
        for sequencer, when, name in steps
    ] + [s3_record("b", key + ".other", sequencer="FF")]
    seed.shuffle(records)
    for start in range(0, len(records), batch):
        store.append(new_events(records[start : start + batch]))
    of_key = [s for s in store.read() if s.event.key == key]
    expected = positions(sort_events_of_one_key(of_key, lambda s: s.order_key))
    # When it is read whole, streamed
    assert positions(store.iter_history("b", key)) == expected
    # and page by page, each page resuming from the cursor the last one left
    paged: list[int] = []
    cursor = HistoryCursor()
    for _ in range(len(expected) + 1):  # a cursor that stood still would fail, not hang
        got = list(itertools.islice(store.iter_history("b", key, after=cursor), page))
        paged += positions(got)
        cursor = HistoryCursor.parse(cursor.after(got).text())
        if len(got) < page:
            break
    # Then both are the order core.ordering gives the whole history held in memory
    assert paged == expected


def test_a_long_history_is_read_in_bounded_memory(store: SqlEventStore) -> None:
    # Given one object with 8,000 events of about 2 KB each (16 MB of records)
    count, padding = 8_000, 2_000
    records = [
        s3_record("b", "hot/app.log", sequencer=sequencer_of(i + 1),
                  when=T0 + timedelta(seconds=i), padding=padding)
        for i in range(count)
    ]  # fmt: skip
    for start in range(0, count, 1_000):
        store.append(new_events(records[start : start + 1_000]))
    # When its history is read whole
    tracemalloc.start()
    try:
        read = sum(1 for _ in store.iter_history("b", "hot/app.log"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Then it was streamed: at no time was even half of it held
    assert read == count
    assert peak < count * padding // 2, f"peak {peak / 2**20:.1f} MiB"


def test_a_history_cursor_is_checked(store: SqlEventStore) -> None:
    store.append(new_events([s3_record("b", "k", sequencer="01")]))
    with pytest.raises(ValueError, match="not in the log"):
        list(store.iter_history("b", "k", after=HistoryCursor(sequenced=99)))
    for text in ("", "1", "1.x", "a.1", "-1.0", "1.0.0"):
        with pytest.raises(ValueError, match="not a history cursor"):
            HistoryCursor.parse(text)


# -- audit queries ------------------------------------------------------------------------

# Keys whose code-point order differs from a natural-language collation's: a prefix range
# must select exactly the keys that start with the prefix, byte for byte.
UNICODE_KEYS = [
    "a/1", "a/2", "a/é", "a/\U0001f600", "a/\uffff", "ab", "a0", "a.b", "A/1", "a-1",
    "é/x", "éa", "e/x", "\U0001f600/a", "\U0010ffff/x",
]  # fmt: skip


@pytest.mark.parametrize("prefix", ["a/", "a", "é", "é/", "\U0001f600", "\U0010ffff", "A"])
def test_a_prefix_selects_exactly_the_keys_that_start_with_it(
    store: SqlEventStore, prefix: str
) -> None:
    store.append(puts("b", UNICODE_KEYS))
    expected = sorted(k for k in UNICODE_KEYS if k.startswith(prefix))

    found = sorted(s.event.key for s in store.select_events(EventQuery(prefix=prefix)))
    listed = sorted(e.key for e in objects(store, prefix=prefix))

    assert found == expected
    assert listed == expected


def _audit_log(store: SqlEventStore) -> None:
    records = [
        s3_record("logs", "app/1.log", when=T0, sequencer="01", principal="AWS:alice"),
        s3_record("logs", "app/2.log", when=T0 + timedelta(seconds=1), sequencer="02",
                  event_name="ObjectCreated:Copy", principal="AWS:bob"),
        s3_record("logs", "app/1.log", when=T0 + timedelta(seconds=2), sequencer="03",
                  event_name="ObjectRemoved:Delete", principal="AWS:alice"),
        s3_record("logs", "web/1.log", when=T0 + timedelta(seconds=3), sequencer="04",
                  event_name="ObjectRemoved:DeleteMarkerCreated", principal="AWS:bob"),
        s3_record("data", "app/1.log", when=T0 + timedelta(seconds=4), sequencer="05",
                  principal="AWS:alice"),
        s3_record("logs", "app/3.log", when=T0 + timedelta(seconds=5), sequencer="06",
                  event_name="ObjectTagging:Put", principal="AWS:carol"),
    ]  # fmt: skip
    for record in records:
        store.append(new_events([record]))


def _select(store: SqlEventStore, **filters: Any) -> list[int]:
    return positions(store.select_events(EventQuery(**filters)))


def test_select_events_filters_by_bucket_prefix_principal_and_limit(store: SqlEventStore) -> None:
    _audit_log(store)

    assert _select(store) == [1, 2, 3, 4, 5, 6]
    assert _select(store, bucket="logs") == [1, 2, 3, 4, 6]
    assert _select(store, bucket="logs", prefix="app/") == [1, 2, 3, 6]
    assert _select(store, prefix="app/") == [1, 2, 3, 5, 6]
    assert _select(store, principal="AWS:alice") == [1, 3, 5]
    assert _select(store, principal="AWS:alice", bucket="logs", limit=1) == [1]
    assert _select(store, principal="AWS:nobody") == []


def test_select_events_since_is_inclusive_and_until_exclusive(store: SqlEventStore) -> None:
    _audit_log(store)

    assert _select(store, since=T0 + timedelta(seconds=1)) == [2, 3, 4, 5, 6]
    assert _select(store, until=T0 + timedelta(seconds=1)) == [1]
    assert _select(store, since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3)) == [
        2,
        3,
    ]
    assert _select(store, since=T0 + timedelta(seconds=1, microseconds=1)) == [3, 4, 5, 6]
    # Same instant in another offset: times compare as times, not as strings.
    plus_two = timezone(timedelta(hours=2))
    assert _select(store, since=(T0 + timedelta(seconds=4)).astimezone(plus_two)) == [5, 6]


def test_select_events_by_type_name_and_prefix_pattern(store: SqlEventStore) -> None:
    _audit_log(store)

    assert _select(store, types=("ObjectCreated:Put",)) == [1, 5]
    assert _select(store, types=("ObjectCreated:*",)) == [1, 2, 5]
    assert _select(store, types=("s3:ObjectRemoved:*",)) == [3, 4]
    assert _select(store, types=("ObjectRemoved:*", "ObjectTagging:Put")) == [3, 4, 6]
    assert _select(store, types=("Object*",)) == [1, 2, 3, 4, 5, 6]
    assert _select(store, types=("ObjectRemoved:*",), principal="AWS:bob") == [4]


def test_select_events_matches_the_in_memory_filter(store: SqlEventStore) -> None:
    """The SQL translation and EventQuery.matches (used by filtered projections) agree."""
    _audit_log(store)
    every = list(store.read())
    queries = [
        EventQuery(bucket="logs", prefix="app/", types=("ObjectRemoved:*",)),
        EventQuery(since=T0 + timedelta(seconds=2), principal="AWS:alice"),
        EventQuery(prefix="web", until=T0 + timedelta(seconds=10), types=("Object*",)),
    ]
    for query in queries:
        assert _select(store, **_fields(query)) == [
            s.position for s in every if query.matches(s.event)
        ]


def _fields(query: EventQuery) -> dict[str, Any]:
    return {
        "bucket": query.bucket, "prefix": query.prefix, "since": query.since,
        "until": query.until, "types": query.types, "principal": query.principal,
    }  # fmt: skip


# -- the object catalog -------------------------------------------------------------------


def test_objects_reflect_puts_and_deletes_and_filters(store: SqlEventStore) -> None:
    _audit_log(store)

    live = [(e.bucket, e.key) for e in objects(store)]
    everything = {(e.bucket, e.key): e for e in objects(store, include_deleted=True)}

    assert live == [("data", "app/1.log"), ("logs", "app/2.log")]
    assert everything[("logs", "app/1.log")].deleted
    assert everything[("logs", "web/1.log")].deleted
    assert ("logs", "app/3.log") not in everything  # tagging alone does not make an object
    assert [e.key for e in objects(store, bucket="logs")] == ["app/2.log"]
    assert [e.key for e in objects(store, bucket="logs", prefix="web/", include_deleted=True)] == [
        "web/1.log"
    ]
    entry = everything[("logs", "app/2.log")]
    assert (entry.size, entry.last_event_name, entry.sequencer) == (
        1024,
        "ObjectCreated:Copy",
        "02",
    )
    assert entry.last_event_time == T0 + timedelta(seconds=1)


def test_a_delete_that_arrives_before_its_put_still_wins(store: SqlEventStore) -> None:
    put = s3_record("b", "k", sequencer="10", when=T0)
    delete = s3_record("b", "k", event_name="ObjectRemoved:Delete", sequencer="20", when=T0)
    store.append(new_events([delete]))
    store.append(new_events([put]))

    (entry,) = objects(store, include_deleted=True)

    assert entry.deleted and entry.last_event_name == "ObjectRemoved:Delete"
    assert objects(store) == []


def test_versioned_bucket_deletes_only_change_the_current_version(store: SqlEventStore) -> None:
    v1 = s3_record("b", "k", sequencer="10", version_id="v1", size=1, when=T0)
    v2 = s3_record(
        "b", "k", sequencer="20", version_id="v2", size=2, when=T0 + timedelta(seconds=1)
    )
    drop_v1 = s3_record("b", "k", event_name="ObjectRemoved:Delete", sequencer="30",
                        version_id="v1", when=T0 + timedelta(seconds=2))  # fmt: skip
    drop_v2 = s3_record("b", "k", event_name="ObjectRemoved:Delete", sequencer="40",
                        version_id="v2", when=T0 + timedelta(seconds=3))  # fmt: skip
    store.append(new_events([v1, v2]))
    store.append(new_events([drop_v1]))
    ((version, size),) = [(e.version_id, e.size) for e in objects(store)]
    assert (version, size) == ("v2", 2)

    store.append(new_events([drop_v2]))

    assert objects(store) == []


def test_objects_as_of_reconstructs_the_catalog_at_a_past_time(store: SqlEventStore) -> None:
    _audit_log(store)

    before_delete = list(store.objects_as_of(T0 + timedelta(seconds=1, milliseconds=500)))
    after_all = list(store.objects_as_of(T0 + timedelta(hours=1)))

    assert [(e.bucket, e.key) for e in before_delete] == [
        ("logs", "app/1.log"),
        ("logs", "app/2.log"),
    ]
    assert after_all == objects(store)
    assert list(store.objects_as_of(T0 - timedelta(seconds=1))) == []
    in_logs = store.objects_as_of(T0 + timedelta(hours=1), bucket="logs", include_deleted=True)
    assert [e.key for e in in_logs] == ["app/1.log", "app/2.log", "web/1.log"]


# -- checkpoints --------------------------------------------------------------------------


def test_an_append_moves_no_checkpoint_and_catch_up_moves_the_catalogs(
    store: SqlEventStore,
) -> None:
    runner = ProjectionRunner(store, [ObjectCatalogProjection()])
    runner.catch_up()  # builds the (empty) catalog: live at 0
    store.append(puts("b", ["a", "b"]))
    assert catalog_checkpoint(store) == 0  # the log knows nothing of projections

    runner.catch_up()
    assert catalog_checkpoint(store) == 2
    store.append(puts("b", ["a", "b"]))  # only duplicates: nothing to fold
    store.append(puts("b", ["c"], start=2))
    runner.catch_up()
    assert catalog_checkpoint(store) == 3 == store.head_position()


def test_the_caught_up_catalog_equals_a_rebuild_from_scratch(store: SqlEventStore) -> None:
    _audit_log(store)
    store.append(new_events(put_records("b", [f"p/{i}" for i in range(50)])))
    before = objects(store, include_deleted=True)

    (report,) = ProjectionRunner(store, [ObjectCatalogProjection()]).rebuild(["object_catalog"])

    assert report.swapped and report.applied == store.head_position()
    assert list(catalog_entries(store.engine, include_deleted=True)) == before
    assert catalog_checkpoint(store) == store.head_position()


failing_marks = sa.Table(
    "contract_failing_marks",
    projection_metadata,
    sa.Column("position", sa.BigInteger(), primary_key=True),
)


class FailsOnPoisonProjection(Projection):
    """Writes a row per event, then raises on a key named "poison": its writes of that
    chunk must vanish with its checkpoint stopped before the poison, while the append and
    every other projection go on."""

    name = "contract_fails_on_poison"
    version = 1
    tables: ClassVar = (failing_marks,)

    def apply(self, context: ProjectionContext, events: Any) -> None:
        stored: list[StoredEvent] = list(events)
        if stored:
            context.connection.execute(
                sa.insert(context.table("contract_failing_marks")),
                [{"position": s.position} for s in stored],
            )
        if any(s.event.key == "poison" for s in stored):
            raise RuntimeError("poisoned")


def test_a_failing_projection_rolls_back_alone_and_its_checkpoint_stays(store_url: str) -> None:
    engine = create_engine(store_url)
    store = SqlEventStore(engine)
    runner = ProjectionRunner(store, [ObjectCatalogProjection(), FailsOnPoisonProjection()])
    try:
        runner.catch_up()  # builds the new projections: live at position 0
        store.append(puts("b", ["ok-1", "ok-2"]))

        result = store.append(puts("b", ["ok-3", "poison"], start=2))
        reports = {r.name: r for r in runner.catch_up()}

        assert result.appended == 2
        assert reports["object_catalog"].error is None
        assert "poisoned" in (reports["contract_fails_on_poison"].error or "")
        assert catalog_checkpoint(store) == 4
        with engine.connect() as connection:
            marks = connection.execute(sa.select(failing_marks.c.position)).scalars().all()
            row = connection.execute(
                sa.select(projection_checkpoints).where(
                    projection_checkpoints.c.name == "contract_fails_on_poison"
                )
            ).one()
            catalog_rows = connection.execute(
                sa.select(sa.func.count()).select_from(object_catalog)
            )
            assert catalog_rows.scalar() == 4
        assert sorted(marks) == [1, 2, 3]  # applied up to the poison, which stopped it
        assert (row.position, row.error_position) == (3, 4)
        assert "poisoned" in row.last_error
    finally:
        engine.dispose()


def test_a_tampered_column_is_found_by_verify(store: SqlEventStore) -> None:
    store.append(puts("b", ["a", "b", "c"]))
    with store.engine.begin() as connection:
        connection.execute(
            sa.update(events_table).where(events_table.c.position == 2).values(size=999)
        )

    result = store.verify()

    assert not result.ok and result.first_bad_position == 2
