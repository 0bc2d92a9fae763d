"""Progress for long replays and rebuilds: a bar on a terminal, nothing when not a TTY, and a
closing line with counts and rate either way."""

import sys
import time
from typing import TextIO


class Progress:
    """Counts work done; draws at most ten times a second."""

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
        now = time.monotonic()
        if self._enabled and now - self._drawn_at >= 0.1:
            self._drawn_at = now
            self._draw()

    def _draw(self) -> None:
        if self.total:
            share = min(1.0, self.done / self.total)
            filled = int(share * 30)
            bar = "#" * filled + "." * (30 - filled)
            text = f"{self.label} [{bar}] {self.done}/{self.total} {self.rate:,.0f}/s"
        else:
            text = f"{self.label} {self.done} {self.rate:,.0f}/s"
        self._stream.write("\r" + text)
        self._stream.flush()

    def message(self, line: str) -> None:
        """Write a line of its own without leaving it glued to the bar (drawn again next)."""
        if self._enabled:
            self._stream.write("\r\x1b[K")
            self._drawn_at = 0.0
        self._stream.write(line + "\n")
        self._stream.flush()

    def close(self, summary: str = "") -> str:
        """Finish the bar and write the closing line (always); return that line."""
        if self._enabled:
            self._stream.write("\r\x1b[K")
        line = f"{self.label}: {self.done} in {self.elapsed:.1f}s ({self.rate:,.0f}/s)"
        if summary:
            line += f"; {summary}"
        self._stream.write(line + "\n")
        self._stream.flush()
        return line
