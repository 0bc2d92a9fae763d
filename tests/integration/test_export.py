"""`eventstore export`: Parquet by event day, read back by DuckDB (not our code), equal to
the log; incremental runs; a crash between a file and the checkpoint; S3 through moto."""

import json
from collections.abc import Iterator, Sequence
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import duckdb
import pytest
import sqlalchemy as sa
from moto import mock_aws

from eventstore.cli import main
from eventstore.core.events import NewEvent, StoredEvent
from eventstore.export import LocalDirectory, S3Prefix, export_log
from eventstore.export.exporter import ExportError, export_position
from eventstore.export.parquet import SCHEMA
from eventstore.store.schema import events
from eventstore.store.sql import SqlEventStore
from tests.helpers import make_event
from tests.integration.replay_support import REGION, fake_aws_credentials

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DAY = 86_400
# T0 is 2026-03-01T12:00Z: -1 s before the next midnight is still March 1st.
MIDNIGHT = 12 * 3600


def first_days() -> list[NewEvent]:
    """Five events over three days, with keys that break naive paths and CSV."""
    return [
        make_event("ObjectCreated:Put", key="logs/a=b/ünïcødé 📄.txt", sequencer="0A", size=7),
        make_event("ObjectCreated:Put", key="logs/x=1&y=2/p=q.csv", seconds=MIDNIGHT - 1),
        make_event("ObjectRemoved:Delete", key="logs/a=b/ünïcødé 📄.txt", seconds=MIDNIGHT,
                   sequencer="0B"),
        make_event("ObjectCreated:Copy", key="data/2026/03/big.bin", seconds=DAY + 5,
                   size=5 * 2**40),
        make_event("ObjectTagging:Put", key="data/2026/03/big.bin", seconds=2 * DAY),
    ]  # fmt: skip


def later_days() -> list[NewEvent]:
    return [
        make_event("ObjectCreated:Put", key="logs/late=1.txt", seconds=2 * DAY + 60),
        make_event("ObjectRemoved:DeleteMarkerCreated", key="logs/x=1&y=2/p=q.csv",
                   seconds=3 * DAY, version_id="v2"),
        make_event("ObjectCreated:Post", key="日本語/キー=値.txt", seconds=3 * DAY + 1),
    ]  # fmt: skip


def log_rows(log: SqlEventStore) -> list[tuple[Any, ...]]:
    """Every event as the export should hold it, from the log itself."""
    return [_expected(stored) for stored in log.read()]


def _expected(stored: StoredEvent) -> tuple[Any, ...]:
    e = stored.event
    return (
        stored.position, e.event_id, e.event_name, e.event_time, e.bucket, e.key, e.version_id,
        e.sequencer, e.size, e.etag, e.principal_id, e.source_ip, e.request_id, e.region,
        str(e.source), e.causation_id, e.correlation_id, stored.recorded_at, stored.hash,
        stored.record_json, e.event_time.astimezone(UTC).date().isoformat(),
    )  # fmt: skip


def read_back(root: Path) -> list[tuple[Any, ...]]:
    """The export as DuckDB reads it, the `dt` partition from the paths (Hive layout)."""
    columns = ", ".join(f'"{name}"' for name in SCHEMA.names)
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    rows = connection.execute(
        f"SELECT {columns}, CAST(dt AS VARCHAR) FROM read_parquet(?, hive_partitioning = true,"
        " hive_types = {'dt': VARCHAR}) ORDER BY position",
        [str(root / "**" / "*.parquet")],
    ).fetchall()
    return [tuple(v.astimezone(UTC) if hasattr(v, "tzinfo") else v for v in row) for row in rows]


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """The export directory (beside, not around, a SQLite database file)."""
    return tmp_path / "lake"


def test_the_export_read_back_by_duckdb_equals_the_log_one_partition_per_day(
    backend_log: SqlEventStore, lake: Path
) -> None:
    backend_log.append(first_days())

    report = export_log(backend_log, LocalDirectory(lake))

    assert (report.after, report.position, report.rows, report.files) == (0, 5, 5, 3)
    assert read_back(lake) == log_rows(backend_log)
    assert files_under(lake) == [
        "dt=2026-03-01/events-00000000000000000001-00000000000000000005.parquet",
        "dt=2026-03-02/events-00000000000000000001-00000000000000000005.parquet",
        "dt=2026-03-03/events-00000000000000000001-00000000000000000005.parquet",
    ]
    # Proper Parquet types: Athena maps these to bigint and timestamp.
    schema = duckdb.sql(
        f"DESCRIBE SELECT * FROM read_parquet('{lake}/*/*.parquet', hive_partitioning=false)"
    ).fetchall()
    types = {row[0]: row[1] for row in schema}
    assert types["size"] == "BIGINT" and types["position"] == "BIGINT"
    assert types["event_time"] == "TIMESTAMP WITH TIME ZONE"
    keys = [row[5] for row in read_back(lake)]
    assert "logs/a=b/ünïcødé 📄.txt" in keys and "logs/x=1&y=2/p=q.csv" in keys


def test_each_run_writes_only_what_is_new(backend_log: SqlEventStore, lake: Path) -> None:
    target = LocalDirectory(lake)
    backend_log.append(first_days())
    export_log(backend_log, target)
    before = {p: (lake / p).read_bytes() for p in files_under(lake)}

    backend_log.append(later_days())
    second = export_log(backend_log, target)
    third = export_log(backend_log, target)

    assert (second.after, second.position, second.rows, second.files) == (5, 8, 3, 2)
    assert (third.rows, third.files, third.position) == (0, 0, 8)
    assert {p: (lake / p).read_bytes() for p in before} == before  # untouched
    assert set(files_under(lake)) - set(before) == {
        "dt=2026-03-03/events-00000000000000000006-00000000000000000008.parquet",
        "dt=2026-03-04/events-00000000000000000006-00000000000000000008.parquet",
    }
    assert read_back(lake) == log_rows(backend_log)


