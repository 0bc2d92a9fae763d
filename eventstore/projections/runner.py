"""Running projections: catch-up after appends, rebuilds into shadow tables, atomic swaps.

Catch-up folds one chunk of the log at a time into each live projection that is behind
(the chunk is read once for all of them) and flushes it in the transaction that moves the
checkpoint; the checkpoint row is locked for the step (FOR UPDATE SKIP LOCKED on PostgreSQL,
SQLite serialises every writer), so two runners never apply the same chunk.

A rebuild folds from position 0 into shadow tables (`<table>__rebuild`). It reads the log
in large chunks outside any write transaction and folds them in memory; it writes only when
the folds hold more than `flush_bound` entries, or at the head, each flush moving the
rebuild's own position in the same transaction (so it is resumable and its memory flat).
At the head it takes the append lock, folds the last events and renames the shadow tables
over the live ones in one transaction: readers see the old projection or the new one,
never half of one. A projection that raises stops at the failing event with the error
recorded; other projections and ingestion carry on, and it resumes once fixed.
"""

import gc
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from eventstore.core.events import StoredEvent
from eventstore.core.hashing import follows
from eventstore.errors import ConfigurationError, StorageError
from eventstore.progress import Progress
from eventstore.projections.base import Fold, Projection, ProjectionContext, describe_error
from eventstore.projections.checkpoints import (
    DRY_RUN_SUFFIX,
    SHADOW_SUFFIX,
    Checkpoint,
    SqlCheckpoints,
    live_tables,
    shadow_tables,
    suffixed_tables,
)
from eventstore.store.base import EventQuery
from eventstore.store.sql import SqlEventStore

logger = logging.getLogger(__name__)

__all__ = ["SHADOW_SUFFIX", "ProjectionRunner", "ProjectionStatus", "RunReport", "TableDiff"]

BUSY = "busy"  # another runner holds the projection's checkpoint just now
_REBUILD_ROUNDS = 100  # resumptions of a rebuild that other runners keep moving on
CAUGHT_UP = "caught-up"
MAX_PATIENCE = 16  # times min_lag: see ProjectionRunner._patience


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    description: str
    code_version: int
    live_version: int | None
    position: int
    head: int
    state: str  # new | live | behind | rebuilding | outdated | failed | cut-off
    rebuild_position: int | None
    last_error: str | None
    error_position: int | None
    live_filter: str | None

    @property
    def lag(self) -> int:
        if self.live_version is None or self.live_version != self.code_version:
            return self.head
        return max(0, self.head - self.position)


@dataclass(slots=True)
class RunReport:
    name: str
    applied: int = 0
    swapped: bool = False
    caught_up: bool = False
    error: str | None = None
    busy: bool = False  # another runner was folding it


@dataclass(frozen=True, slots=True)
class TableDiff:
    table: str
    live_rows: int
    rebuilt_rows: int
    only_live: int
    only_rebuilt: int
    samples_only_live: tuple[dict[str, Any], ...]
    samples_only_rebuilt: tuple[dict[str, Any], ...]


@dataclass(slots=True)
class _Build:
    """A rebuild under way in this runner: its fold, how far it folded and flushed."""

    projection: Projection
    version: int
    event_filter: EventQuery
    fold: Fold
    position: int  # folded up to here (in memory)
    flushed: int  # the rebuild position stored with the shadow tables
    fresh: bool  # the shadow tables hold nothing yet
    # The checkpoint row's updated_at as this runner last saw or wrote it: a rebuild that
    # another runner restarted or moved on meanwhile is not this one any more, even when it
    # happens to stand at the same position.
    stamp: datetime | None = None
    tables: dict[str, sa.Table] = field(default_factory=dict)


class _Recent:
    """The events the caller just appended: a contiguous run of positions, in order."""

    def __init__(self, events: Sequence[StoredEvent], head: int) -> None:
        self.events = events
        self.head = head  # the head of the log as catch_up read it
        if events:
            self.first, self.last = events[0].position, events[-1].position
            if self.last - self.first + 1 != len(events):
                raise ValueError("appended events must be one contiguous run of positions")

    def after(self, position: int, limit: int) -> Sequence[StoredEvent]:
        start = position - self.first + 1
        return self.events[start : start + limit]


