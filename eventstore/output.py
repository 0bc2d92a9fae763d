"""Rendering query results: a readable table for people (Rich: colour and the terminal's width
on a terminal, plain aligned text when piped), JSON / JSON lines / CSV for machines.

Rows are written as they come (a table a page at a time), so a query of any size is printed in
bounded memory. Keys and most other values come from whoever could write to the bucket: the
table escapes control characters (a key must not drive the terminal) and shows them as Rich
text, never markup; CSV cells are guarded against formulas.
"""

import csv
import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import islice
from typing import Any, TextIO

from rich import box
from rich.cells import get_character_cell_size
from rich.console import Console
from rich.table import Table
from rich.text import Text

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
    console: Console | None = None,
) -> None:
    """Write `rows` to `out` in format `fmt` (table, json, jsonl, csv), one row at a time
    (a table: a page at a time, on `console` if given, else on `table_console(out)`)."""
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
        _table(rows, table_fields or fields, out, console)
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


TABLE_PAGE = 1000  # rows laid out at a time: a table holds one page, never the whole result

# Colour on a terminal, by what a column holds; anything else is left in the default colour.
_STYLES = {
    "position": "cyan",
    "event_time": "green",
    "last_event_time": "green",
    "event_name": "magenta",
    "last_event_name": "magenta",
    "key": "bold",
}

# Piped: the header underlined with ASCII dashes, no other lines (Rich's SIMPLE_HEAD in ASCII).
_PLAIN_BOX = box.Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)


def _width(text: str) -> int:
    # Columns a cell takes (a CJK character two). Not rich.cells.cell_len: that caches every
    # string it measures, and a million distinct keys would churn its cache for nothing.
    if text.isascii():
        return len(text)
    return sum(get_character_cell_size(char) for char in text)


def table_console(out: TextIO) -> Console:
    """The console a table is printed on: `out`'s terminal (its width, colour unless NO_COLOR)
    when `out` is one, else plain text of any width. Whether `out` is a terminal decides, not
    FORCE_COLOR: a table redirected to a file or a pipe stays plain text."""
    return Console(
        file=out,
        force_terminal=out.isatty(),
        highlight=False,  # no guessing numbers or URLs to colour in data
        markup=False,
        emoji=False,
    )


def _table(
    rows: Iterable[dict[str, Any]], fields: Sequence[str], out: TextIO, console: Console | None
) -> None:
    """A Rich table a page of rows at a time. On a terminal each page is fitted to its width
    (cells folded, never cut) under its own header. Otherwise the lines are plain text of
    aligned columns, the header printed again only when a page needs wider columns than the
    pages before it, so a piped table reads as one."""
    console = console or table_console(out)
    widths = [_width(f) for f in fields]
    printed: list[int] | None = None
    count = 0
    iterator = iter(rows)
    while True:
        page = [[_cell(r[f]) for f in fields] for r in islice(iterator, TABLE_PAGE)]
        if not page and printed is not None:
            break
        if console.is_terminal:
            console.print(_page_table(fields, page, None))
            printed = widths
        else:
            widths = [max([w] + [_width(row[i]) for row in page]) for i, w in enumerate(widths)]
            if printed is not None and widths != printed:
                out.write("\n")
            table = _page_table(fields, page, widths, show_header=widths != printed)
            # Rich pads every line to the table's width; the plain form keeps no trailing space.
            options = console.options.update(width=sum(widths) + 3 * len(widths))
            for line in console.render_lines(table, options, pad=False, new_lines=False):
                out.write("".join(segment.text for segment in line).rstrip() + "\n")
            printed = widths
        count += len(page)
        if len(page) < TABLE_PAGE:
            break
    footer = f"({count} row{'s' if count != 1 else ''})"
    if console.is_terminal:
        console.print(Text(footer, style="dim"))
    else:
        out.write(footer + "\n")


def _page_table(
    fields: Sequence[str],
    page: Sequence[Sequence[str]],
    widths: Sequence[int] | None,
    *,
    show_header: bool = True,
) -> Table:
    terminal = widths is None
    table = Table(
        box=box.SIMPLE_HEAD if terminal else _PLAIN_BOX,
        show_edge=False,
        pad_edge=False,
        show_header=show_header,
        header_style="bold" if terminal else "",
        # Piped: two spaces between columns, as `column -t` would print them.
        padding=(0, 1) if terminal else (0, 1, 0, 0),
    )
    for i, field in enumerate(fields):
        table.add_column(
            field,
            style=_STYLES.get(field, "") if terminal else "",
            overflow="fold",  # a long key wraps onto more lines; no ellipsis hides part of it
            width=None if widths is None else widths[i],
            no_wrap=not terminal,  # piped, every column is as wide as its widest cell
        )
    for row in page:
        # Text, not str: a key holding "[bold]" is shown as typed, never read as markup.
        table.add_row(*(Text(cell, style="dim" if cell == "-" else "") for cell in row))
    return table
