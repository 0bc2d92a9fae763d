"""The pytest plugin (entry point `pytest11`: eventstore): fixtures for testing projections
and reactors against a real log and moto.

* `eventstore_db_url`: a SQLite file in the test's tmp_path, built by the migrations;
* `eventstore_log`: the SqlEventStore on it;
* `eventstore`: an EventStore on that log with the registered projections, or those the
  `eventstore_projections` fixture returns (override it in a conftest or test module);
* `moto_s3`: moto's AWS with a versioned bucket (eventstore.testing.aws.MotoS3).

pytest imports this module at every start, in every project that has the library
installed: it imports no SQLAlchemy, boto3 or moto (the fixtures do, when used).
Disable it with `-p no:eventstore`.
"""

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from eventstore.testing.aws import (
    FAKE_CREDENTIALS,
    UNSET_VARIABLES,
    MotoMissingError,
    MotoS3,
    mock_aws,
    moto_s3_context,
)
from eventstore.testing.harness import migrated_sqlite_url

if TYPE_CHECKING:
    from eventstore.projections.base import Projection
    from eventstore.store.sql import SqlEventStore
    from eventstore.wiring import EventStore


@pytest.fixture
def eventstore_db_url(tmp_path: Path) -> str:
    """The URL of a SQLite file in tmp_path whose schema the migrations built."""
    return migrated_sqlite_url(tmp_path)


@pytest.fixture
def eventstore_log(eventstore_db_url: str) -> Iterator["SqlEventStore"]:
    """The event log on `eventstore_db_url`."""
    from eventstore.store.database import create_engine
    from eventstore.store.sql import SqlEventStore

    engine = create_engine(eventstore_db_url)
    yield SqlEventStore(engine)
    engine.dispose()


@pytest.fixture
def eventstore_projections() -> "Sequence[Projection] | None":
    """The projections of the `eventstore` fixture; None means every registered one
    (built-ins, @projection, the eventstore.projections entry points)."""
    return None


@pytest.fixture
def eventstore(
    eventstore_log: "SqlEventStore", eventstore_projections: "Sequence[Projection] | None"
) -> "EventStore":
    """The log and its projections, wired as every entry point wires them."""
    from eventstore.wiring import event_store_on

    return event_store_on(eventstore_log, eventstore_projections)


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoS3]:
    """moto's S3 and SQS for the test, with a versioned bucket (`moto_s3.bucket`) and
    credentials that can reach no real account."""
    for name in UNSET_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    try:
        mock = mock_aws()
    except MotoMissingError as error:
        pytest.fail(str(error), pytrace=False)
    with moto_s3_context(mock=mock) as aws:
        yield aws