class _Lost(Exception):
    """Another runner moved this rebuild on (or swapped it) while this one folded."""


class ProjectionRunner:
    """Catches projections up with the log, and rebuilds them."""

    def __init__(
        self,
        store: SqlEventStore,
        projections: Sequence[Projection] | None = None,
        *,
        chunk: int = 1000,
        rebuild_chunk: int = 5000,
        flush_bound: int = 25_000,
    ) -> None:
        if projections is None:
            from eventstore.projections.registry import load_projections

            projections = load_projections()
        self.store = store
        self.projections = tuple(projections)
        self.chunk = chunk
        self.rebuild_chunk = max(rebuild_chunk, chunk)
        self.flush_bound = flush_bound
        self.checkpoints = SqlCheckpoints()
        # What the last catch_up saw: per projection that could wait, its position and when
        # (time.monotonic()) its checkpoint last moved.
        self._seen: dict[str, tuple[int, float]] = {}
        # How many times min_lag this runner lets pass before it looks again: doubled each
        # time it looked and found every projection folded or being folded by another runner,
        # back to 1 when it folds itself. Under many writers one runner ends up doing the
        # folding in chunks of about min_lag while the others rarely look (each look is a
        # query); max_delay still bounds how long a projection can wait.
        self._patience = 1
        # The events this runner's callers appended last, one contiguous run of positions
        # (at most two chunks): a catch-up folds them from here instead of reading them back.
        self._run: list[StoredEvent] = []
        # The local poller's threads share a container's runner: the run changes under this.
        self._run_lock = threading.Lock()

    def get(self, name: str) -> Projection:
        for projection in self.projections:
            if projection.name == name:
                return projection
        known = ", ".join(p.name for p in self.projections)
        raise ConfigurationError(f"no projection named {name!r} (known: {known})")

    # -- status ---------------------------------------------------------------------------

    def status(self) -> list[ProjectionStatus]:
        with self.store.engine.connect() as connection:
            head, rows, hashes = self.checkpoints.with_log(connection)
        faults = _faults(rows, head, hashes)
        return [
            self._status_of(p, rows.get(p.name), head, faults.get(p.name)) for p in self.projections
        ]

    def faults(self) -> dict[str, str]:
        """Per projection whose checkpoint does not match the log, what is wrong (rows cut
        off the end of the log, or positions reused since): `verify` reports these too."""
        with self.store.engine.connect() as connection:
            head, rows, hashes = self.checkpoints.with_log(connection)
        return _faults(rows, head, hashes)

    @staticmethod
    def _status_of(
        projection: Projection, row: Checkpoint | None, head: int, fault: str | None
    ) -> ProjectionStatus:
        code = projection.effective_version
        last_error = row.last_error if row is not None else None
        if row is None:
            state, live_version, position = "new", None, 0
        else:
            live_version, position = row.version or None, row.position
            if fault is not None:
                state, last_error = "cut-off", fault
            elif row.last_error:
                state = "failed"
            elif row.rebuilding:
                state = "rebuilding"
            elif row.version != code:
                state = "outdated"
            else:
                state = "live" if position >= head else "behind"
        return ProjectionStatus(
            name=projection.name,
            description=projection.description,
            code_version=code,
            live_version=live_version,
            position=position,
            head=head,
            state=state,
            rebuild_position=row.rebuild_position if row is not None else None,
            last_error=last_error,
            error_position=row.error_position if row is not None else None,
            live_filter=row.live_filter if row is not None else None,
        )

    # -- catching up ----------------------------------------------------------------------

    def catch_up(
        self,
        *,
        deadline: float | None = None,
        progress: Progress | None = None,
        min_lag: int = 0,
        max_delay: float | None = None,
        head: int | None = None,
        appended: Sequence[StoredEvent] = (),
    ) -> list[RunReport]:
        """Bring every projection to the head, or as far as the deadline (time.monotonic())
        allows. New and re-versioned projections are (re)built into shadow tables.

        A live projection fewer than `min_lag` events behind whose checkpoint moved less than
        `max_delay` seconds ago is left for a later call: a Lambda invocation then pays for
        catching up once per many small batches, and no projection lags longer than that.
        Given `head` (the position the caller's own append reached), a call that the last
        one's reading shows cannot have anything due returns without asking the database.
        `appended`, the events the caller's last append stored (contiguous, in position
        order), are folded from memory instead of being read back, and so are those of earlier
        calls that they directly follow in the log (a writer alone appends one long run)."""
        self._remember(appended)
        if head is not None and self._nothing_due(head, min_lag * self._patience, max_delay):
            return [RunReport(p.name, caught_up=True) for p in self.projections]
        with self.store.engine.connect() as connection:
            head, rows, hashes = self.checkpoints.with_log(connection)
        faults = _faults(rows, head, hashes)
        now, wall = time.monotonic(), _now()
        waiting: dict[str, tuple[int, float]] = {}
        reports: dict[str, RunReport] = {}
        behind: list[Projection] = []  # live: caught up together, one read per chunk
        builds: list[Projection] = []  # new, re-versioned or rebuilding
        for projection in self.projections:
            row = rows.get(projection.name)
            fault = faults.get(projection.name)
            if fault is not None:  # refuse to move on: events would be skipped
                logger.error("projection %s: %s", projection.name, fault)
                reports[projection.name] = RunReport(projection.name, error=fault)
            elif row is not None and row.is_live_at(projection.effective_version):
                if not row.last_error and (
                    row.position >= head or _can_wait(row, head, min_lag, max_delay, wall)
                ):
                    moved = now - (wall - row.updated_at).total_seconds()
                    waiting[projection.name] = (row.position, moved)
                    reports[projection.name] = RunReport(projection.name, caught_up=True)
                else:
                    behind.append(projection)
            else:
                builds.append(projection)
        if behind:
            # Only after an append, which checked the run against the log's chain; a copy, as
            # another thread may extend or cut it.
            with self._run_lock:
                recent = _Recent(tuple(self._run) if appended else (), head)
            reports.update(self._fold_live(behind, deadline, progress, recent))
        for projection in builds:
            if deadline is not None and time.monotonic() >= deadline:
                break
            reports[projection.name] = self._build(projection, deadline, progress)
        for name, report in reports.items():
            # One that another runner was folding is that runner's for now: asking again at
            # the next invocation would only find it taken again (many containers at once).
            if name not in waiting and (report.caught_up or report.busy) and not report.error:
                waiting[name] = (head, time.monotonic())
        self._seen = waiting
        if any(report.applied for report in reports.values()):
            self._patience = 1
        elif min_lag and len(waiting) == len(self.projections):  # nothing for this runner
            self._patience = min(self._patience * 2, MAX_PATIENCE)
        return [reports[p.name] for p in self.projections if p.name in reports]

    def _remember(self, appended: Sequence[StoredEvent]) -> None:
        """Keep the run of appended events to fold from memory: `appended`, after the
        remembered run when it follows on from it (the next position, and chained to its
        last hash, so a log restored meanwhile under this process breaks the run); of the
        earlier events at most two chunks in all are kept."""
        if not appended:
            return
        with self._run_lock:
            run = self._run
            if run and follows(run[-1], appended[0]):
                run.extend(appended)
                keep = max(self.chunk, len(appended))
                if len(run) > 2 * keep:  # cut now and then, not at every call: a cut moves all
                    del run[: len(run) - keep]
            else:
                self._run = list(appended)

    def _nothing_due(self, head: int, min_lag: int, max_delay: float | None) -> bool:
        """Whether, by the last catch-up's reading, every projection may still wait at this
        head."""
        if not min_lag or max_delay is None:
            return False
        now = time.monotonic()
        for projection in self.projections:
            seen = self._seen.get(projection.name)
            if seen is None or now - seen[1] >= max_delay or head - seen[0] >= min_lag:
                return False
        return True

    def _fold_live(
        self,
        projections: Sequence[Projection],
        deadline: float | None,
        progress: Progress | None,
        recent: "_Recent | None" = None,
    ) -> dict[str, RunReport]:
        """Fold live projections chunk by chunk, each chunk read once for all of them, until
        each is caught up, fails, is taken by another runner, or the deadline passes."""
        reports = {p.name: RunReport(p.name) for p in projections}
        group = list(projections)
        try:
            with collector_paused():
                while group and (deadline is None or time.monotonic() < deadline):
                    outcome = self._step_live(group, recent)
                    for projection in list(group):
                        applied, done, error = outcome[projection.name]
                        report = reports[projection.name]
                        report.applied += applied
                        if progress is not None and applied:
                            progress.advance(applied)
                        report.error = error
                        if error is not None or done is not None:
                            group.remove(projection)
                        report.caught_up = done == CAUGHT_UP
                        report.busy = done == BUSY
        except DBAPIError as error:
            raise StorageError(f"folding projections: {error.orig}") from error
        return reports

    def _step_live(
        self, projections: Sequence[Projection], recent: "_Recent | None" = None
    ) -> dict[str, tuple[int, str | None, str | None]]:
        """One chunk of the log folded into each live projection and flushed with its
        checkpoint, in one transaction. Per projection: (applied, None / CAUGHT_UP / BUSY,
        error)."""
        results: dict[str, tuple[int, str | None, str | None]] = {}
        with self.store.write() as connection:
            after: dict[str, tuple[int, EventQuery]] = {}
            for projection in projections:
                # A projection another runner holds is left to it (many containers).
                row = self.checkpoints.lock(connection, projection.name, wait=False)
                if row is None or not row.is_live_at(projection.effective_version):
                    results[projection.name] = (0, BUSY, None)
                else:
                    after[projection.name] = (row.position, EventQuery.from_json(row.live_filter))
            if not after:
                return results
            start = min(position for position, _ in after.values())
            events, at_head = self._chunk_after(connection, start, recent)
            for projection in projections:
                if projection.name not in after:
                    continue
                position, event_filter = after[projection.name]
                mine = [e for e in events if e.position > position]
                if not mine:  # ahead of the others: wait for them
                    results[projection.name] = (0, CAUGHT_UP if at_head else None, None)
                    continue
                tables = live_tables(projection)
                applied, error = self._fold_isolated(
                    connection, projection, tables, mine, event_filter, fresh=False
                )
                self.checkpoints.advance(
                    connection,
                    projection.name,
                    rebuilding=False,
                    position=mine[applied - 1].position if applied else None,
                    position_hash=mine[applied - 1].hash if applied else None,
                    error=error,
                )
                done = CAUGHT_UP if at_head and error is None else None
                results[projection.name] = (applied, done, None if error is None else error[1])
        return results

    def _chunk_after(
        self, connection: Connection, start: int, recent: "_Recent | None"
    ) -> tuple[list[StoredEvent], bool]:
        """The next chunk of the log after `start`, and whether it reaches the head: the
        caller's own appended events from memory where they follow on, the rest read."""
        if recent is None or not recent.events or start >= recent.last:
            events = list(self.store.read_in(connection, after=start, limit=self.chunk))
            return events, len(events) < self.chunk
        gap = min(recent.first - start - 1, self.chunk)  # other writers' events first
        events = list(self.store.read_in(connection, after=start, limit=gap)) if gap > 0 else []
        if len(events) < gap:  # the log cannot lack positions below the caller's append
            raise StorageError(f"log positions {start + 1}..{recent.first - 1} are missing")
        room = self.chunk - len(events)
        if room > 0:
            events.extend(recent.after(max(start, recent.first - 1), room))
        return events, events[-1].position >= recent.head

    def _fold_isolated(
        self,
        connection: Connection,
        projection: Projection,
        tables: dict[str, sa.Table],
        events: list[StoredEvent],
        event_filter: EventQuery,
        *,
        fresh: bool,
    ) -> tuple[int, tuple[int, str] | None]:
        """Fold and flush `events` in a savepoint; if that fails, find the failing event by
        folding one at a time, keeping what succeeds before it. Returns (events applied,
        (position, error) or None)."""
        chosen = _matching(events, event_filter)
        if not chosen:
            return len(events), None
        try:
            with connection.begin_nested():
                context = ProjectionContext(connection, tables, fresh=fresh)
                fold = projection.start()
                fold.apply(context, chosen)
                fold.flush(context)
            return len(events), None
        except Exception as error:  # a projection's bug stops that projection, nothing else
            _reraise_if_connection_lost(error)
            failure: Exception = error
        logger.warning("projection %s failed on a chunk: %s", projection.name, failure)
        context = ProjectionContext(connection, tables)
        for index, stored in enumerate(events):
            if not event_filter.is_empty and not event_filter.matches(stored.event):
                continue
            try:
                with connection.begin_nested():
                    fold = projection.start()
                    fold.apply(context, [stored])
                    fold.flush(context)
            except Exception as error:
                _reraise_if_connection_lost(error)
                return index, (stored.position, describe_error(error))
        # The chunk failed as a whole but no single event did: report it at the chunk start.
        return 0, (events[0].position, describe_error(failure))

    # -- rebuilding -----------------------------------------------------------------------

    def _build(
        self, projection: Projection, deadline: float | None, progress: Progress | None
    ) -> RunReport:
        """Start or resume the rebuild of a new or re-versioned projection (or retry a failed
        one), as far as the deadline allows. A projection another runner is setting up right
        now is left to it."""
        try:
            if not self._prepare(projection):
                return RunReport(projection.name)
        except DBAPIError as error:
            raise StorageError(f"projection {projection.name}: {error.orig}") from error
        return self._rebuild_group([projection], deadline, progress)[projection.name]

    def _prepare(self, projection: Projection) -> bool:
        """Make sure the projection has a rebuild of the code's version under way (or is
        live at it). False when another runner created its checkpoint meanwhile."""
        version = projection.effective_version
        with self.store.write() as connection:
            row = self.checkpoints.lock(connection, projection.name)
            if row is None:
                return self.checkpoints.start(connection, projection, None)
            if row.rebuilding:
                if row.rebuild_version != version or not self.checkpoints.shadow_exists(
                    connection, projection
                ):
                    self.checkpoints.restart_rebuild(connection, projection, row.rebuild_filter)
            elif row.version != version:
                self.checkpoints.restart_rebuild(connection, projection, row.live_filter)
        return True

    def rebuild(
        self,
        names: Sequence[str],
        *,
        event_filter: EventQuery | None = None,
        progress: Progress | None = None,
    ) -> list[RunReport]:
        """Rebuild these projections from position 0 (only events passing `event_filter`),
        swapping each in when it reaches the head. Resumes a rebuild already under way."""
        chosen = [self.get(name) for name in names]
        filter_json = event_filter.to_json() if event_filter and not event_filter.is_empty else None
        for projection in chosen:
            with self.store.write() as connection:
                row = self.checkpoints.lock(connection, projection.name)
                resumable = (
                    row is not None
                    and row.rebuild_version == projection.effective_version
                    and row.rebuild_filter == filter_json
                    and self.checkpoints.shadow_exists(connection, projection)
                )
                if row is None:
                    self.checkpoints.start(connection, projection, filter_json)
                elif not resumable:
                    self.checkpoints.restart_rebuild(connection, projection, filter_json)
        reports = self._rebuild_group(chosen, None, progress)
        # Another runner (a consumer catching up) may have moved a rebuild on, or swapped it
        # in, while this one folded: resume from where it stands until each one is done.
        for _ in range(_REBUILD_ROUNDS):
            pending = [p for p in chosen if not self._rebuild_done(p, reports[p.name])]
            if not pending:
                break
            for name, more in self._rebuild_group(pending, None, progress).items():
                report = reports[name]
                report.applied += more.applied
                report.swapped, report.caught_up, report.error = (
                    more.swapped, more.caught_up, more.error,
                )  # fmt: skip
        return [reports[projection.name] for projection in chosen]

    def _rebuild_done(self, projection: Projection, report: RunReport) -> bool:
        """Swapped in (by this runner or another), or failed."""
        if report.error is not None or report.swapped:
            return True
        with self.store.engine.connect() as connection:
            row = self.checkpoints.all(connection).get(projection.name)
        if row is not None and row.is_live_at(projection.effective_version):
            report.caught_up = report.swapped = True  # another runner swapped it in
            return True
        return False

    def _rebuild_group(
        self, projections: Sequence[Projection], deadline: float | None, progress: Progress | None
    ) -> dict[str, RunReport]:
        """Fold the rebuilds of `projections` over one read of the log per chunk, in memory,
        flushing at the bound; at the head, swap each in."""
        reports = {p.name: RunReport(p.name) for p in projections}
        try:
            builds = self._builds_under_way(projections, reports)
            at_head = False
            with collector_paused():
                while builds and not at_head and (deadline is None or time.monotonic() < deadline):
                    at_head = self._fold_rebuild_chunk(builds, reports, progress)
                    for build in list(builds):
                        if at_head or build.fold.held >= self.flush_bound:
                            self._flush_or_isolate(build, builds, reports)
            for build in list(builds):  # the deadline passed: keep what was folded
                if build.position > build.flushed:
                    self._flush_or_isolate(build, builds, reports)
            if at_head:
                for build in builds:
                    self._finish(build.projection, reports[build.projection.name], progress)
        except DBAPIError as error:
            raise StorageError(f"rebuilding projections: {error.orig}") from error
        return reports

    def _builds_under_way(
        self, projections: Sequence[Projection], reports: dict[str, RunReport]
    ) -> list[_Build]:
        with self.store.engine.connect() as connection:
            rows = self.checkpoints.all(connection)
        builds = []
        for projection in projections:
            row = rows.get(projection.name)
            if row is None or not row.rebuilding or row.rebuild_version is None:
                reports[projection.name].caught_up = row is not None  # swapped by another
                continue
            position = row.rebuild_position or 0
            builds.append(
                _Build(
                    projection=projection,
                    version=row.rebuild_version,
                    event_filter=EventQuery.from_json(row.rebuild_filter),
                    fold=projection.start(),
                    position=position,
                    flushed=position,
                    fresh=position == 0,
                    stamp=row.updated_at,
                    tables=shadow_tables(projection),
                )
            )
        return builds

    def _fold_rebuild_chunk(
        self, builds: list[_Build], reports: dict[str, RunReport], progress: Progress | None
    ) -> bool:
        """Read one large chunk (outside any write transaction) and fold it into every build
        in memory; True when it reached the head."""
        start = min(build.position for build in builds)
        failed: list[_Build] = []
        with self.store.engine.connect() as connection:
            events = list(self.store.read_in(connection, after=start, limit=self.rebuild_chunk))
            for build in list(builds):
                mine = [e for e in events if e.position > build.position]
                if not mine:
                    continue
                context = ProjectionContext(connection, build.tables, fresh=build.fresh)
                try:
                    build.fold.apply(context, _matching(mine, build.event_filter))
                except Exception as error:
                    _reraise_if_connection_lost(error)
                    builds.remove(build)
                    failed.append(build)
                    continue
                build.position = mine[-1].position
                reports[build.projection.name].applied += len(mine)
                if progress is not None:
                    progress.advance(len(mine))
        # Only once this read's connection is back: isolating takes a write connection and
        # the checkpoint's row lock. Taken while the read still held its tables (and, on a
        # Lambda-sized pool of one, its only connection), that waited for the pool, or
        # deadlocked with a runner swapping those tables in (it holds the row and wants the
        # tables) — which is also how a fold comes to fail here: another runner renamed the
        # shadow tables it reads.
        for build in failed:
            self._isolate_failure(build, reports)
        return len(events) < self.rebuild_chunk

    def _flush_or_isolate(
        self, build: _Build, builds: list[_Build], reports: dict[str, RunReport]
    ) -> None:
        try:
            self._flush(build)
        except _Lost:
            builds.remove(build)
        except Exception as error:
            _reraise_if_connection_lost(error)
            builds.remove(build)
            self._isolate_failure(build, reports)

    def _flush(self, build: _Build) -> None:
        """Write what the build's fold holds and move the rebuild position with it."""
        name = build.projection.name
        with self.store.write() as connection:
            row = self.checkpoints.lock(connection, name)
            if (
                row is None
                or row.rebuild_version != build.version
                or row.rebuild_position != build.flushed
                or row.updated_at != build.stamp
            ):
                raise _Lost(name)
            build.fold.flush(ProjectionContext(connection, build.tables, fresh=build.fresh))
            build.stamp = self.checkpoints.advance(
                connection, name, rebuilding=True, position=build.position
            )
        build.flushed, build.fresh = build.position, False

    def _isolate_failure(self, build: _Build, reports: dict[str, RunReport]) -> None:
        """A fold raised: forget what it held and fold again from the last flush a chunk at a
        time, which stops at the failing event and records it."""
        report = reports[build.projection.name]
        report.applied = max(0, report.applied - (build.position - build.flushed))
        while True:
            with self.store.write() as connection:
                row = self.checkpoints.lock(connection, build.projection.name)
                if row is None or row.rebuild_version != build.version:
                    return
                after = row.rebuild_position or 0
                events = list(self.store.read_in(connection, after=after, limit=self.chunk))
                if not events:
                    return
                applied, error = self._fold_isolated(
                    connection,
                    build.projection,
                    build.tables,
                    events,
                    build.event_filter,
                    fresh=False,
                )
                self.checkpoints.advance(
                    connection,
                    build.projection.name,
                    rebuilding=True,
                    position=events[applied - 1].position if applied else None,
                    error=error,
                )
            report.applied += applied
            if error is not None:
                report.error = error[1]
                return
            if len(events) < self.chunk:
                return  # no failure after all (it depended on the chunk): the next run swaps

    def _finish(self, projection: Projection, report: RunReport, progress: Progress | None) -> None:
        """Hold appends, fold what arrived since the last flush, and swap the shadow tables
        in, in one transaction."""
        with self.store.write() as connection:
            # The append lock first, then the checkpoint row (the order everywhere).
            self.store.lock_appends(connection)
            row = self.checkpoints.lock(connection, projection.name)
            if row is None or not row.rebuilding:
                report.caught_up = row is not None  # another runner swapped it
                return
            after = row.rebuild_position or 0
            events = list(self.store.read_in(connection, after=after, limit=None))
            tables = shadow_tables(projection)
            event_filter = EventQuery.from_json(row.rebuild_filter)
            applied, error = self._fold_isolated(
                connection, projection, tables, events, event_filter, fresh=False
            )
            report.applied += applied
            if progress is not None and applied:
                progress.advance(applied)
            if error is not None:
                self.checkpoints.advance(
                    connection,
                    projection.name,
                    rebuilding=True,
                    position=events[applied - 1].position if applied else None,
                    error=error,
                )
                report.error = error[1]
                return
            head_hash: str | None
            if events:
                head, head_hash = events[-1].position, events[-1].hash
            else:
                head, head_hash = after, self.store.hashes_at(connection, [after]).get(after)
            self.checkpoints.swap(connection, projection, row, head, head_hash)
        report.caught_up = report.swapped = True

    # -- building aside -------------------------------------------------------------------

    def dry_run(
        self,
        name: str,
        *,
        event_filter: EventQuery | None = None,
        progress: Progress | None = None,
        samples: int = 3,
    ) -> list[TableDiff]:
        """Build the projection aside (`<table>__dryrun`), compare it with the live tables,
        drop it. Touches neither the live tables nor any checkpoint."""
        projection = self.get(name)
        tables = suffixed_tables(projection, DRY_RUN_SUFFIX)
        chosen = event_filter or EventQuery()
        head = self.store.head_position()
        with self.store.write() as connection:
            self.checkpoints.create_tables(connection, tables, projection=projection)
        try:
            fold, after, fresh = projection.start(), 0, True
            while after < head:
                with self.store.engine.connect() as connection:
                    limit = min(self.rebuild_chunk, head - after)
                    events = list(self.store.read_in(connection, after=after, limit=limit))
                    if not events:
                        break
                    fold.apply(
                        ProjectionContext(connection, tables, fresh=fresh),
                        _matching(events, chosen),
                    )
                after = events[-1].position
                if progress is not None:
                    progress.advance(len(events))
                if fold.held >= self.flush_bound or after >= head:
                    with self.store.write() as connection:
                        fold.flush(ProjectionContext(connection, tables, fresh=fresh))
                    fresh = False
            with self.store.engine.connect() as connection:
                return [
                    _diff(connection, live, tables[live.name], samples)
                    for live in projection.tables
                ]
        finally:
            with self.store.write() as connection:
                self.checkpoints.drop_tables(connection, tables, projection=projection)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector held off while a catch-up or a rebuild reads, folds
    and flushes its chunks.

    A fold keeps thousands of small, acyclic objects (events, states, rows) alive at once, and
    every few hundred allocations the collector walked them all again, and again as they aged
    into its older generations: 55 % of the catalog's fold time in a rebuild. Reference
    counting still frees them; cycles made meanwhile (the built-in folds make none) wait for
    the collector's next run once it is back on, when the catch-up or rebuild returns."""
    if not gc.isenabled():  # the caller's choice, kept
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _faults(rows: dict[str, Checkpoint], head: int, hashes: dict[str, str]) -> dict[str, str]:
    """Checkpoints past the head, or whose row in the log is no longer the one folded
    (`hashes`: per checkpoint, the hash the log holds at its position).

    The second is what catches rows cut off the end once new appends reused their positions:
    the consumer appends before it catches up, so by then the checkpoint is no longer past
    the head."""
    faults: dict[str, str] = {}
    for name, row in rows.items():
        position = row.rebuild_position if row.rebuilding else row.position
        if position is not None and position > head:
            found = f"is ahead of the log's head ({head})"
        elif row.position_hash and hashes.get(name) != row.position_hash:
            found = "no longer holds the event it folded (its hash differs)"
            position = row.position
        else:
            continue
        faults[name] = (
            f"checkpoint at position {position} {found}: rows were cut off the end of the "
            f"log (and the positions perhaps reused). Check the log with `eventstore verify "
            f"--anchor ...`, then rebuild: `eventstore projections rebuild {name}`"
        )
    return faults


