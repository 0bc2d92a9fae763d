"""Shared fixtures: real-shaped AWS events from tests/events, and stores built by migrations."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventstore.store.database import create_engine, upgrade_schema
from eventstore.store.sql import SqlEventStore

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
