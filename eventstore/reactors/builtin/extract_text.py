"""Extract text: a text, CSV or JSON file uploaded under `uploads/` has its text written to
`extracted/<key>.txt` in the same bucket, and the start of that text recorded with the
output in the log, which the `search_index` projection folds into a full-text index."""

import codecs
import csv
import json
import re
from collections.abc import Callable
from typing import Any, BinaryIO, ClassVar

from eventstore.core.events import NewEvent
from eventstore.reactors.base import EventFilter, Reactor, ReactorError, ReactorIO
from eventstore.reactors.builtin.streams import READ_BYTES, csv_rows, spool, text_lines

INPUT_PREFIX = "uploads/"
OUTPUT_PREFIX = "extracted/"
CONTENT_TYPE = "text/plain; charset=utf-8"
# The log keeps at most this much of an object's text (with its produced outcome, as
# `details.text`, `details.truncated` saying whether there was more): the search index is
# folded from the log alone, so it can be rebuilt without reading S3, and a longer text is
# found by its start only. The whole text is in the extracted object.
MAX_INDEXED_CHARS = 32_768
# JSON is parsed whole (its strings may come in any order of nesting): a larger document is
# refused rather than risking the function's memory (a parsed document takes several times
# its size).
MAX_JSON_BYTES = 16 * 1024 * 1024

_SURROGATES = re.compile("[\ud800-\udfff]")  # JSON may escape them; UTF-8 cannot hold them


def output_key(key: str) -> str:
    """`uploads/a.csv` → `extracted/a.csv.txt` (the whole name kept: a.csv and a.json differ)."""
    return OUTPUT_PREFIX + key.removeprefix(INPUT_PREFIX) + ".txt"


class TextSink:
    """Where extracted text goes: encoded into the output, its start kept for the index."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.chars = 0
        self._head: list[str] = []
        self._held = 0

    def write(self, text: str) -> None:
        self.out.write(text.encode("utf-8"))
        self.chars += len(text)
        if self._held <= MAX_INDEXED_CHARS:  # one character more tells it was truncated
            self._head.append(text[: MAX_INDEXED_CHARS + 1 - self._held])
            self._held += len(self._head[-1])

    @property
    def indexed(self) -> str:
        return "".join(self._head)[:MAX_INDEXED_CHARS]

    @property
    def truncated(self) -> bool:
        return self.chars > MAX_INDEXED_CHARS


def extract_txt(body: BinaryIO, sink: TextSink) -> None:
    """The text as decoded from UTF-8, undecodable bytes replaced (U+FFFD), a byte order mark
    dropped; streamed."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    while chunk := body.read(READ_BYTES):
        sink.write(decoder.decode(chunk))
    sink.write(decoder.decode(b"", final=True))


def extract_csv(body: BinaryIO, sink: TextSink) -> None:
    """Each row's non-empty cells separated by spaces (line breaks inside a cell too), rows by
    newlines; decoded as for text; streamed."""
    reader, _ = csv_rows(text_lines(body, errors="replace"), strict=False)
    try:
        for row in reader:
            cells = [" ".join(cell.split()) for cell in row]
            line = " ".join(cell for cell in cells if cell)
            if line:
                sink.write(line + "\n")
    except csv.Error as error:
        raise ReactorError(f"line {reader.line_num}: {error}") from None


def extract_json(body: BinaryIO, sink: TextSink) -> None:
    """Every string of the document, object keys included, depth-first in document order,
    one per line."""
    data = body.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise ReactorError(f"JSON document over {MAX_JSON_BYTES} bytes: not extracted")
    try:
        document = json.loads(data)
    except ValueError as error:  # JSONDecodeError, or bytes in no Unicode encoding
        raise ReactorError(f"not valid JSON: {error}") from None
    except RecursionError:
        raise ReactorError("not extracted: JSON nested too deeply to parse") from None
    stack: list[Any] = [document]
    while stack:  # not recursive: nesting depth is the document's choice
        item = stack.pop()
        if isinstance(item, str):
            sink.write(_SURROGATES.sub("\ufffd", item) + "\n")
        elif isinstance(item, dict):
            for key, value in reversed(item.items()):
                stack += (value, key)
        elif isinstance(item, list):
            stack.extend(reversed(item))


EXTRACTORS: dict[str, Callable[[BinaryIO, TextSink], None]] = {
    ".txt": extract_txt,
    ".csv": extract_csv,
    ".json": extract_json,
}


class ExtractTextReactor(Reactor):
    """Text, CSV and JSON under `uploads/` → `extracted/<key>.txt` (UTF-8 text), with the
    first MAX_INDEXED_CHARS characters recorded for the search index. A JSON document that
    does not parse, or is larger than MAX_JSON_BYTES, fails the event."""

    name = "extract-text"
    version = 1
    description = "text of .txt/.csv/.json under uploads/ -> extracted/, indexed for search"
    wants: ClassVar[EventFilter] = EventFilter(
        ("ObjectCreated:*",), prefix=INPUT_PREFIX, suffixes=tuple(EXTRACTORS)
    )

    def react(self, event: NewEvent, io: ReactorIO) -> None:
        suffix = next((s for s in EXTRACTORS if event.key.endswith(s)), None)
        if suffix is None:  # `wants` lets no other through; a subclass's filter might
            raise ReactorError(f"no text extractor for {event.key!r}: {', '.join(EXTRACTORS)}")
        if suffix == ".json" and event.size is not None and event.size > MAX_JSON_BYTES:
            raise ReactorError(
                f"JSON document of {event.size} bytes, over {MAX_JSON_BYTES}: not extracted"
            )
        with spool() as text:
            sink = TextSink(text)
            with io.open_input() as body:
                EXTRACTORS[suffix](body, sink)
            text.seek(0)
            io.write_object(
                event.bucket, output_key(event.key), text, content_type=CONTENT_TYPE,
                details={"text": sink.indexed, "truncated": sink.truncated},
            )  # fmt: skip
        io.details["chars"] = sink.chars
