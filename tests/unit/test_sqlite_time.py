"""Rows written without SQLAlchemy's per-value work must hold exactly what SQLAlchemy writes."""

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from eventstore.store.bulk import sqlite_time
from eventstore.store.schema import UTCDateTime
from eventstore.store.sql import _sqlite_time as _read_time

_DIALECT = sqlite.dialect()
_SQLALCHEMY = UTCDateTime().dialect_impl(_DIALECT).bind_processor(_DIALECT)


@given(
    when=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    offset_minutes=st.integers(-14 * 60, 14 * 60),
)
def test_a_time_is_written_as_sqlalchemy_writes_it(when: datetime, offset_minutes: int) -> None:
    aware = when.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    assert _SQLALCHEMY is not None
    assert sqlite_time(aware) == _SQLALCHEMY(aware)


def test_utc_and_none() -> None:
    assert sqlite_time(datetime(2026, 3, 1, 12, tzinfo=UTC)) == "2026-03-01 12:00:00.000000"
    assert sqlite_time(None) is None


@given(when=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_a_time_read_back_is_the_aware_utc_time_written(when: datetime) -> None:
    aware = when.replace(tzinfo=UTC)
    text = sqlite_time(aware)
    assert text is not None
    read = _read_time(text)
    assert read == aware and read.tzinfo is UTC
