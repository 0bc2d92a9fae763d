"""The Parquet layout of an export: one file per event day and position range, the typed
columns under the names of `--format json` output, plus the verbatim record and the row's
place in the hash chain. pyarrow is imported here only (the `lake` extra)."""

import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from eventstore.core.events import StoredEvent

# Glue/Athena types beside each column: infra/template.yaml declares the same table.
_UTC = pa.timestamp("us", tz="UTC")
_FIELDS: list["pa.Field[Any]"] = [
    pa.field("position", pa.int64(), nullable=False),
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("event_name", pa.string(), nullable=False),
    pa.field("event_time", _UTC, nullable=False),
    pa.field("bucket", pa.string(), nullable=False),
    pa.field("key", pa.string(), nullable=False),
    pa.field("version_id", pa.string()),
    pa.field("sequencer", pa.string()),
    pa.field("size", pa.int64()),
    pa.field("etag", pa.string()),
    pa.field("principal_id", pa.string()),
    pa.field("source_ip", pa.string()),
    pa.field("request_id", pa.string()),
    pa.field("region", pa.string()),
    pa.field("source", pa.string(), nullable=False),
    pa.field("causation_id", pa.string()),
    pa.field("correlation_id", pa.string()),
    pa.field("recorded_at", _UTC, nullable=False),
    pa.field("hash", pa.string(), nullable=False),
    pa.field("record", pa.string(), nullable=False),
]
SCHEMA = pa.schema(_FIELDS)

# Rows buffered across all open files before they are written out as row groups: the export's
# memory bound, whatever the size of a run or the number of days it spans.
BUFFERED_ROWS = 10_000


def row_of(stored: StoredEvent) -> tuple[Any, ...]:
    event = stored.event
    return (
        stored.position, event.event_id, event.event_name, event.event_time, event.bucket,
        event.key, event.version_id, event.sequencer, event.size, event.etag,
        event.principal_id, event.source_ip, event.request_id, event.region, str(event.source),
        event.causation_id, event.correlation_id, stored.recorded_at, stored.hash,
        stored.record_json,
    )  # fmt: skip


def partition_of(day: date) -> str:
    return f"dt={day.isoformat()}"


def file_name(first: int, last: int) -> str:
    """Derived from the run's position range only: a re-run of the same range writes the same
    names (replacing, never adding), and names sort in log order."""
    return f"events-{first:020d}-{last:020d}.parquet"


@dataclass
class _DayFile:
    path: Path
    writer: pq.ParquetWriter
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    written: int = 0

    def flush(self) -> None:
        if self.rows:
            columns = list(zip(*self.rows, strict=True))
            table = pa.Table.from_arrays(
                [pa.array(c, type=f.type) for c, f in zip(columns, SCHEMA, strict=True)],
                schema=SCHEMA,
            )
            self.writer.write_table(table)
            self.written += len(self.rows)
            self.rows = []


@dataclass(frozen=True, slots=True)
class DayFile:
    """A finished local file of one partition."""

    partition: str
    path: Path
    rows: int


@contextmanager
def write_day_files(events: Iterable[StoredEvent]) -> Iterator[list[DayFile]]:
    """Write `events` into one local Parquet file per UTC event day (in a temporary directory
    that lives as long as the context), and yield them finished."""
    with tempfile.TemporaryDirectory(prefix="eventstore-export-") as scratch:
        files: dict[date, _DayFile] = {}
        buffered = 0
        try:
            for stored in events:
                day = stored.event.event_time.astimezone(UTC).date()
                out = files.get(day)
                if out is None:
                    path = Path(scratch) / f"{day.isoformat()}.parquet"
                    out = files[day] = _DayFile(
                        path, pq.ParquetWriter(path, SCHEMA, compression="zstd")
                    )
                out.rows.append(row_of(stored))
                buffered += 1
                if buffered >= BUFFERED_ROWS:
                    for each in files.values():
                        each.flush()
                    buffered = 0
            for each in files.values():
                each.flush()
        finally:
            for each in files.values():
                each.writer.close()
        yield [
            DayFile(partition_of(day), out.path, out.written) for day, out in sorted(files.items())
        ]