class CrashAfterPuts(LocalDirectory):
    """The real directory target, crashing the run after `puts` files are durable: between a
    file's write and the checkpoint that would cover it."""

    def __init__(self, root: Path, puts: int) -> None:
        super().__init__(root)
        self.left = puts

    def put(self, relative: str, local: Path) -> None:
        super().put(relative, local)
        self.left -= 1
        if self.left == 0:
            raise RuntimeError("injected crash after a durable file")


@pytest.mark.parametrize("puts", [1, 2, 4])
def test_a_rerun_after_a_crash_between_file_and_checkpoint_writes_nothing_twice(
    backend_log: SqlEventStore, lake: Path, puts: int
) -> None:
    backend_log.append(first_days())
    with pytest.raises(RuntimeError, match="injected"):
        export_log(backend_log, CrashAfterPuts(lake, puts), range_events=3)
    crashed_at = export_position(backend_log, LocalDirectory(lake).name)
    # More events arrive before the re-run: its ranges must not overlap the crashed one's.
    backend_log.append(later_days())

    report = export_log(backend_log, LocalDirectory(lake), range_events=3)

    assert report.after == crashed_at and report.position == 8
    exported = read_back(lake)
    positions = [row[0] for row in exported]
    assert positions == sorted(set(positions))  # no event twice
    assert exported == log_rows(backend_log)
    assert not [p for p in files_under(lake) if Path(p).name.startswith(".")]


def test_a_log_cut_back_under_the_export_is_refused(backend_log: SqlEventStore, lake: Path) -> None:
    backend_log.append(first_days())
    export_log(backend_log, LocalDirectory(lake))
    with backend_log.engine.begin() as connection:
        connection.execute(sa.delete(events).where(events.c.position >= 4))
    backend_log.append(later_days())

    with pytest.raises(ExportError, match="position 5"):
        export_log(backend_log, LocalDirectory(lake))


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator["S3Client"]:
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket="lake")
        yield client


def download(s3: "S3Client", prefix: str, into: Path) -> list[str]:
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="lake", Prefix=prefix)
        for item in page.get("Contents", [])
    ]
    for key in keys:
        path = into / key[len(prefix) :]
        path.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file("lake", key, str(path))
    return sorted(keys)


def test_export_to_s3_through_moto_incrementally(
    backend_log: SqlEventStore, s3: "S3Client", tmp_path: Path
) -> None:
    target = S3Prefix("lake", "exports/events", s3)
    backend_log.append(first_days())
    export_log(backend_log, target, range_events=2)
    backend_log.append(later_days())
    with pytest.raises(RuntimeError):
        export_log(backend_log, _CrashingS3(target), range_events=2)
    export_log(backend_log, target, range_events=2)

    keys = download(s3, "exports/events/", tmp_path)

    assert read_back(tmp_path) == log_rows(backend_log)
    assert all(k.split("/")[2].startswith("dt=2026-03-0") for k in keys)
    assert export_position(backend_log, "s3://lake/exports/events/") == 8


class _CrashingS3:
    """The real S3 target, crashing right after its first object is stored."""

    def __init__(self, inner: S3Prefix) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    def put(self, relative: str, local: Path) -> None:
        self.inner.put(relative, local)
        raise RuntimeError("injected crash after a durable object")


def run_cli(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(argv) == 0
    summary: dict[str, Any] = json.loads(capsys.readouterr().out)
    return summary


def test_the_command_prints_what_each_run_wrote(
    backend_url: str, backend_log: SqlEventStore, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    backend_log.append(first_days())
    lake = tmp_path / "lake"

    first = run_cli(["--db", backend_url, "export", str(lake)], capsys)
    again = run_cli(["--db", backend_url, "export", str(lake)], capsys)

    assert first == {"destination": f"{lake}/", "from": 0, "to": 5, "files": 3, "rows": 5}
    assert again == {"destination": f"{lake}/", "from": 5, "to": 5, "files": 0, "rows": 0}
    assert read_back(lake) == log_rows(backend_log)


def test_a_run_racing_another_to_the_same_destination_stops_before_writing(
    backend_log: SqlEventStore, lake: Path
) -> None:
    backend_log.append(first_days())
    export_log(backend_log, LocalDirectory(lake), range_events=2)  # checkpoint at 5
    backend_log.append(later_days())

    class RacedDirectory(LocalDirectory):
        """A second run starts (and reads the checkpoint) while the first writes its files."""

        raced = False

        def put(self, relative: str, local: Path) -> None:
            if not self.raced:
                RacedDirectory.raced = True
                with pytest.raises(ExportError, match="another export"):
                    _start_from(backend_log, LocalDirectory(lake), position=5)
            super().put(relative, local)

    export_log(backend_log, RacedDirectory(lake), range_events=2)

    assert read_back(lake) == log_rows(backend_log)


def _start_from(log: SqlEventStore, target: LocalDirectory, *, position: int) -> None:
    """What a run does after it read the checkpoint at `position` with nothing pending."""
    from eventstore.export.exporter import _announce

    _announce(log, target.name, position, position + 3)
