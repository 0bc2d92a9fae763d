"""CSV → JSON lines: a CSV uploaded under `uploads/` converted to `converted/….jsonl` in the
same bucket, and a message describing it sent to the output queue for downstream consumers."""

import csv
import json
import os
from collections import Counter
from typing import TYPE_CHECKING, BinaryIO, ClassVar

from eventstore.core.events import NewEvent
from eventstore.reactors.base import EventFilter, Reactor, ReactorError, ReactorIO
from eventstore.reactors.builtin.streams import csv_rows, spool, text_lines

if TYPE_CHECKING:
    from _csv import Reader

OUTPUT_QUEUE_VARIABLE = "EVENTSTORE_CSV_OUTPUT_QUEUE_URL"
INPUT_PREFIX = "uploads/"
OUTPUT_PREFIX = "converted/"
CONTENT_TYPE = "application/x-ndjson"


def output_key(key: str) -> str:
    """`uploads/a/b.csv` → `converted/a/b.jsonl`: derived from the input alone, so a
    redelivered event writes the same object again, never a second one."""
    return OUTPUT_PREFIX + key.removeprefix(INPUT_PREFIX).removesuffix(".csv") + ".jsonl"


class CsvToJsonReactor(Reactor):
    """Each data row becomes one JSON object keyed by the header's field names, values as
    the CSV holds them (text: CSV has no types). The dialect (comma, semicolon, tab or pipe;
    the quote character) is sniffed from the start of the file, Excel's when that fails.

    The input must be UTF-8 (a byte order mark is fine). A header-only file converts to zero
    rows; blank lines are skipped. An empty file, a header naming a field twice, a row with
    another number of fields than the header, an undecodable byte or a malformed quoted
    field fails the event with its line number, and nothing is written: the input is
    converted whole into a spool (memory, then a temporary file) before the output is."""

    name = "csv-to-json"
    version = 1
    description = "CSV under uploads/ -> JSON lines under converted/, and a message about it"
    wants: ClassVar[EventFilter] = EventFilter(
        ("ObjectCreated:*",), prefix=INPUT_PREFIX, suffixes=(".csv",)
    )

    def react(self, event: NewEvent, io: ReactorIO) -> None:
        with spool() as converted:
            with io.open_input() as body:
                reader, dialect = csv_rows(text_lines(body, errors="strict"), strict=True)
                fields, rows = _convert(reader, converted)
            converted.seek(0)
            output = io.write_object(
                event.bucket, output_key(event.key), converted, content_type=CONTENT_TYPE
            )
        io.details.update(rows=rows, columns=len(fields), delimiter=dialect.delimiter)
        queue_url = os.environ.get(OUTPUT_QUEUE_VARIABLE)
        if not queue_url:
            io.details["message"] = "no output queue configured"
            return
        message = {
            "source": {"bucket": event.bucket, "key": event.key, "versionId": event.version_id},
            "output": {
                "bucket": output.bucket, "key": output.key, "versionId": output.version_id,
                "eTag": output.etag, "size": output.size,
            },
            "rows": rows,
            "fields": fields,
        }  # fmt: skip
        io.send_message(queue_url, json.dumps(message, ensure_ascii=False))


def _convert(reader: "Reader", out: BinaryIO) -> tuple[list[str], int]:
    """Write each data row of `reader` to `out` as a JSON line; the header and the row count."""
    try:
        header = next((row for row in reader if row), None)
        if header is None:
            raise ReactorError("empty file: no header row")
        twice = sorted(name for name, count in Counter(header).items() if count > 1)
        if twice:
            raise ReactorError(
                f"line {reader.line_num}: the header names {', '.join(map(repr, twice))} more "
                "than once (their values would overwrite each other)"
            )
        rows = 0
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) != len(header):
                raise ReactorError(
                    f"line {reader.line_num}: {len(row)} field{'s' if len(row) != 1 else ''}, "
                    f"the header has {len(header)}"
                )
            line = json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False)
            out.write(line.encode("utf-8") + b"\n")
            rows += 1
    except csv.Error as error:
        raise ReactorError(f"line {reader.line_num}: {error}") from None
    return header, rows
