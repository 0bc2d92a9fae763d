"""Query output is streamed: `events`, `objects` (now and --as-of) and `projections show` hold
a page of rows at a time, not the result, whatever its size and format."""

import io
import json
import tracemalloc

import pytest

from eventstore import cli, output
from eventstore.store import base as store_base
from tests.notification_factory import notification, put_records

SMALL, LARGE = 500, 2500
PAGE = 50
# A table's rows churn Rich's full width cache (a bounded LRU); its dict is rebuilt now and then,
# a constant a few hundred KiB high whatever the result's size (see tests/unit/test_output.py
# for a table's memory flat from 3000 to 12 000 rows).
RICH_CACHE_CHURN = 512 * 1024


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    """A log of SMALL events and one of LARGE events, each on its own key."""
    folder = tmp_path_factory.mktemp("query_stream")
    urls: dict[int, str] = {}
    for count in (SMALL, LARGE):
        records = put_records("bucket", [f"k/{n:05d}.txt" for n in range(count)])
        lines = folder / f"{count}.jsonl"
        lines.write_text("".join(json.dumps(notification([r])) + "\n" for r in records))
        urls[count] = f"sqlite:///{folder / f'{count}.db'}"
        assert cli.main(["--db", urls[count], "ingest", str(lines)]) == 0
    return urls


def peak_memory(url: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """(peak bytes allocated while the command ran, lines it printed)."""
    lines = 0

    class Counting(io.TextIOBase):
        def write(self, text: str) -> int:  # counts lines without keeping them
            nonlocal lines
            lines += text.count("\n")
            return len(text)

    monkeypatch.setattr("sys.stdout", Counting())
    tracemalloc.start()
    try:
        assert cli.main(["--db", url, *args]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, lines


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "table"])
@pytest.mark.parametrize(
    "command",
    [
        ["events"],
        ["objects"],
        ["objects", "--as-of", "2030-01-01T00:00:00Z"],
        ["projections", "show", "object_catalog", "--limit", "1000000"],
    ],
    ids=["events", "objects", "objects-as-of", "projections-show"],
)
def test_query_memory_does_not_grow_with_the_result(
    databases: dict[int, str], monkeypatch: pytest.MonkeyPatch, command: list[str], fmt: str
) -> None:
    # Given pages of 50 rows, and logs of 500 and 2500 events
    monkeypatch.setattr(store_base, "PAGE_ROWS", PAGE)
    monkeypatch.setattr(output, "TABLE_PAGE", PAGE)
    args = [*command, "--format", fmt]
    # Caches warm (statements, imports, Rich's cache of text widths, which a table fills to
    # its bound of 4096 strings in the first few thousand rows)
    peak_memory(databases[LARGE], args, monkeypatch)
    # When the same query prints five times as many rows
    small, small_lines = peak_memory(databases[SMALL], args, monkeypatch)
    large, large_lines = peak_memory(databases[LARGE], args, monkeypatch)
    # Then every row is printed, and the memory it took stays about the same (held in a
    # list, the large result took four to five times as much)
    assert large_lines - small_lines >= LARGE - SMALL
    assert large < small * 1.5 + (RICH_CACHE_CHURN if fmt == "table" else 0), (small, large)
