"""Shared fixtures: real-shaped AWS events from tests/events, and stores built by migrations."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventstore.store.database import create_engine, upgrade_schema
from eventstore.store.sql import SqlEventStore
from tests import postgres_server

EVENTS_DIR = Path(__file__).parent / "events"


def load_event(name: str) -> Any:
    """A fixture from tests/events, decoded."""
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


def event_text(name: str) -> str:
    return (EVENTS_DIR / name).read_text(encoding="utf-8")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[SqlEventStore]:
    """A store on a real SQLite file whose schema was built by running the migrations."""
    engine = create_engine(sqlite_url)
    upgrade_schema(engine)
    yield SqlEventStore(engine)
    engine.dispose()


# -- PostgreSQL: one throwaway server per test session, one fresh database per test -----------


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[postgres_server.TestDatabases]:
    """Databases on a throwaway server (or $EVENTSTORE_TEST_POSTGRES_URL). Without one the
    test skips, except under CI=true, where it fails: CI must never pass by skipping."""
    try:
        with postgres_server.postgres_databases() as databases:
            yield databases
    except postgres_server.PostgresUnavailableError as error:
        if postgres_server.running_in_ci():
            pytest.fail(f"PostgreSQL is required under CI=true: {error}", pytrace=False)
        pytest.skip(f"no PostgreSQL server: {error}")


@pytest.fixture
def postgres_url(postgres_databases: postgres_server.TestDatabases) -> Iterator[str]:
    """The URL of a fresh database whose schema the migrations built; dropped afterwards."""
    with postgres_databases.fresh() as url:
        yield url


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[SqlEventStore]:
    engine = create_engine(postgres_url)
    yield SqlEventStore(engine)
    engine.dispose()


# -- the shared suite: the same cases on every backend -----------------------------------------

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database the migrations built, on each backend in turn."""
    if request.param == "postgres":
        postgres: str = request.getfixturevalue("postgres_url")
        return postgres
    url: str = request.getfixturevalue("sqlite_url")
    engine = create_engine(url)
    upgrade_schema(engine)
    engine.dispose()
    return url


@pytest.fixture
def backend_log(backend_url: str) -> Iterator[SqlEventStore]:
    """The log on `backend_url`."""
    engine = create_engine(backend_url)
    yield SqlEventStore(engine)
    engine.dispose()
