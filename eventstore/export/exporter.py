"""The export run: from the destination's checkpoint to the head of the log, a range at a time.

Each range is announced (`pending_until`) before its files are written and the checkpoint
moves past it only after every file is durable at its final name. Files are named by the
range, so a run after a crash writes the announced range again under the same names,
replacing whatever part of it was written: nothing is exported twice, nothing skipped.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Connection

from eventstore.errors import EventStoreError
from eventstore.export.parquet import file_name, write_day_files
from eventstore.export.targets import ExportTarget
from eventstore.store.database import WRITE
from eventstore.store.schema import events, export_checkpoints
from eventstore.store.sql import SqlEventStore

# Events per range: one file per day of each range, so this is also the largest file's row
# count (Athena prefers files of tens of MB and more; ~1 KB per event compresses ~10x).
RANGE_EVENTS = 500_000


class ExportError(EventStoreError):
    """The destination's checkpoint does not fit the log (it was cut back or rewritten)."""


@dataclass(frozen=True, slots=True)
class ExportReport:
    destination: str
    after: int  # the checkpoint the run started from
    position: int  # the checkpoint it ended at
    files: int
    rows: int

    def as_dict(self) -> dict[str, object]:
        return {
            "destination": self.destination,
            "from": self.after,
            "to": self.position,
            "files": self.files,
            "rows": self.rows,
        }


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    position: int
    position_hash: str | None
    pending_until: int | None


def export_log(
    log: SqlEventStore,
    target: ExportTarget,
    *,
    range_events: int = RANGE_EVENTS,
    on_rows: Callable[[int], None] | None = None,
) -> ExportReport:
    """Write every event after the destination's checkpoint, up to the head of the log when
    the run started, and move the checkpoint there."""
    checkpoint = _load(log, target.name)
    start = checkpoint.position
    head = log.head_position()
    files = rows = 0
    while True:
        if checkpoint.pending_until is not None:
            end = checkpoint.pending_until  # a crashed run's range: the same files again
        elif checkpoint.position < head:
            end = min(head, checkpoint.position + range_events)
            _announce(log, target.name, checkpoint.position, end)
        else:
            break
        first = checkpoint.position + 1
        name = file_name(first, end)
        read = log.read(after=checkpoint.position, limit=end - checkpoint.position)
        with write_day_files(read) as day_files:
            written = sum(f.rows for f in day_files)
            if written != end - checkpoint.position:
                raise ExportError(
                    f"the log holds {written} events in positions {first}..{end}, "
                    f"not {end - checkpoint.position}: it was cut back under the export"
                )
            for day_file in day_files:
                target.put(f"{day_file.partition}/{name}", day_file.path)
                files += 1
        rows += written
        if on_rows is not None:
            on_rows(written)
        checkpoint = _advance(log, target.name, end)
    return ExportReport(target.name, start, checkpoint.position, files, rows)


def export_position(log: SqlEventStore, destination: str) -> int:
    """How far `destination` holds the log (0 when it was never exported to)."""
    with log.engine.connect() as connection:
        return _read(connection, destination).position


def _read(connection: Connection, destination: str) -> _Checkpoint:
    row = connection.execute(
        sa.select(
            export_checkpoints.c.position,
            export_checkpoints.c.position_hash,
            export_checkpoints.c.pending_until,
        ).where(export_checkpoints.c.destination == destination)
    ).first()
    return _Checkpoint(0, None, None) if row is None else _Checkpoint(*row)


def _hash_at(connection: Connection, position: int) -> str | None:
    return connection.execute(
        sa.select(events.c.hash).where(events.c.position == position)
    ).scalar_one_or_none()


def _load(log: SqlEventStore, destination: str) -> _Checkpoint:
    """The checkpoint, refused when the row it stopped at is gone or changed: then the files
    already exported do not describe this log, and appending to them would mix two logs."""
    with log.engine.connect() as connection:
        checkpoint = _read(connection, destination)
        if checkpoint.position and _hash_at(connection, checkpoint.position) != (
            checkpoint.position_hash
        ):
            raise ExportError(
                f"{destination} was exported up to position {checkpoint.position}, and the "
                "log's row there is gone or different: export to a new destination"
            )
    return checkpoint


def _write(log: SqlEventStore) -> Connection:
    return log.engine.connect().execution_options(**{WRITE: True})


def _announce(log: SqlEventStore, destination: str, position: int, end: int) -> None:
    """Record the range about to be written, before any file of it exists. Only from the
    checkpoint this run read: two runs that both read it must not announce different ranges
    (their files would overlap), so the second one stops here."""
    with _write(log) as connection, connection.begin():
        updated = connection.execute(
            sa.update(export_checkpoints)
            .where(
                export_checkpoints.c.destination == destination,
                export_checkpoints.c.position == position,
                export_checkpoints.c.pending_until.is_(None),
            )
            .values(pending_until=end, updated_at=datetime.now(UTC))
        ).rowcount
        exists = connection.execute(
            sa.select(export_checkpoints.c.position).where(
                export_checkpoints.c.destination == destination
            )
        ).first()
        if not updated and exists is not None:
            raise ExportError(f"another export to {destination} is running; run again after it")
        if not updated:
            connection.execute(
                sa.insert(export_checkpoints).values(
                    destination=destination, position=0, position_hash=None,
                    pending_until=end, updated_at=datetime.now(UTC),
                )
            )  # fmt: skip


def _advance(log: SqlEventStore, destination: str, end: int) -> _Checkpoint:
    """Move past a range whose files are all durable."""
    with _write(log) as connection, connection.begin():
        position_hash = _hash_at(connection, end)
        connection.execute(
            sa.update(export_checkpoints)
            .where(export_checkpoints.c.destination == destination)
            .values(
                position=end, position_hash=position_hash, pending_until=None,
                updated_at=datetime.now(UTC),
            )
        )  # fmt: skip
    return _Checkpoint(end, position_hash, None)
