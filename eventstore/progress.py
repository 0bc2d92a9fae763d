"""Progress for long ingests, replays, rebuilds and reactor runs: a Rich bar with rate and time
left on a terminal, nothing when not a TTY, and a closing line with counts and rate either way.

Rich is imported only when a bar is drawn: the projection runner imports this module, and the
Lambda handlers (which never draw) must not load Rich on their way.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID


class Progress:
    """Counts work done; on a terminal, redraws a Rich bar at most ten times a second."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._started = time.monotonic()
        self._drawn_at = 0.0
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        if self._enabled:
            self._bar, self._task = _start_bar(label, total, self._stream)

    @property
    def enabled(self) -> bool:
        """Whether the bar is drawn (by default: the stream is a terminal)."""
        return self._enabled

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self._bar is None or self._task is None:
            return
        # Rich samples every advance for its speed and time-left estimate; drawing is throttled.
        self._bar.advance(self._task, count)
        now = time.monotonic()
        if now - self._drawn_at >= 0.1:
            self._drawn_at = now
            self._bar.update(self._task, rate=f"{self.rate:,.0f}/s")
            self._draw(self._bar)

    def _draw(self, bar: RichProgress) -> None:
        # Drawn in place on one line, not through Rich's Live display: Live hides the cursor
        # and redirects stdout until stopped, which an exception between here and close()
        # would leave behind on the user's terminal.
        with bar.console.capture() as captured:
            bar.console.print(bar.make_tasks_table(bar.tasks))
        self._stream.write("\r\x1b[K" + captured.get().rstrip("\n"))
        self._stream.flush()

    def message(self, line: str) -> None:
        """Write a line of its own without leaving it glued to the bar (drawn again next)."""
        if self._bar is not None:
            self._stream.write("\r\x1b[K")
            self._drawn_at = 0.0
        self._stream.write(line + "\n")
        self._stream.flush()

    def close(self, summary: str = "") -> str:
        """Remove the bar and write the closing line (always); return that line."""
        if self._bar is not None:
            self._stream.write("\r\x1b[K")
            self._bar = None
        line = f"{self.label}: {self.done} in {self.elapsed:.1f}s ({self.rate:,.0f}/s)"
        if summary:
            line += f"; {summary}"
        self._stream.write(line + "\n")
        self._stream.flush()
        return line


def _start_bar(label: str, total: int | None, stream: TextIO) -> tuple[RichProgress, TaskID]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    # enabled means draw: a stream passed in as a terminal is treated as one.
    console = Console(file=stream, force_terminal=True, highlight=False)
    bar = Progress(
        SpinnerColumn() if total is None else TaskProgressColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn() if total is not None else TextColumn("{task.completed:,}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        auto_refresh=False,  # never started: no drawing thread, advance() draws
    )
    task = bar.add_task(label, total=total, rate="")
    return bar, task