def _matching(events: list[StoredEvent], event_filter: EventQuery) -> list[StoredEvent]:
    if event_filter.is_empty:
        return events
    return [e for e in events if event_filter.matches(e.event)]


def _diff(connection: Connection, live: sa.Table, rebuilt: sa.Table, samples: int) -> TableDiff:
    def count(statement: Any) -> int:
        return int(
            connection.execute(
                sa.select(sa.func.count()).select_from(statement.subquery())
            ).scalar()
            or 0
        )

    has_live = sa.inspect(connection).has_table(live.name)
    rebuilt_select = sa.select(*rebuilt.columns)
    rebuilt_rows = count(rebuilt_select)
    if not has_live:
        rows = connection.execute(rebuilt_select.limit(samples)).mappings().all()
        return TableDiff(
            live.name, 0, rebuilt_rows, 0, rebuilt_rows, (), tuple(dict(r) for r in rows)
        )
    live_select = sa.select(*live.columns)
    only_live = sa.except_(live_select, sa.select(*rebuilt.columns))
    only_rebuilt = sa.except_(rebuilt_select, sa.select(*live.columns))
    return TableDiff(
        table=live.name,
        live_rows=count(live_select),
        rebuilt_rows=rebuilt_rows,
        only_live=count(only_live),
        only_rebuilt=count(only_rebuilt),
        samples_only_live=tuple(
            dict(r) for r in connection.execute(only_live.limit(samples)).mappings().all()
        ),
        samples_only_rebuilt=tuple(
            dict(r) for r in connection.execute(only_rebuilt.limit(samples)).mappings().all()
        ),
    )


def _reraise_if_connection_lost(error: Exception) -> None:
    """A lost connection is the database's failure, not the projection's: let it fail the run."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        raise error


def _can_wait(
    row: Checkpoint, head: int, min_lag: int, max_delay: float | None, now: datetime
) -> bool:
    if not min_lag or head - row.position >= min_lag:
        return False
    if max_delay is None:
        return True
    return (now - row.updated_at).total_seconds() < max_delay


def _now() -> datetime:
    return datetime.now(UTC)
