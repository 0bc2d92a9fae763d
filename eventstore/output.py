"""Rendering query results: a readable table for people, JSON / JSON lines / CSV for machines.

Rows are written as they come, so a query of any size is printed in bounded memory. Keys and
most other values come from whoever could write to the bucket: the table escapes control
characters (a key must not drive the terminal) and CSV cells are guarded against formulas.
"""

import csv
import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TextIO

from eventstore.core.events import StoredEvent
from eventstore.core.objectstate import CatalogEntry
from eventstore.core.timeutil import format_time
from eventstore.errors import ConfigurationError

FORMATS = ("table", "json", "jsonl", "csv")

EVENT_FIELDS = (
    "position", "event_id", "event_name", "event_time", "bucket", "key", "version_id",
    "sequencer", "size", "etag", "principal_id", "source_ip", "request_id", "region", "source",
)  # fmt: skip
EVENT_TABLE_FIELDS = (
    "position", "event_time", "event_name", "bucket", "key", "version_id", "size", "principal_id",
    "source",
)  # fmt: skip
CATALOG_FIELDS = (
    "bucket", "key", "version_id", "size", "etag", "sequencer", "last_event_name",
    "last_event_time", "deleted",
)  # fmt: skip
CATALOG_TABLE_FIELDS = (
    "bucket", "key", "version_id", "size", "last_event_name", "last_event_time", "deleted",
)  # fmt: skip


def event_row(stored: StoredEvent) -> dict[str, Any]:
    event = stored.event
    return {
        "position": stored.position,
        "event_id": event.event_id,
        "event_name": event.event_name,
        "event_time": event.event_time,
        "bucket": event.bucket,
        "key": event.key,
        "version_id": event.version_id,
        "sequencer": event.sequencer,
        "size": event.size,
        "etag": event.etag,
        "principal_id": event.principal_id,
        "source_ip": event.source_ip,
        "request_id": event.request_id,
        "region": event.region,
        "source": str(event.source),
    }


def catalog_row(entry: CatalogEntry) -> dict[str, Any]:
    return {
        "bucket": entry.bucket,
        "key": entry.key,
        "version_id": entry.version_id,
        "size": entry.size,
        "etag": entry.etag,
        "sequencer": entry.sequencer,
        "last_event_name": entry.last_event_name,
        "last_event_time": entry.last_event_time,
        "deleted": entry.deleted,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    return value


def render(
    rows: Iterable[dict[str, Any]],
    fields: Sequence[str],
    fmt: str,
    out: TextIO,
    *,
    table_fields: Sequence[str] | None = None,
) -> None:
    """Write `rows` to `out` in format `fmt` (table, json, jsonl, csv), one row at a time."""
    if fmt == "json":
        _json_array(rows, fields, out)
    elif fmt == "jsonl":
        for r in rows:
            out.write(json.dumps({f: _plain(r[f]) for f in fields}, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(fields)
        for r in rows:
            writer.writerow([csv_cell(r[f]) for f in fields])
    elif fmt == "table":
        _table(rows, table_fields or fields, out)
    else:
        raise ConfigurationError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def _json_array(rows: Iterable[dict[str, Any]], fields: Sequence[str], out: TextIO) -> None:
    # The same text json.dump(list, indent=2) writes, one element at a time.
    count = 0
    for r in rows:
        element = json.dumps({f: _plain(r[f]) for f in fields}, ensure_ascii=False, indent=2)
        out.write(("[\n" if count == 0 else ",\n") + _indented(element))
        count += 1
    out.write("\n]\n" if count else "[]\n")


def _indented(text: str) -> str:
    # Safe line by line: JSON text has no raw newline inside a string.
    return "\n".join("  " + line for line in text.split("\n"))


# What may not reach a terminal raw: C0 controls (ESC, CR, LF, TAB...), DEL and C1 controls
# (0x9b is a one-byte CSI on some terminals), the bidirectional overrides and isolates that
# reorder what a line shows (Trojan Source), and the Unicode line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_match(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` with every character that could move the cursor, recolour, retitle or reorder a
    terminal shown as an escape (`\\x1b`, `\\n`, `\\u202e`)."""
    return _UNSAFE.sub(_escape_match, text)


# OWASP's CSV injection guidance: a cell starting with one of these is read as a formula by
# spreadsheets (TAB and CR because some strip them first); a leading quote makes it text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: empty for None, text that cannot start a formula."""
    if value is None:
        return ""
    value = _plain(value)
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape_controls(str(_plain(value)))


TABLE_PAGE = 1000  # rows measured at a time; the columns are as wide as the widest so far


def _table(rows: Iterable[dict[str, Any]], fields: Sequence[str], out: TextIO) -> None:
    """Aligned columns, printed a page at a time: the header is printed again only when a
    page needs wider columns than the pages before it."""
    widths = [len(f) for f in fields]
    printed: list[int] | None = None
    count = 0
    page: list[list[str]] = []
    iterator = iter(rows)
    while True:
        page.clear()
        for r in iterator:
            page.append([_cell(r[f]) for f in fields])
            if len(page) == TABLE_PAGE:
                break
        if not page and printed is not None:
            break
        widths = [max([w] + [len(row[i]) for row in page]) for i, w in enumerate(widths)]
        if widths != printed:
            if printed is not None:
                out.write("\n")
            out.write(_line(fields, widths))
            out.write("  ".join("-" * w for w in widths) + "\n")
            printed = widths
        for row in page:
            out.write(_line(row, widths))
        count += len(page)
        if len(page) < TABLE_PAGE:
            break
    out.write(f"({count} row{'s' if count != 1 else ''})\n")


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() + "\n"
