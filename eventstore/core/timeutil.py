"""ISO 8601 times in and out; every time inside the library is timezone-aware UTC."""

import re
from datetime import UTC, datetime

from eventstore.errors import ConfigurationError

# What format_time wrote for years before 1000 until it padded them (glibc's strftime("%Y")
# does not): `500-01-01T00:00:00.000Z`. Saved replay filters may still hold such text.
_UNPADDED_YEAR = re.compile(r"(\d{1,3})(-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time (`Z` or an offset, fractions optional); naive input is taken as UTC.

    Raises ValueError with a readable message when the text is not a time.
    """
    cleaned = text.strip()
    legacy = _UNPADDED_YEAR.fullmatch(cleaned)
    if legacy:
        cleaned = legacy.group(1).zfill(4) + legacy.group(2)
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before the first datetime
        raise ValueError(f"time out of range: {text!r}") from None


def parse_option_time(text: str, option: str) -> datetime:
    """Parse a command-line time, naming the option in the error."""
    try:
        return parse_time(text)
    except ValueError:
        raise ConfigurationError(
            f"{option}: {text!r} is not an ISO 8601 time (e.g. 2026-03-01T12:00:00Z)"
        ) from None


def format_time(value: datetime) -> str:
    """UTC, millisecond precision, `Z` suffix: the form S3 itself uses.

    Built by hand rather than with strftime("%Y"), which writes year 500 as "500" on Linux:
    ISO 8601 wants four digits, and parse_time must read back whatever this writes. The hash
    chain and event ids hash this text, so for years 1000-9999 it must never change.
    """
    utc = value.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )
