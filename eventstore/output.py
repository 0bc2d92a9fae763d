"""Rendering query results: a readable table for people, JSON / JSON lines / CSV for machines."""

import csv
import json
from collections.abc import Sequence
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
    rows: Sequence[dict[str, Any]],
    fields: Sequence[str],
    fmt: str,
    out: TextIO,
    *,
    table_fields: Sequence[str] | None = None,
) -> None:
    """Write `rows` to `out` in format `fmt` (table, json, jsonl, csv)."""
    if fmt == "json":
        json.dump(
            [{f: _plain(r[f]) for f in fields} for r in rows], out, ensure_ascii=False, indent=2
        )
        out.write("\n")
    elif fmt == "jsonl":
        for r in rows:
            out.write(json.dumps({f: _plain(r[f]) for f in fields}, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(fields)
        for r in rows:
            writer.writerow(["" if r[f] is None else _plain(r[f]) for f in fields])
    elif fmt == "table":
        _table(rows, table_fields or fields, out)
    else:
        raise ConfigurationError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(_plain(value))


def _table(rows: Sequence[dict[str, Any]], fields: Sequence[str], out: TextIO) -> None:
    cells = [[_cell(r[f]) for f in fields] for r in rows]
    widths = [max([len(f)] + [len(row[i]) for row in cells]) for i, f in enumerate(fields)]
    out.write("  ".join(f.ljust(w) for f, w in zip(fields, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
    out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")
