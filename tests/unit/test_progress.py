"""Progress: a Rich bar with rate and time left on a terminal, nothing but the closing line when
the stream is not one, and Rich kept off the Lambda handlers' import path."""

import io
import subprocess
import sys

from eventstore.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_is_drawn_on_a_terminal_with_count_rate_and_time_left() -> None:
    # Given a stream that is a terminal
    stream = Terminal()
    progress = Progress("rebuild", 200, stream=stream)
    # When work is done
    progress.advance(50)
    progress.message("a line of its own [bold]")
    progress.advance(50)
    line = progress.close("2 swapped in")
    # Then a bar was drawn with the counts, a rate and the time left, the message shown as
    # typed, and the closing line is the last thing written
    text = stream.getvalue()
    assert progress.enabled
    assert "rebuild" in text
    assert "50/200" in text
    assert "/s" in text
    assert "0:00:" in text  # elapsed and time left
    assert "━" in text  # the bar itself
    assert "a line of its own [bold]" in text
    assert text.endswith(line + "\n")
    assert line.startswith("rebuild: 100 in ") and line.endswith("; 2 swapped in")


def test_without_a_total_the_bar_counts() -> None:
    stream = Terminal()
    progress = Progress("ingest notifications.jsonl", stream=stream)
    progress.advance(1234)
    progress.close()
    assert "1,234" in stream.getvalue()


def test_nothing_but_the_closing_line_when_piped() -> None:
    # Given a stream that is not a terminal
    stream = io.StringIO()
    progress = Progress("replay from archive", 10, stream=stream)
    # When work is done and a message written
    progress.advance(10)
    progress.message("eventstore: failed message m1")
    line = progress.close()
    # Then no bar and no escape sequence: the message and the closing line only
    assert not progress.enabled
    assert stream.getvalue() == "eventstore: failed message m1\n" + line + "\n"
    assert "\x1b" not in stream.getvalue()


def test_the_lambda_handlers_do_not_import_rich() -> None:
    # Given a fresh interpreter that imports the handlers and the runner's progress
    code = (
        "import sys, consumers.ingest, consumers.reactor, consumers.archive, "
        "eventstore.projections.runner, eventstore.progress; "
        "print(sorted(m for m in sys.modules if m == 'rich' or m.startswith('rich.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    # Then Rich was not loaded
    assert result.stdout.strip() == "[]"
