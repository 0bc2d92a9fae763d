"""Objects read as text a line at a time and outputs spooled, in bounded memory: the line
splitting, decoding and CSV dialect sniffing the built-in reactors share."""

import codecs
import csv
import itertools
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO, Literal, cast

from eventstore.reactors.base import ReactorError

if TYPE_CHECKING:
    from _csv import Reader

READ_BYTES = 64 * 1024  # read from S3 this much at a time
# The longest line read: a line is held whole while it is split and decoded, so this bounds
# memory on a file with no line breaks. The csv module refuses fields over 128 KiB anyway.
MAX_LINE_BYTES = 16 * 1024 * 1024
SNIFF_CHARS = 64 * 1024  # the start of a CSV the dialect is guessed from
# What an output holds in memory before the spool moves it to a temporary file (on Lambda,
# /tmp: 512 MB unless the function's ephemeral storage is raised).
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
SNIFFED_DELIMITERS = ",;\t|"


def spool() -> BinaryIO:
    """A binary file that stays in memory up to SPOOL_MEMORY_BYTES, then moves to disk."""
    return cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES, mode="w+b"))


def byte_lines(body: BinaryIO) -> Iterator[bytes]:
    """The lines of `body`, each with its line break (`\\n`, `\\r\\n`), read READ_BYTES at a
    time. A line longer than MAX_LINE_BYTES fails with its line number."""
    carry: list[bytes] = []  # the start of a line that continues in the next chunk
    carried = 0
    number = 0
    while chunk := body.read(READ_BYTES):
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            number += 1
            if carry:
                carry.append(chunk[start : end + 1])
                yield b"".join(carry)
                carry.clear()
                carried = 0
            else:
                yield chunk[start : end + 1]
            start = end + 1
        if start < len(chunk):
            carry.append(chunk[start:])
            carried += len(chunk) - start
            if carried > MAX_LINE_BYTES:
                raise ReactorError(f"line {number + 1}: longer than {MAX_LINE_BYTES} bytes")
    if carry:
        yield b"".join(carry)


def text_lines(body: BinaryIO, *, errors: Literal["strict", "replace"]) -> Iterator[str]:
    """The lines of `body` decoded from UTF-8 (a byte order mark at the start is dropped).
    With `errors="strict"` an undecodable byte fails with its line number; with "replace"
    it becomes U+FFFD. Splitting before decoding is safe: in UTF-8 a newline byte is never
    part of another character."""
    for number, read in enumerate(byte_lines(body), start=1):
        line = (
            read[len(codecs.BOM_UTF8) :]
            if number == 1 and read.startswith(codecs.BOM_UTF8)
            else read
        )
        try:
            yield line.decode("utf-8", errors)
        except UnicodeDecodeError as error:
            raise ReactorError(
                f"line {number}: not UTF-8 (byte 0x{line[error.start]:02x} at byte "
                f"{error.start + 1} of the line)"
            ) from None


def csv_rows(lines: Iterator[str], *, strict: bool) -> "tuple[Reader, type[csv.Dialect]]":
    """A csv reader over `lines` in the dialect sniffed from their start (comma, semicolon,
    tab or pipe; the quote character), or Excel's when sniffing fails, and that dialect.

    Doubled quotes inside quoted fields are always read as one quote (RFC 4180): the sniffer
    says "no doubled quotes" whenever its sample happens to hold none, and a later `""`
    would then fail the file."""
    head: list[str] = []
    size = 0
    for line in lines:
        head.append(line)
        size += len(line)
        if size >= SNIFF_CHARS:
            break
    dialect: type[csv.Dialect]
    try:
        dialect = csv.Sniffer().sniff("".join(head), delimiters=SNIFFED_DELIMITERS)
    except csv.Error:  # one column, or no pattern: read it as Excel writes CSV
        dialect = csv.excel
    reader = csv.reader(itertools.chain(head, lines), dialect, doublequote=True, strict=strict)
    return reader, dialect
