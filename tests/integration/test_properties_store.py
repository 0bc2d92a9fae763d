"""Properties of the log on a real SQLite file: however the deliveries arrive (any order, any
duplication, any cut into batches), the log holds the same events and the catalog agrees."""

import shutil
from collections.abc import Iterable
from dataclasses import replace
from itertools import count
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore.core.objectstate import CatalogEntry
from eventstore.store.database import create_engine, upgrade_schema
from eventstore.store.sql import SqlEventStore
from eventstore.wiring import event_store_on
from tests.strategies import History, batches, deliveries, histories
from tests.unit.test_properties import assert_matches_s3, catalog

_numbers = count()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database built by the migrations, copied for each example (migrating each
    time would make the test slow for nothing)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade_schema(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="module")
def examples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("examples")


def fresh_store(template: Path, folder: Path) -> SqlEventStore:
    path = folder / f"example-{next(_numbers)}.db"
    shutil.copyfile(template, path)
    return SqlEventStore(create_engine(f"sqlite:///{path}"))


def caught_up_catalog(store: SqlEventStore) -> list[CatalogEntry]:
    """The object catalog after the runner caught it up (with all built-in projections)."""
    event_store = event_store_on(store)
    event_store.catch_up()
    return list(event_store.objects(include_deleted=True))


def without_positions(entries: Iterable[CatalogEntry]) -> dict[tuple[str, str], CatalogEntry]:
    return {(e.bucket, e.key): replace(e, last_position=0) for e in entries}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), history=histories(max_steps=10))
def test_deliveries_in_any_order_and_batches_give_the_same_log_and_catalog(
    template: Path, examples_dir: Path, data: st.DataObject, history: History
) -> None:
    # Given the same history delivered twice: once in S3's order in one batch, once shuffled
    # with duplicates and cut into batches
    delivered = data.draw(deliveries(history))
    cut = data.draw(batches(delivered))
    in_order, messy = fresh_store(template, examples_dir), fresh_store(template, examples_dir)
    try:
        in_order.append(history.events)
        appended = sum(messy.append(batch).appended for batch in cut)
        # Then each log holds each event exactly once
        ids = [s.event.event_id for s in messy.read()]
        assert appended == len(ids) == len(set(ids))
        assert set(ids) == {s.event.event_id for s in in_order.read()}
        # and the catalogs are the same, and what S3 holds, and what the pure fold says
        catalog_now = without_positions(caught_up_catalog(messy))
        assert catalog_now == without_positions(caught_up_catalog(in_order))
        assert catalog_now == catalog(delivered)
        assert_matches_s3(history, catalog_now)
        # and replaying the log to a time after everything gives the same catalog
        latest = max(e.event_time for e in history.events)
        as_of = list(messy.objects_as_of(latest, include_deleted=True))
        assert without_positions(as_of) == catalog_now
        # and the chain verifies
        assert messy.verify().ok
        # and each key's history is in S3's order whatever the arrival order
        for bucket, key in history.expected:
            expected = [
                e.event_id
                for e in history.events
                if (e.bucket, e.key) == (bucket, key) and e.sequencer is not None
            ]
            got = [s.event.event_id for s in messy.history(bucket, key) if s.event.sequencer]
            assert got == expected
    finally:
        in_order.engine.dispose()
        messy.engine.dispose()
