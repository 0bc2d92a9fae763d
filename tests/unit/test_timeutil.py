"""ISO 8601 times in and out, for every year S3 and ISO 8601 allow (1 to 9999)."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore.core.timeutil import format_time, parse_time

# Aware UTC times of every year datetime holds, at S3's precision (milliseconds).
utc_times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999000)
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000, tzinfo=UTC))


@given(utc_times)
def test_every_formatted_time_parses_back_to_itself(when: datetime) -> None:
    # Given a time of any year from 1 to 9999
    # When it is formatted and the text parsed again
    text = format_time(when)
    # Then the year has four digits and the time is the same
    assert text[4] == "-"
    assert text.endswith("Z")
    assert parse_time(text) == when


@given(utc_times.filter(lambda t: t.year >= 1000))
def test_from_year_1000_the_text_is_the_one_existing_logs_hashed(when: datetime) -> None:
    # Given a time from year 1000 on, which the hash chain and event ids have always hashed
    # as strftime wrote it
    earlier_form = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    # Then format_time still writes exactly that
    assert format_time(when) == earlier_form


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000Z"),
        (datetime(500, 1, 1, tzinfo=UTC), "0500-01-01T00:00:00.000Z"),
        (datetime(999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "0999-12-31T23:59:59.999Z"),
        (datetime(1000, 1, 1, tzinfo=UTC), "1000-01-01T00:00:00.000Z"),
        (datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC), "2026-03-01T12:00:00.123Z"),
        (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31T23:59:59.999Z"),
    ],
)
def test_years_are_written_with_four_digits(when: datetime, text: str) -> None:
    assert format_time(when) == text
    assert parse_time(text) == when.replace(microsecond=when.microsecond // 1000 * 1000)


def test_a_time_in_another_zone_is_written_in_utc() -> None:
    when = datetime(500, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(when) == "0499-12-31T23:30:00.000Z"


@pytest.mark.parametrize(
    ("text", "when"),
    [
        ("500-01-01T00:00:00.000Z", datetime(500, 1, 1, tzinfo=UTC)),
        ("1-01-01T00:00:00.000Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("999-12-31T23:59:59.999Z", datetime(999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
    ],
)
def test_what_earlier_versions_wrote_for_years_before_1000_is_read(
    text: str, when: datetime
) -> None:
    # Given the unpadded year format_time used to write (a saved replay filter may hold it)
    # Then it reads as the time it stood for
    assert parse_time(text) == when


@pytest.mark.parametrize(
    "text",
    ["500-01-01", "500-01-01T00:00:00Z", "20260-01-01T00:00:00.000Z", "0000-01-01T00:00:00Z"],
)
def test_other_short_or_long_years_are_not_times(text: str) -> None:
    # Only the exact form format_time once wrote is read with a short year; year 0 is not one
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        parse_time(text)


@pytest.mark.parametrize(
    ("text", "when"),
    [
        ("0500-01-01T00:00:00Z", datetime(500, 1, 1, tzinfo=UTC)),
        ("0001-01-01T00:00:00+00:00", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999Z", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("0999-06-01T12:00:00-02:00", datetime(999, 6, 1, 14, 0, tzinfo=UTC)),
    ],
)
def test_iso_times_of_any_year_parse(text: str, when: datetime) -> None:
    assert parse_time(text) == when


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"])
def test_times_that_fall_outside_years_1_to_9999_in_utc_are_out_of_range(text: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_time(text)
