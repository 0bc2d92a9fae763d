"""ISO 8601 times in and out; every time inside the library is timezone-aware UTC."""

from datetime import UTC, datetime

from eventstore.errors import ConfigurationError


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time (`Z` or an offset, fractions optional); naive input is taken as UTC.

    Raises ValueError with a readable message when the text is not a time.
    """
    cleaned = text.strip()
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
    """UTC, millisecond precision, `Z` suffix: the form S3 itself uses."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
